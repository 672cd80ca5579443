"""Vectorized per-group statistics over ragged groups.

Every function takes a flat tensor of values (one per rollout) and a
:class:`Groups` index, and returns one value per rollout (the statistic of its
group broadcast back) except ``segment_all_equal`` and ``segment_nunique``
(one value per group) and the pivot of ``segment_median_with_index``, so
callers never reshape to a fixed group size and never loop over groups in Python.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch


@dataclass
class Groups:
    """Group index of each rollout: ``index[i]`` is the group of rollout i.

    Groups need not be contiguous or of equal size; a group may hold one
    rollout. ``num_groups`` may exceed ``index.max() + 1`` (empty groups
    simply get no statistics).
    """

    index: torch.Tensor
    num_groups: int
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_index(cls, index, num_groups: int | None = None) -> "Groups":
        index = torch.as_tensor(index, dtype=torch.long)
        if index.dim() != 1:
            raise ValueError(f"group index must be 1-D, got shape {tuple(index.shape)}")
        if index.numel() and int(index.min()) < 0:
            raise ValueError(f"group index must be >= 0, got {int(index.min())}")
        n = int(index.max()) + 1 if index.numel() else 0
        if num_groups is None:
            num_groups = n
        elif num_groups < n:
            raise ValueError(f"num_groups={num_groups} but index references group {n - 1}")
        return cls(index, num_groups)

    @classmethod
    def from_sizes(cls, sizes) -> "Groups":
        sizes = torch.as_tensor(sizes, dtype=torch.long)
        return cls.from_index(torch.repeat_interleave(torch.arange(len(sizes)), sizes), len(sizes))

    @property
    def counts(self) -> torch.Tensor:
        if "counts" not in self._cache:
            self._cache["counts"] = torch.bincount(self.index, minlength=self.num_groups)
        return self._cache["counts"]

    def sizes(self) -> torch.Tensor:
        """Size of each rollout's own group, per rollout."""
        return self.counts[self.index]

    def sort_within(self, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Permutation that orders rollouts by (group, value), ties by position.

        Returns ``(perm, starts)`` where ``starts[g]`` is the offset of group g
        in the permuted order.
        """
        by_value = torch.argsort(values, stable=True)
        perm = by_value[torch.argsort(self.index[by_value], stable=True)]
        starts = torch.cumsum(self.counts, 0) - self.counts
        return perm, starts


def _scatter_sum(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    out = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    return out.index_add_(0, groups.index.to(values.device), values)


def segment_sum(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    return _scatter_sum(values, groups)[groups.index]


def segment_mean(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    counts = groups.counts.to(values.device, values.dtype).clamp(min=1)
    return (_scatter_sum(values, groups) / counts)[groups.index]


def segment_std(values: torch.Tensor, groups: Groups, unbiased: bool = True) -> torch.Tensor:
    """Per-group standard deviation; groups of size 1 get 0 (not NaN)."""
    counts = groups.counts.to(values.device, values.dtype)
    mean = segment_mean(values, groups)
    ss = _scatter_sum((values - mean) ** 2, groups)
    denom = (counts - 1) if unbiased else counts
    var = torch.where(denom > 0, ss / denom.clamp(min=1), torch.zeros_like(ss))
    return var.sqrt()[groups.index]


def segment_median(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Per-group median; for an even count the lower middle value (torch.median's rule)."""
    med, _ = segment_median_with_index(values, groups)
    return med


def segment_median_with_index(values: torch.Tensor, groups: Groups) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-rollout median of its group, and per group the rollout that holds it.

    Among rollouts tied at the median the pivot is the one that comes first in
    the batch (stable sort), so the choice is deterministic.
    """
    perm, starts = groups.sort_within(values)
    counts = groups.counts.to(perm.device)
    mid = starts.to(perm.device) + (counts - 1).clamp(min=0) // 2
    nonempty = counts > 0
    pivot = torch.full((groups.num_groups,), -1, dtype=torch.long, device=perm.device)
    pivot[nonempty] = perm[mid[nonempty]]
    med = torch.zeros(groups.num_groups, dtype=values.dtype, device=values.device)
    med[nonempty] = values[pivot[nonempty]]
    # Among equal values the stable sort keeps batch order, but the lower-middle
    # slot may land on a later duplicate: move the pivot to the first rollout of
    # the group whose value equals the median.
    is_med = values == med[groups.index]
    pos = torch.arange(values.numel(), device=values.device)
    big = torch.full_like(pos, values.numel())
    first = torch.full((groups.num_groups,), values.numel(), dtype=torch.long, device=values.device)
    first = first.scatter_reduce(0, groups.index, torch.where(is_med, pos, big), reduce="amin")
    pivot[nonempty] = first[nonempty]
    return med[groups.index], pivot


def segment_mad(values: torch.Tensor, groups: Groups, center: torch.Tensor | None = None) -> torch.Tensor:
    """Median absolute deviation around ``center`` (the group median by default)."""
    if center is None:
        center = segment_median(values, groups)
    return segment_median((values - center).abs(), groups)


def segment_all_equal(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Per group: True when every rollout of the group has the same value."""
    hi = torch.full((groups.num_groups,), float("-inf"), dtype=values.dtype, device=values.device)
    lo = torch.full((groups.num_groups,), float("inf"), dtype=values.dtype, device=values.device)
    hi = hi.scatter_reduce(0, groups.index, values, reduce="amax")
    lo = lo.scatter_reduce(0, groups.index, values, reduce="amin")
    return (hi == lo) | (groups.counts == 0)


def segment_nunique(values: torch.Tensor, groups: Groups, decimals: int = 6) -> torch.Tensor:
    """Per group: the number of distinct values (after rounding to ``decimals``)."""
    rounded = torch.round(values.double() * 10**decimals)
    perm, _ = groups.sort_within(rounded)
    g, v = groups.index[perm], rounded[perm]
    new = torch.ones_like(g, dtype=torch.bool)
    if g.numel() > 1:
        new[1:] = (g[1:] != g[:-1]) | (v[1:] != v[:-1])
    out = torch.zeros(groups.num_groups, dtype=torch.long)
    return out.index_add_(0, g, new.long())


def segment_range(values: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Per group: max - min of its values (0 for an empty group), one entry per group."""
    hi = torch.full((groups.num_groups,), float("-inf"), dtype=values.dtype, device=values.device)
    lo = torch.full((groups.num_groups,), float("inf"), dtype=values.dtype, device=values.device)
    hi = hi.scatter_reduce(0, groups.index, values, reduce="amax")
    lo = lo.scatter_reduce(0, groups.index, values, reduce="amin")
    return torch.where(groups.counts > 0, hi - lo, torch.zeros_like(hi))
