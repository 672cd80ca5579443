"""The ``[mc_grpo]`` config section."""
from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator

from grpo_zoo.config import Section


class MCGRPOConfig(Section):
    """MC-GRPO: G+1 rollouts per prompt, median centre, MAD scale, the pivot left out of the loss."""

    eps: float = Field(
        1e-3, gt=0, description="added to the MAD: A = (r - median) / (MAD + eps); 1e-3 as published"
    )
    rescale: Literal["none", "clip", "max_abs"] = Field(
        "none",
        description="tame the +-1/eps advantages of MAD = 0 groups: none (published), "
        "clip (clamp to +-clip_value), max_abs (divide each group by its largest |A|)",
    )
    clip_value: float = Field(1.0, gt=0, description="bound used by rescale = 'clip'")
    pivot_on: Literal["reward", "advantage"] = Field(
        "reward",
        description="pick the pivot as the median of the weighted total reward (reward) "
        "or of the final advantages (advantage); identical for one reward column",
    )
    sign_flip_reference: Literal["pooled", "history", "off"] = Field(
        "pooled",
        description="estimate of each task's expected reward for mc_grpo/sign_flip_rate: "
        "pooled (every reward seen for the task, this step included), history (earlier steps only), off",
    )

    @field_validator("eps", "clip_value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v
