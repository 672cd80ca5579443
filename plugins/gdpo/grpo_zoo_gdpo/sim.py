"""Rollout batches built straight from reward columns (tests, the bench): no model, no text."""
from __future__ import annotations

import torch

from grpo_zoo.types import Rollouts, Task


def rollouts_from_columns(columns: dict[str, list | torch.Tensor], sizes: list[int]) -> Rollouts:
    """A Rollouts whose rollouts are laid out group by group (``sizes[g]`` rollouts in group g)."""
    group = torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes, dtype=torch.long))
    n = int(group.numel())
    rewards = {k: torch.as_tensor(v, dtype=torch.float32).reshape(-1) for k, v in columns.items()}
    for k, v in rewards.items():
        if v.numel() != n:
            raise ValueError(f"column {k!r} has {v.numel()} values for {n} rollouts")
    return Rollouts(
        tasks=[Task(id=f"sim/{g}", prompt="") for g in range(len(sizes))],
        group=group,
        prompt_text=[""] * n,
        prompt_ids=[[0]] * n,
        completion_ids=[[0]] * n,
        completion_text=[""] * n,
        rewards=rewards,
    )
