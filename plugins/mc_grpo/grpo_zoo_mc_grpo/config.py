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
        "advantage",
        description="pick the pivot as the median of the aggregated score, i.e. of the final advantages "
        "(advantage), or of the raw weighted total reward (reward); identical for one reward column",
    )
    sign_flip_reference: Literal["pooled", "history", "off"] = Field(
        "history",
        description="estimate of each task's expected reward for mc_grpo/sign_flip_rate: "
        "history (earlier steps only: independent of this step's samples), pooled (every reward seen "
        "for the task, this step included: biased towards the in-group baselines), off",
    )

    @field_validator("eps", "clip_value")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    # fields added for issue 20 (kept at the end: new keys go last)
    odd_groups: bool = Field(
        True,
        description="round each budget up so that the group the advantages see (G+1, or the part of it a "
        "sampling wrapper returns, per zoo_trained_rollouts) has an odd size, as in the paper; "
        "false keeps even groups (warned once: the lower median then favours successes)",
    )
    nonzero_rescale: bool = Field(
        False,
        description="multiply each group's non-zero advantages by (group size) / (number of non-zero "
        "advantages), as the official GSM8K trainer does",
    )
    baseline: Literal["median", "mean_drop_min"] = Field(
        "median",
        description="median (MC-GRPO) or the paper's control: G+1 rollouts, group mean and std, "
        "and the rollout with the smallest |advantage| leaves the loss",
    )
