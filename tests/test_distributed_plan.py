"""Under data parallelism budgets are planned over the whole step, then tasks are dealt to ranks."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from grpo_zoo import hookimpl
from grpo_zoo.trainer import step
from grpo_zoo.trainer.distributed import shard_by_budget
from grpo_zoo.types import Rollouts, Task


class PositionPlanner:
    """Budgets that depend on the whole task list (like knapsack's): 1 + the task's rank by id."""

    @hookimpl
    def zoo_plan_budget(self, ctx, tasks, group_size):
        order = sorted(range(len(tasks)), key=lambda i: tasks[i].id)
        budget = [0] * len(tasks)
        for r, i in enumerate(order):
            budget[i] = 1 + r
        return budget


class Recorder:
    def __init__(self):
        self.requests = []

    @hookimpl
    def zoo_rollout(self, ctx, request):
        self.requests.append(request)
        group = [g for g, b in enumerate(request.budgets) for _ in range(b)]
        n = len(group)
        return Rollouts(tasks=list(request.tasks), group=torch.tensor(group, dtype=torch.long), prompt_text=["p"] * n,
                        prompt_ids=[[1]] * n, completion_ids=[[2]] * n, completion_text=["c"] * n)


def test_ranks_share_one_global_plan(zoo_context, monkeypatch):
    tasks = [Task(id=f"t{k}", prompt=f"q{k}", answer="1") for k in (5, 2, 7, 0, 3)]  # budgets 4 2 5 1 3
    monkeypatch.setattr(step, "gather_rollouts", lambda ctx, r, tasks, local: (r, local))
    monkeypatch.setattr(step.finite, "check_rewards", lambda ctx, r: r)  # `r` is the (rollouts, local) pair above
    plans, loads = {}, []
    for rank in range(2):
        rec = Recorder()
        ctx = zoo_context(plugins={"planner": PositionPlanner(), "recorder": rec})
        ctx.accelerator = SimpleNamespace(process_index=rank, num_processes=2)
        _, local = step.collect(ctx, tasks)
        (req,) = rec.requests
        assert [t.id for t in req.tasks] == [tasks[i].id for i in local]
        plans.update({t.id: b for t, b in zip(req.tasks, req.budgets)})
        loads.append(sum(req.budgets))
    assert plans == {"t5": 4, "t2": 2, "t7": 5, "t0": 1, "t3": 3}  # each task once, with its global budget
    assert sorted(loads) == [7, 8]  # 15 rollouts dealt evenly (a per-rank plan would give 1+2+3 vs 1+2)


@pytest.mark.parametrize("budgets,size", [([8] * 7, 2), ([12, 2, 2, 2, 2, 2, 2], 2), ([3, 1, 4, 1, 5, 9, 2, 6], 3)])
def test_shard_by_budget_partitions_and_balances(budgets, size):
    parts = [shard_by_budget(SimpleNamespace(accelerator=SimpleNamespace(process_index=r, num_processes=size)), budgets)
             for r in range(size)]
    assert sorted(i for p in parts for i in p) == list(range(len(budgets)))
    loads = [sum(budgets[i] for i in p) for p in parts]
    assert max(loads) - min(loads) <= max(budgets)
    assert shard_by_budget(SimpleNamespace(accelerator=None), budgets) == list(range(len(budgets)))


def test_gather_keeps_behavior_prompts_of_every_rank(monkeypatch):
    import accelerate.utils

    from grpo_zoo.trainer.distributed import gather_rollouts

    tasks = [Task(id=f"t{k}", prompt="q", answer="1") for k in range(2)]

    def part(behavior):
        return Rollouts(tasks=tasks[:1], group=torch.zeros(2, dtype=torch.long), prompt_text=["p"] * 2,
                        prompt_ids=[[1]] * 2, completion_ids=[[2]] * 2, completion_text=["c"] * 2,
                        behavior_prompt_ids=behavior, rewards={"r": torch.zeros(2)})

    payloads = []
    monkeypatch.setattr(accelerate.utils, "gather_object", lambda obj: payloads.append(obj[0]) or list(payloads))

    def world(rank):
        return SimpleNamespace(accelerator=SimpleNamespace(process_index=rank, num_processes=2))

    gather_rollouts(world(0), part(None), tasks, [0])
    merged = gather_rollouts(world(1), part([[9], None]), tasks, [1])
    assert merged.group.tolist() == [0, 0, 1, 1]
    assert merged.behavior_prompt_ids == [None, None, [9], None]
