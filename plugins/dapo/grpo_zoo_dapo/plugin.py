"""The ``dapo`` plugin: DAPO's dynamic-sampling acceptance rule and its overlong reward shaping.

Core owns the refill loop (sampling.max_gen_batches, sampling.at_cap), the
truncation mask (loss.mask_truncated_completions), clip-higher
(loss.epsilon_high) and the token-level loss (loss.type = "dapo"); this plugin
adds what is DAPO's own: which groups are worth keeping, and the length penalty.
"""
from __future__ import annotations

import torch

from grpo_zoo.advantages import weighted_sum
from grpo_zoo.config import ConfigError
from grpo_zoo.hookspecs import hookimpl

from .config import DAPOConfig
from .formulas import group_spread_ok, overlong_penalty

COLUMN = "dapo/overlong"


class DAPO:
    """One instance per run: counters of drawn and rejected groups live on ``self``."""

    def __init__(self):
        self.totals = {"drawn": 0, "rejected": 0}
        self.step_counts = {"drawn": 0, "rejected": 0}
        self.counted_step: int | None = None

    @hookimpl
    def zoo_config_model(self):
        return DAPOConfig

    @hookimpl
    def zoo_check_config(self, config):
        cfg, limit = config.dapo, config.sampling.max_new_tokens
        if cfg.overlong_buffer >= limit:
            return [f"dapo.overlong_buffer ({cfg.overlong_buffer}) must be < sampling.max_new_tokens ({limit})"]
        return None

    # reward: the overlong penalty as a column of its own (weighted by reward.weights like any other)
    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        cfg = ctx.config.dapo
        if cfg.overlong_buffer == 0:
            return None
        lengths = rollouts.completion_lengths()
        return {COLUMN: overlong_penalty(lengths, ctx.config.sampling.max_new_tokens, cfg.overlong_buffer, cfg.overlong_penalty)}

    # dynamic sampling: keep groups whose reward has spread (the others give zero advantage)
    @hookimpl
    def zoo_accept_groups(self, ctx, rollouts):
        cfg = ctx.config.dapo
        if not cfg.dynamic_sampling:
            return None
        if cfg.filter_column is not None:
            if cfg.filter_column not in rollouts.rewards:
                raise ConfigError(
                    f"dapo.filter_column = {cfg.filter_column!r} is not a reward column (columns: {sorted(rollouts.rewards)})"
                )
            values = rollouts.rewards[cfg.filter_column]
        else:
            values = weighted_sum(rollouts.rewards, ctx.reward_weights(rollouts))
        ok = group_spread_ok(values, rollouts.groups, cfg.min_spread)
        if self.counted_step != ctx.step:
            self.counted_step, self.step_counts = ctx.step, {"drawn": 0, "rejected": 0}
        for d in (self.totals, self.step_counts):
            d["drawn"] += len(ok)
            d["rejected"] += int((~ok).sum())
        return ok

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        m = {"dapo/groups_drawn_total": self.totals["drawn"], "dapo/groups_rejected_total": self.totals["rejected"]}
        if self.counted_step == step and self.step_counts["drawn"]:
            m["dapo/rejected_frac"] = self.step_counts["rejected"] / self.step_counts["drawn"]
        if len(rollouts):
            if rollouts.truncated is not None:
                m["dapo/truncated_frac"] = float(rollouts.truncated.float().mean())
            if COLUMN in rollouts.rewards:
                pen = rollouts.rewards[COLUMN]
                m["dapo/overlong_mean"] = float(pen.mean())
                m["dapo/overlong_frac"] = float((pen < 0).float().mean())
        return m

    @hookimpl
    def zoo_state_dict(self, ctx):
        return {"totals": dict(self.totals)}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.totals = {k: int(v) for k, v in state["totals"].items()}
