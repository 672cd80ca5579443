"""The GDPO plugin: decoupled (per-reward) group normalization, conditioned rewards, resolution metrics."""
from __future__ import annotations

import torch

from grpo_zoo.hookspecs import hookimpl

from .aggregate import (
    check_columns,
    column_weights,
    distinct_per_group,
    gate_rewards,
    gdpo_advantages,
    grpo_advantages,
    with_rewards,
)
from .config import GDPOConfig

NAME = "gdpo"


class GDPO:
    """Entry point ``gdpo``. Stateless: every figure is recomputed from the step's rollouts."""

    @hookimpl
    def zoo_config_model(self):
        return GDPOConfig

    def _prepare(self, ctx, rollouts, weights):
        cfg = ctx.config.gdpo
        check_columns(cfg, rollouts.rewards)
        gated = gate_rewards(rollouts.rewards, cfg.conditions)
        return cfg, gated, column_weights(cfg, weights, gated)

    @hookimpl
    def zoo_run_start(self, ctx):
        # Fail before any sampling when only the built-in reward columns exist
        # (other reward plugins' columns are known only once they have run).
        owners = {impl.plugin_name for impl in ctx.hooks.pm.hook.zoo_reward.get_hookimpls()}
        if owners <= {"builtin.reward"}:
            check_columns(ctx.config.gdpo, {k: None for k in ctx.config.reward.builtin})

    @hookimpl
    def zoo_aggregate_rewards(self, ctx, rollouts, weights):
        cfg, gated, w = self._prepare(ctx, rollouts, weights)
        return gdpo_advantages(ctx, with_rewards(rollouts, gated), w, cfg.batch_normalize, ctx.config.advantage.eps)

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        if not rollouts.rewards or rollouts.advantages is None:
            return {}
        cfg, gated, w = self._prepare(ctx, rollouts, ctx.reward_weights(rollouts))
        groups = rollouts.groups
        grpo = grpo_advantages(ctx, with_rewards(rollouts, gated), w)
        m = {
            f"{NAME}/distinct_adv_per_group": distinct_per_group(rollouts.advantages, groups),
            f"{NAME}/distinct_adv_per_group_grpo": distinct_per_group(grpo, groups),
        }
        for k, v in gated.items():
            m[f"{NAME}/{k}/mean"] = float(v.double().mean())
        kept: dict[str, torch.Tensor] = {}
        for c in cfg.conditions:
            ok = rollouts.rewards[c.on] >= c.threshold
            kept[c.column] = kept[c.column] & ok if c.column in kept else ok
        for k, ok in kept.items():
            m[f"{NAME}/{k}/kept_frac"] = float(ok.double().mean())
        return m
