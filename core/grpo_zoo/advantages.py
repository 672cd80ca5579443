"""Advantage math shared by the built-ins and plugins (sum-then-normalize, normalize-then-sum)."""
from __future__ import annotations

import torch

from .segments import Groups
from .types import Rollouts


def weighted_sum(columns: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    names = list(columns)
    stacked = torch.stack([columns[k].double() for k in names], dim=1)
    w = torch.tensor([weights.get(k, 1.0) for k in names], dtype=torch.float64)
    return (stacked * w).sum(dim=1)


def sum_then_normalize(ctx, rollouts: Rollouts, weights: dict[str, float]) -> torch.Tensor:
    """GRPO: weighted sum of the reward columns, then the active centre/scale per group."""
    return ctx.normalize(weighted_sum(rollouts.rewards, weights), rollouts.groups)


def standardize(values: torch.Tensor, eps: float) -> torch.Tensor:
    """Batch standardization (unbiased std); a single value maps to 0."""
    if values.numel() < 2:
        return torch.zeros_like(values)
    return (values - values.mean()) / (values.std() + eps)


def batch_scale(values: torch.Tensor, eps: float) -> torch.Tensor:
    """Divide by the batch std (unbiased) without subtracting the batch mean; a single value maps to 0.

    GDPO's last step. Under the mean centre every group's normalized columns sum to 0, so the
    batch mean of their weighted sum is 0 and this equals TRL's ``(S - mean(S)) / (std(S) + eps)``
    to rounding. Under any other centre (MC-GRPO's median) the columns do not sum to 0 within a
    group, and subtracting the batch mean would shift every rollout, giving flat groups a non-zero
    advantage and all-incorrect ones a positive one; scaling alone keeps each group's zeros and signs.
    """
    if values.numel() < 2:
        return torch.zeros_like(values)
    return values / (values.std() + eps)


def normalize_then_sum(ctx, rollouts: Rollouts, weights: dict[str, float], eps: float = 1e-4) -> torch.Tensor:
    """GDPO: each column normalized per group with the active centre/scale, weighted sum, batch scaling (above)."""
    groups: Groups = rollouts.groups
    normed = {k: ctx.normalize(v.double(), groups) for k, v in rollouts.rewards.items()}
    return batch_scale(weighted_sum(normed, weights), eps)
