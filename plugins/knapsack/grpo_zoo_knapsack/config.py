"""The ``[knapsack]`` config section."""
from __future__ import annotations

from typing import Literal

from grpo_zoo.config import Section
from pydantic import Field, model_validator


class KnapsackConfig(Section):
    min_rollouts: int = Field(2, ge=1, description="N_low: the fewest rollouts any task gets")
    max_rollouts: int = Field(128, ge=1, description="N_up: the most rollouts any task gets")
    total_budget: int | None = Field(
        None, ge=1, description="rollouts per step (per call of the budget hook); default group_size * tasks"
    )
    reward_column: str | None = Field(
        None,
        description="reward column that decides success; default: `correct` when present, else the only "
        "column (several columns without `correct` need this key)",
    )
    success_threshold: float = Field(0.5, description="a rollout succeeds when its reward >= this")
    estimate: Literal["last", "epoch", "all"] = Field(
        "last",
        description="p from the task's rollouts at its latest visit (= the previous epoch under an epoch "
        "curriculum) | in the latest epoch it was seen in | in all steps",
    )
    leftover: Literal["hard", "hard_then_easy", "none"] = Field(
        "hard", description="where budget no mixed task can take goes: p = 0 tasks | then p = 1 tasks | nowhere"
    )
    solver: Literal["fast", "dp"] = Field("fast", description="threshold search (fast, exact) or dynamic programming")
    fallback_confidence: float | None = Field(
        0.9,
        gt=0,
        lt=1,
        description="fallback: a mixed task needs the fewest rollouts whose group is mixed with this "
        "probability; budget beyond those needs goes to p = 0 tasks first (none = only leftover budget)",
    )

    @model_validator(mode="after")
    def _bounds(self):
        if self.max_rollouts < self.min_rollouts:
            raise ValueError(
                f"knapsack.max_rollouts ({self.max_rollouts}) must be >= knapsack.min_rollouts ({self.min_rollouts})"
            )
        if self.total_budget is not None and self.total_budget < self.min_rollouts:
            raise ValueError(
                f"knapsack.total_budget ({self.total_budget}) must be >= knapsack.min_rollouts ({self.min_rollouts})"
            )
        return self
