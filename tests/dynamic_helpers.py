"""Scripted plugins for the dynamic-sampling tests: a fake backend, a scripted reward and spies."""
from __future__ import annotations

import torch

from grpo_zoo import hookimpl
from grpo_zoo.segments import segment_all_equal
from grpo_zoo.types import Rollouts


def is_flat(task_id: str) -> bool:
    """Tasks whose scripted reward is the same for every rollout: a third of them (id number divisible by 3)."""
    return int(task_id.rsplit("/", 1)[-1]) % 3 == 0


class FakeBackend:
    """zoo_generate without a model: completion k of a group is k+1 tokens; records every request."""

    def __init__(self):
        self.requests = []

    @hookimpl
    def zoo_generate(self, ctx, request):
        self.requests.append(request)
        group, comps = [], []
        for g, b in enumerate(request.budgets):
            for k in range(b):
                group.append(g)
                comps.append(list(range(1, k + 2)))
        n = len(group)
        return Rollouts(
            tasks=list(request.tasks), group=torch.tensor(group, dtype=torch.long),
            prompt_text=[str(request.prompts[g]) for g in group], prompt_ids=[[7] for _ in group],
            completion_ids=comps, completion_text=["x" * len(c) for c in comps],
            truncated=torch.zeros(n, dtype=torch.bool),
        )


class ScriptedReward:
    """Column ``scripted``: 0 for every rollout of a flat task, else the rollout's parity within its group."""

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        seen: dict[int, int] = {}
        vals = []
        for i in range(len(rollouts)):
            g = int(rollouts.group[i])
            k = seen.get(g, 0)
            seen[g] = k + 1
            vals.append(0.0 if is_flat(rollouts.task_of(i).id) else float(k % 2))
        return {"scripted": torch.tensor(vals)}


class RejectFlat:
    """Accepts the groups whose ``scripted`` reward is not constant; records every call."""

    def __init__(self):
        self.calls = 0

    @hookimpl
    def zoo_accept_groups(self, ctx, rollouts):
        self.calls += 1
        flat = segment_all_equal(rollouts.rewards["scripted"], rollouts.groups)
        return ~flat


class ObserveSpy:
    def __init__(self):
        self.seen = []

    @hookimpl
    def zoo_observe(self, ctx, rollouts, accepted):
        self.seen.append(([t.id for t in rollouts.tasks], accepted.clone(), len(rollouts)))


class BatchSpy:
    """The batch the step trained on."""

    def __init__(self):
        self.batch = None

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        self.batch = rollouts
        return {}


class BudgetSpy:
    """Wraps zoo_plan_budget: records (budget_left, planned budgets) of every call."""

    def __init__(self):
        self.calls = []

    @hookimpl(wrapper=True)
    def zoo_plan_budget(self, ctx, tasks, group_size, budget_left):
        out = yield
        self.calls.append((budget_left, [int(b) for b in out]))
        return out
