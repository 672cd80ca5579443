"""MC-GRPO math on ragged groups: median centre, MAD scale, pivot choice, rescaling, sign agreement.

Every function is vectorized over groups (core's ``grpo_zoo.segments``), so it
works for any mix of group sizes, including 1 and empty groups.
"""
from __future__ import annotations

import torch

from grpo_zoo.segments import Groups, segment_mad, segment_mean, segment_median, segment_median_with_index

DEFAULT_EPS = 1e-3


def median_center(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Each rollout's group median (lower middle value for an even count: always one of the group's values)."""
    return segment_median(values, groups)


def mad_scale(values: torch.Tensor, groups: Groups, center: torch.Tensor, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """Divisor per rollout: median(|r - centre|) over its group, plus ``eps``."""
    return segment_mad(values, groups, center) + eps


def mc_advantages(values: torch.Tensor, groups: Groups, eps: float = DEFAULT_EPS) -> torch.Tensor:
    """A_i = (r_i - median_g(r)) / (MAD_g(r) + eps), the MC-GRPO advantage of one scalar reward."""
    center = median_center(values, groups)
    return (values - center) / mad_scale(values, groups, center, eps)


def pivot_index(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Per group, the batch position of its pivot: the rollout holding the group median.

    Among rollouts tied at the median the first in batch order is the pivot.
    Empty groups get -1.
    """
    _, pivot = segment_median_with_index(values, groups)
    return pivot


def pivot_mask(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Bool [R]: True at each group's pivot (exactly one per non-empty group)."""
    pivot = pivot_index(values, groups)
    mask = torch.zeros(values.numel(), dtype=torch.bool, device=values.device)
    mask[pivot[pivot >= 0]] = True
    return mask


def mad_is_zero(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Bool per non-empty group (in group order): its MAD around the median is exactly 0."""
    nonempty = groups.counts > 0
    if values.numel() == 0:
        return torch.zeros(0, dtype=torch.bool)
    pivot = pivot_index(values, groups)[nonempty]
    return segment_mad(values, groups)[pivot] == 0


def group_peak_abs(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Each rollout's group maximum of |value|."""
    peak = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    peak = peak.scatter_reduce(0, groups.index.to(values.device), values.abs(), reduce="amax", include_self=True)
    return peak[groups.index]


def rescale(advantages: torch.Tensor, groups: Groups, mode: str = "none", clip_value: float = 1.0) -> torch.Tensor:
    """Optional taming of the +-1/eps advantages that binary rewards produce (MAD = 0).

    - ``none``: unchanged (the published behaviour).
    - ``clip``: clamp to [-clip_value, clip_value].
    - ``max_abs``: divide each group by its largest |A|, so every group with a
      non-zero advantage spans at most [-1, 1]; all-zero groups stay 0.
    Signs, and which rollouts are zero, never change.
    """
    if mode == "none":
        return advantages
    if mode == "clip":
        return advantages.clamp(-clip_value, clip_value)
    if mode == "max_abs":
        peak = group_peak_abs(advantages, groups)
        safe = torch.where(peak > 0, peak, torch.ones_like(peak))
        return torch.where(peak > 0, advantages / safe, torch.zeros_like(advantages))
    raise ValueError(f"unknown rescale mode {mode!r} (none | clip | max_abs)")


def signs(x: torch.Tensor, tol: float = 0.0) -> torch.Tensor:
    """-1, 0 or +1 per entry; |x| <= tol counts as 0."""
    return torch.where(x.abs() <= tol, torch.zeros_like(x), torch.sign(x)).to(torch.int8)


def sign_disagrees(advantages: torch.Tensor, rewards: torch.Tensor, reference: torch.Tensor, tol: float = 1e-6):
    """Bool [R]: sign(A_i) differs from sign(r_i - reference_i), with sign(0) = 0.

    A zero advantage on a rollout whose reward differs from the reference counts
    as a disagreement (the rollout's signal is lost); so does a reversed sign.
    """
    return signs(advantages.double(), tol) != signs(rewards.double() - reference.double(), tol)


def sign_reversed(advantages: torch.Tensor, rewards: torch.Tensor, reference: torch.Tensor, tol: float = 1e-6):
    """Bool [R]: both signs non-zero and opposite (the update direction is reversed)."""
    a = signs(advantages.double(), tol)
    b = signs(rewards.double() - reference.double(), tol)
    return (a * b) < 0


def mean_baseline_advantages(values: torch.Tensor, groups: Groups, keep: torch.Tensor) -> torch.Tensor:
    """r_i - mean of the kept rollouts of its group (0 where not kept): plain GRPO on the same rollouts."""
    sub = Groups.from_index(groups.index[keep], groups.num_groups)
    out = torch.zeros_like(values)
    out[keep] = values[keep] - segment_mean(values[keep], sub)
    return out


def min_abs_index(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Per group, the batch position of the rollout with the smallest |value| (first in batch order on ties); -1 if empty.

    The pivot of the paper's control "G+1 rollouts, mean baseline, drop the min-|A| rollout".
    """
    n, G = values.numel(), groups.num_groups
    mag = values.double().abs()
    low = torch.full((G,), float("inf"), dtype=torch.float64).scatter_reduce(0, groups.index, mag, reduce="amin")
    pos = torch.arange(n, dtype=torch.long)
    big = torch.iinfo(torch.long).max
    cand = torch.where(mag == low[groups.index], pos, torch.full_like(pos, big))
    first = torch.full((G,), big, dtype=torch.long).scatter_reduce(0, groups.index, cand, reduce="amin")
    return torch.where(first == big, torch.full_like(first, -1), first)


def nonzero_rescale(advantages: torch.Tensor, groups: Groups, tol: float = 0.0) -> torch.Tensor:
    """Each group's non-zero advantages times (group size) / (number of non-zero ones); zeros stay 0.

    The official GSM8K trainer's rescale: a group whose signal sits on few rollouts keeps the same
    total weight as one where every rollout carries a signal.
    """
    nonzero = advantages.abs() > tol
    count = torch.zeros(groups.num_groups, dtype=torch.float64).index_add_(0, groups.index, nonzero.double())
    factor = groups.counts.double() / count.clamp(min=1.0)
    return torch.where(nonzero, advantages * factor[groups.index].to(advantages.dtype), torch.zeros_like(advantages))
