"""Budget split (drafts vs refinements) and best-draft selection per task, vectorized over ragged groups."""
from __future__ import annotations

import torch

from grpo_zoo.segments import Groups


def split_budget(budget: int, draft_fraction: float = 0.5, num_drafts: int | None = None,
                 budget_mode: str = "split", min_refinements: int = 2) -> tuple[int, int]:
    """(drafts, refinements) for one task whose planned rollout count is ``budget``.

    ``split`` (matched budget, the paper's default): drafts = num_drafts or
    floor(budget * draft_fraction), clamped to [1, budget - min_refinements],
    and the refinements get the rest, so drafts + refinements = budget. When
    the budget leaves no room for a draft (budget - min_refinements < 1) the
    task gets (0, budget): it is sampled plainly. The default 2 makes a budget
    of 2 two plain samples (a refinement group of one has advantage 0).
    ``add``: the refinements get the whole budget and the drafts come on top
    (at least 1).
    """
    budget = int(budget)
    n = int(num_drafts) if num_drafts is not None else int(budget * draft_fraction)
    if budget_mode == "add":
        return max(n, 1), budget
    room = budget - int(min_refinements)
    if room < 1:
        return 0, budget
    n = min(max(n, 1), room)
    return n, budget - n


def best_per_group(scores: torch.Tensor, groups: Groups, tie_break: str = "first",
                   lengths: torch.Tensor | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
    """Index (into the batch) of the best rollout of every group; -1 for an empty group.

    Best = highest score. Ties: ``first`` -> the first tied rollout in batch
    order; ``shortest`` -> the tied rollout with the fewest completion tokens
    (then first); ``random`` -> a uniformly random tied rollout (``generator``).
    """
    n, G = scores.numel(), groups.num_groups
    scores = scores.double()
    top = torch.full((G,), float("-inf"), dtype=torch.float64).scatter_reduce(0, groups.index, scores, reduce="amax")
    tied = scores == top[groups.index]
    pos = torch.arange(n, dtype=torch.long)
    if tie_break == "first":
        key = pos
    elif tie_break == "shortest":
        if lengths is None:
            raise ValueError("tie_break='shortest' needs completion lengths")
        key = lengths.long() * (n + 1) + pos
    elif tie_break == "random":
        key = torch.randperm(n, generator=generator)
    else:
        raise ValueError(f"unknown tie_break {tie_break!r}")
    big = torch.iinfo(torch.long).max
    best_key = torch.full((G,), big, dtype=torch.long).scatter_reduce(
        0, groups.index, torch.where(tied, key, torch.full_like(key, big)), reduce="amin"
    )
    chosen = (key == best_key[groups.index]) & tied
    out = torch.full((G,), -1, dtype=torch.long)
    out[groups.index[chosen]] = pos[chosen]
    return out
