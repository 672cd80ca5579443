"""Model-free stand-ins for the sampling backend and a reward, to test the iGRPO wrapper exactly."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.types import RolloutRequest, Rollouts, Task


def prompt_string(prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"[{m['role']}] {m['content']}" for m in prompt)


class FakeGenerate:
    """A backend whose completion k of task t in a request is ``"<stage>|<task id>|<k>"``.

    The stage is ``refine`` when the prompt carries a draft (``<draft>`` or an
    assistant turn), else ``draft``. Every request is recorded with the seed
    the built-in backend would have used.
    """

    def __init__(self):
        self.calls = []

    @hookimpl
    def zoo_generate(self, ctx, request):
        self.calls.append(
            {
                "prompts": list(request.prompts),
                "budgets": list(request.budgets),
                "extras": dict(request.extras),
                "seed": ctx.sampling_seed(request),
            }
        )
        group, ptext, pids, cids, ctext = [], [], [], [], []
        for g, (task, prompt, b) in enumerate(zip(request.tasks, request.prompts, request.budgets)):
            text = prompt_string(prompt)
            stage = "refine" if ("<draft>" in text or "[assistant]" in text) else "draft"
            for k in range(b):
                group.append(g)
                ptext.append(text)
                pids.append([len(text) % 97, 5, 7])
                ctext.append(f"{stage}|{task.id}|{k}")
                cids.append([k + 1] * (k + 1))
        return Rollouts(tasks=list(request.tasks), group=torch.tensor(group, dtype=torch.long), prompt_text=ptext,
                        prompt_ids=pids, completion_ids=cids, completion_text=ctext)


class TableReward:
    """Reward columns looked up by completion text; unknown texts get ``default``."""

    def __init__(self, table: dict[str, dict[str, float]] | None = None, columns=("r",), default=0.0):
        self.table = table or {}
        self.columns = columns
        self.default = default

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        return {
            c: torch.tensor([self.table.get(t, {}).get(c, self.default) for t in rollouts.completion_text])
            for c in self.columns
        }


class BernoulliReward:
    """Binary reward 1 with probability ``p``, from a seeded generator."""

    def __init__(self, p: float, seed: int = 0):
        self.p = p
        self.g = torch.Generator().manual_seed(seed)

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        return {"correct": (torch.rand(len(rollouts), generator=self.g) < self.p).float()}


class PlusOne:
    """MC-GRPO's budget rule in miniature: a zoo_plan_budget wrapper adding one rollout per task."""

    @hookimpl(wrapper=True)
    def zoo_plan_budget(self, ctx, tasks, group_size):
        budgets = yield
        return [b + 1 for b in budgets]


class FixedBudgets:
    """A knapsack-like planner: fixed per-task budgets, cycled over the tasks."""

    def __init__(self, budgets):
        self.budgets = list(budgets)

    @hookimpl
    def zoo_plan_budget(self, ctx, tasks, group_size):
        return [self.budgets[i % len(self.budgets)] for i in range(len(tasks))]


def make_tasks(n: int) -> list[Task]:
    return [Task(id=f"t{i}", prompt=f"What is {i} + {i}?", answer=str(2 * i)) for i in range(n)]


def make_request(ctx, tasks, budgets) -> RolloutRequest:
    return RolloutRequest(tasks=list(tasks), prompts=[ctx.hooks.build_prompt(ctx, t) for t in tasks], budgets=list(budgets))


@pytest.fixture
def fakes():
    class NS:
        pass

    ns = NS()
    ns.FakeGenerate = FakeGenerate
    ns.TableReward = TableReward
    ns.BernoulliReward = BernoulliReward
    ns.PlusOne = PlusOne
    ns.FixedBudgets = FixedBudgets
    ns.make_tasks = make_tasks
    ns.make_request = make_request
    return ns


@pytest.fixture
def fake_ctx(zoo_context):
    """A context with igrpo, the fake backend and a table reward; returns (ctx, backend, reward)."""

    def make(table=None, columns=("r",), config=None, extra=None):
        gen, reward = FakeGenerate(), TableReward(table, columns)
        plugins = {"igrpo": None, "fake_generate": gen, "table_reward": reward, **(extra or {})}
        plugins = {k: v for k, v in plugins.items() if v is not None}
        names = ["igrpo"] + list(plugins)
        cfg = {"reward": {"builtin": []}, "task": {"system_prompt": "Answer in <answer></answer>."}}
        for k, v in (config or {}).items():
            cfg[k] = {**cfg.get(k, {}), **v} if isinstance(v, dict) else v
        ctx = zoo_context(plugins=plugins, config={**cfg, "plugins": names})
        return ctx, gen, reward

    return make
