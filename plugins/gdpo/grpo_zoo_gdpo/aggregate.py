"""GDPO math on top of core's shared advantage helpers (no copy of them)."""
from __future__ import annotations

from dataclasses import replace

import torch

from grpo_zoo.advantages import normalize_then_sum, sum_then_normalize, weighted_sum
from grpo_zoo.config import ConfigError
from grpo_zoo.segments import Groups, segment_nunique
from grpo_zoo.types import Rollouts


def check_columns(cfg, columns) -> None:
    """Every column the ``[gdpo]`` section names must be one that a reward hook produced."""
    have = sorted(columns)
    unknown = sorted(set(cfg.weights) - set(have))
    if unknown:
        raise ConfigError(f"gdpo.weights names column(s) {unknown} that no reward hook produced (columns: {have})")
    for i, c in enumerate(cfg.conditions):
        for key in ("column", "on"):
            name = getattr(c, key)
            if name not in columns:
                raise ConfigError(
                    f"gdpo.conditions[{i}].{key} = {name!r} is not a reward column (columns: {have})"
                )


def gate_rewards(columns: dict[str, torch.Tensor], conditions) -> dict[str, torch.Tensor]:
    """Conditioned rewards: r_k is kept where r_l >= t for each of its conditions, else 0.

    Conditions read the *ungated* values of ``on``, so their order never matters.
    Returns a new dict; the input tensors are not modified.
    """
    out = dict(columns)
    for c in conditions:
        keep = columns[c.on] >= c.threshold
        out[c.column] = torch.where(keep, out[c.column], torch.zeros_like(out[c.column]))
    return out


def column_weights(cfg, weights: dict[str, float], columns) -> dict[str, float]:
    """gdpo.weights first, then the weight core passed (reward.weights, default 1.0)."""
    return {k: float(cfg.weights.get(k, weights.get(k, 1.0))) for k in columns}


def gdpo_advantages(ctx, rollouts: Rollouts, weights: dict[str, float], batch_normalize: bool = True, eps: float = 1e-4):
    """Per-column normalization with the active centre/scale, weighted sum, then (optionally) batch standardization."""
    if batch_normalize:
        return normalize_then_sum(ctx, rollouts, weights, eps)
    groups = rollouts.groups
    return weighted_sum({k: ctx.normalize(v.double(), groups) for k, v in rollouts.rewards.items()}, weights)


def grpo_advantages(ctx, rollouts: Rollouts, weights: dict[str, float]):
    """Plain sum-then-normalize on the same columns (the figure GDPO is compared with)."""
    return sum_then_normalize(ctx, rollouts, weights)


def with_rewards(rollouts: Rollouts, rewards: dict[str, torch.Tensor]) -> Rollouts:
    """A shallow copy of ``rollouts`` carrying other reward columns."""
    return replace(rollouts, rewards=rewards)


def distinct_per_group(values: torch.Tensor, groups: Groups, decimals: int = 6) -> float:
    """Mean number of distinct values per non-empty group."""
    counts = segment_nunique(values, groups, decimals)
    nonempty = groups.counts > 0
    if not bool(nonempty.any()):
        return 0.0
    return float(counts[nonempty].double().mean())
