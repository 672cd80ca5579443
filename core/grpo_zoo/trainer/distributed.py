"""Data parallelism: each rank rolls out a share of the tasks, then every rank sees the whole batch.

Advantages need whole groups and, for batch-level scaling, the whole batch,
so rollouts are gathered before advantages; each rank then trains on its
share of the rollouts and DDP averages the gradients.
"""
from __future__ import annotations

import torch

from ..types import Rollouts

_FIELDS = ("prompt_text", "prompt_ids", "completion_ids", "completion_text")


def world(ctx) -> tuple[int, int]:
    acc = ctx.accelerator
    return (acc.process_index, acc.num_processes) if acc is not None else (0, 1)


def shard(ctx, items: list) -> list:
    rank, size = world(ctx)
    return items[rank::size]


def gather_rollouts(ctx, rollouts: Rollouts, tasks: list, local: list[int]) -> Rollouts:
    """Rollouts of every rank, with group ids pointing into the full ``tasks`` list."""
    rank, size = world(ctx)
    remap = torch.tensor(local, dtype=torch.long)
    if size == 1:
        rollouts.tasks = list(tasks)
        rollouts.group = remap[rollouts.group]
        return rollouts
    from accelerate.utils import gather_object

    mine = {f: getattr(rollouts, f) for f in _FIELDS}
    mine["group"] = remap[rollouts.group].tolist()
    mine["rewards"] = {k: v.tolist() for k, v in rollouts.rewards.items()}
    mine["metrics"] = rollouts.metrics
    parts = gather_object([mine])
    merged = Rollouts(
        tasks=list(tasks),
        group=torch.tensor([g for p in parts for g in p["group"]], dtype=torch.long),
        **{f: [x for p in parts for x in p[f]] for f in _FIELDS},
        rewards={k: torch.tensor([x for p in parts for x in p["rewards"][k]]) for k in rollouts.rewards},
        extras=rollouts.extras,
    )
    for p in parts:  # plugin metrics: counts add up across ranks, other figures come from rank 0
        for k, v in p["metrics"].items():
            merged.metrics[k] = merged.metrics.get(k, 0) + v if k.endswith(("_count", "/count")) else merged.metrics.get(k, v)
    return merged
