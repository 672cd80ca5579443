"""The ``[hints]`` config section."""
from __future__ import annotations

from typing import Literal

from grpo_zoo.config import Section
from pydantic import Field, field_validator


class HintsConfig(Section):
    mode: Literal["separate", "self"] = Field(
        "separate", description="separate: a hinter model of its own, trained by GRPO (HiLL); self: the policy hints itself (SAGE)"
    )
    reward_column: str = Field("correct", description="reward column that decides correctness")
    threshold: float = Field(0.5, description="a rollout with reward <= threshold counts as incorrect")
    num_hints: int = Field(4, ge=1, description="M: hints asked for per hard prompt (per level in self mode)")
    max_hard_groups: int = Field(0, ge=0, description="hard groups hinted per step, in batch order; 0 = all")
    replace_if: Literal["any_correct", "mixed", "always"] = Field(
        "any_correct", description="when the best hint's rollouts replace the group"
    )
    # hinter
    hinter_model: str = Field("smollm2-135m", description="hinter model (mode = separate): a grpo-zoo model name, folder or hub id")
    hinter_dtype: Literal["float32", "bfloat16"] = "float32"
    hinter_lr: float = Field(1e-6, gt=0, description="hinter AdamW learning rate")
    hinter_weight_decay: float = Field(0.0, ge=0)
    train_hinter: bool = Field(True, description="run the hinter's GRPO update (mode = separate)")
    hinter_advantage: Literal["grpo", "run"] = Field(
        "grpo", description="grpo: (r - mean) / (std + advantage.eps) per prompt; run: the run's active centre/scale hooks"
    )
    hinter_temperature: float = Field(1.0, gt=0, description="hinter sampling temperature")
    hinter_top_p: float = Field(1.0, gt=0, le=1)
    hinter_max_new_tokens: int = Field(96, ge=1, description="token limit of one hinter answer")
    hinter_micro_batch_size: int = Field(8, ge=1, description="hinter sequences per forward/backward")
    prefill_tag: bool = Field(True, description="start the hinter's answer with '<hint>' (small hinters rarely open the tag themselves)")
    max_attempt_chars: int = Field(1200, ge=0, description="the failed attempt shown to the hinter is cut to this many characters")
    solution_key: str = Field("solution", description="task.metadata key holding a worked solution ('' = none)")
    max_level: int = Field(3, ge=1, le=3, description="mode = self: the highest hint level (levels escalate 1 -> max_level)")
    # gate and hinter reward
    max_hint_words: int = Field(60, ge=1, description="hints with more words fail the 'overlong' gate")
    gate_penalty: float = Field(-0.2, description="hinter reward of a hint that fails a gate")
    hinter_reward: Literal["transfer_weighted", "non_degenerate", "variance"] = Field(
        "transfer_weighted",
        description="transfer_weighted: (1-p^n-(1-p)^n)*exp(min(HR,0)/T); non_degenerate: 1-p^n-(1-p)^n; variance: p(1-p)",
    )
    reliance_temperature: float = Field(0.3, gt=0, description="T of the transfer weight exp(min(HR, 0) / T)")
    # reasoner
    hint_prefix: str = Field("Hint: ", description="text put before the hint in the hinted prompt")
    loss_mode: Literal["hinted_context", "no_hint_ratio"] = Field(
        "hinted_context", description="hinted_context: loss in the hinted prompt (HiLL); no_hint_ratio: Guide-style ratio"
    )

    @field_validator("reward_column")
    @classmethod
    def _column(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must name a reward column")
        return v

    @field_validator("gate_penalty")
    @classmethod
    def _penalty(cls, v: float) -> float:
        if v > 0:
            raise ValueError("must be <= 0: a hint that fails a gate is never rewarded")
        return v
