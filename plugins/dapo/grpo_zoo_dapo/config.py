"""The ``[dapo]`` config section."""
from __future__ import annotations

from pydantic import Field

from grpo_zoo.config import Section


class DAPOConfig(Section):
    dynamic_sampling: bool = Field(
        True, description="reject groups whose reward has no spread (core refills them: sampling.max_gen_batches)"
    )
    filter_column: str | None = Field(
        None, description="reward column whose spread decides; default: the weighted total of all columns"
    )
    min_spread: float = Field(0.0, ge=0, description="a group is kept when max - min of its rewards is > this")
    overlong_buffer: int = Field(
        0, ge=0, description="L_cache: tokens before sampling.max_new_tokens where the length penalty ramps (0 = off)"
    )
    overlong_penalty: float = Field(1.0, ge=0, description="the penalty at sampling.max_new_tokens (paper: 1.0)")
