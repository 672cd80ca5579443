"""DAPO's two formulas: the overlong penalty and the reward-spread group filter."""
from __future__ import annotations

import torch

from grpo_zoo.segments import Groups, segment_range


def overlong_penalty(lengths: torch.Tensor, max_len: int, buffer: int, factor: float = 1.0) -> torch.Tensor:
    """Soft overlong punishment (DAPO eq. 13), per completion length |y|, with L_max = ``max_len``:

    0 when |y| <= L_max - L_cache; ((L_max - L_cache) - |y|) / L_cache * factor inside the
    buffer; -factor beyond L_max (a completion stopped at L_max gets exactly -factor).
    """
    if buffer <= 0:
        return torch.zeros(lengths.shape, dtype=torch.float32)
    if buffer > max_len:
        raise ValueError(f"overlong buffer {buffer} is longer than the length limit {max_len}")
    expected = max_len - buffer
    excess = lengths.double() - expected
    out = torch.clamp(-excess / buffer, max=0.0)
    out = torch.clamp(out, min=-1.0)  # beyond L_max the paper's penalty is a flat -1
    return (out * factor).float()


def group_spread_ok(values: torch.Tensor, groups: Groups, min_spread: float = 0.0) -> torch.Tensor:
    """Per group: True when max - min of its rewards exceeds ``min_spread`` (DAPO: 0 < #correct < G)."""
    return segment_range(values.double(), groups) > min_spread
