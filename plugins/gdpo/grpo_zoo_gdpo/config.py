"""The ``[gdpo]`` config section."""
from __future__ import annotations

import math

from pydantic import Field, field_validator, model_validator

from grpo_zoo.config import Section


class Condition(Section):
    """Gate reward column ``column`` on column ``on``: r_column is kept where r_on >= threshold, else set to 0."""

    column: str = Field(description="the reward column that is gated")
    on: str = Field(description="the reward column it depends on")
    threshold: float = Field(1.0, description="r_column counts only where r_on >= threshold")

    @field_validator("column", "on")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a reward column")
        return v

    @field_validator("threshold")
    @classmethod
    def _finite(cls, v: float) -> float:
        if not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _not_self(self):
        if self.column == self.on:
            raise ValueError(f"column {self.column!r} cannot be gated on itself")
        return self


class GDPOConfig(Section):
    """GDPO: every reward column normalized within its group, weighted sum, then batch normalization."""

    weights: dict[str, float] = Field(
        default_factory=dict,
        description="column -> weight applied after per-column normalization; a column not named here "
        "takes reward.weights, then 1.0",
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="conditioned rewards, applied to the raw columns before normalization",
    )
    batch_normalize: bool = Field(
        True, description="standardize the weighted sum over the whole batch (the paper's last step)"
    )

    @field_validator("weights")
    @classmethod
    def _finite_weights(cls, v: dict[str, float]) -> dict[str, float]:
        bad = {k: w for k, w in v.items() if not math.isfinite(w)}
        if bad:
            raise ValueError(f"weights must be finite numbers, got {bad}")
        return v

    @model_validator(mode="after")
    def _no_duplicates(self):
        seen = set()
        for i, c in enumerate(self.conditions):
            key = (c.column, c.on)
            if key in seen:
                raise ValueError(f"conditions[{i}] repeats the condition of {c.column!r} on {c.on!r}")
            seen.add(key)
        return self
