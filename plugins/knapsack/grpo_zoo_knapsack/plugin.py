"""The ``knapsack`` plugin: observe per-task success, plan per-task rollout budgets, log the allocation."""
from __future__ import annotations

import numpy as np
import torch
from grpo_zoo.advantages import weighted_sum
from grpo_zoo.config import ConfigError
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.segments import segment_all_equal

from .allocate import Plan, gini, plan_budgets
from .config import KnapsackConfig
from .stats import SuccessTable


def success_column(cfg, columns) -> str:
    """The reward column that decides success: knapsack.reward_column, else `correct`, else the only column.

    A weighted total would count a rollout that earns only a secondary reward (format) as a success.
    """
    have = sorted(columns)
    if cfg.reward_column is not None:
        if cfg.reward_column not in columns:
            raise ConfigError(f"knapsack.reward_column = {cfg.reward_column!r} is not a reward column (columns: {have})")
        return cfg.reward_column
    if "correct" in columns:
        return "correct"
    if len(have) == 1:
        return have[0]
    raise ConfigError(f"knapsack.reward_column must name the success column when there are several (columns: {have})")


class KnapsackPlugin:
    """One instance per run: the success table and the latest plan live on ``self``."""

    def __init__(self):
        self.table = SuccessTable()
        self.plan: Plan | None = None
        self.plan_step: int | None = None
        self.observed: dict[str, float] = {}

    # config
    @hookimpl
    def zoo_config_model(self):
        return KnapsackConfig

    # curriculum: statistics
    def successes(self, ctx, rollouts) -> torch.Tensor:
        """Per rollout: 1.0 where the success column reaches the success threshold."""
        cfg = ctx.config.knapsack
        return (rollouts.rewards[success_column(cfg, rollouts.rewards)].double() >= cfg.success_threshold).double()

    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        if len(rollouts) == 0 or not rollouts.rewards:
            return
        ok = self.successes(ctx, rollouts)
        groups = rollouts.groups
        wins = torch.zeros(groups.num_groups, dtype=torch.float64).index_add_(0, groups.index, ok)
        counts = groups.counts
        epoch = ctx.info.get("epoch")
        period = ("epoch", int(epoch)) if epoch is not None else ("step", int(ctx.step))
        per_task: dict[str, list] = {}
        for g, task in enumerate(rollouts.tasks):  # a task may appear in several groups of a step
            acc = per_task.setdefault(task.id, [0.0, 0])
            acc[0] += float(wins[g])
            acc[1] += int(counts[g])
        for tid, (s, c) in per_task.items():
            self.table.update(tid, s, c, period)
        sized = counts >= 2
        mixed = (wins > 0) & (wins < counts)
        self.observed = {
            "knapsack/frac_mixed": float(mixed[sized].float().mean()) if bool(sized.any()) else 0.0,
            "knapsack/success_rate": float(ok.mean()),
        }

    # sampling: budgets
    @hookimpl
    def zoo_plan_budget(self, ctx, tasks, group_size, budget_left=None):
        cfg = ctx.config.knapsack
        total = cfg.total_budget if cfg.total_budget is not None else group_size * len(tasks)
        if budget_left is not None:  # a dynamic-sampling refill: only what the step's kept groups left over
            total = min(total, int(budget_left))
        estimates = [self.table.estimate(t.id, cfg.estimate) for t in tasks]
        # value each budget by the group it yields (a wrapper such as iGRPO trains only part of it);
        # the estimates come from the rollouts sampling returned, i.e. from those same groups
        plan = plan_budgets(
            estimates, total, cfg.min_rollouts, cfg.max_rollouts, cfg.leftover, cfg.solver,
            trained=lambda b: ctx.hooks.trained_rollouts(ctx, b), fallback_confidence=cfg.fallback_confidence,
        )
        self.plan, self.plan_step = plan, ctx.step
        return [int(b) for b in plan.budgets]

    # lifecycle
    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        out = dict(self.observed)
        out["knapsack/tasks_tracked"] = len(self.table)
        if len(rollouts) and rollouts.rewards:
            # share of rollouts whose group's total reward is not constant (the paper's effective
            # gradient ratio); with equal group sizes it equals 1 - frac_zero_std
            total = weighted_sum(rollouts.rewards, ctx.reward_weights(rollouts))
            groups = rollouts.groups
            flat = segment_all_equal(total, groups)[groups.index]
            out["knapsack/nonzero_rollouts"] = float((~flat).double().mean())
        plan = self.plan if self.plan_step == step else None
        if plan is None or plan.budgets.size == 0:
            return out
        b, est = plan.budgets, plan.estimates
        known = ~np.isnan(est)
        out.update(
            {
                "knapsack/budget_min": int(b.min()),
                "knapsack/budget_max": int(b.max()),
                "knapsack/budget_mean": float(b.mean()),
                "knapsack/budget_gini": gini(b),
                "knapsack/budget_total": int(b.sum()),
                "knapsack/value": plan.value(),
                "knapsack/value_uniform": plan.uniform_value(),
                "knapsack/estimated_frac": float(known.mean()),
                "knapsack/tasks_p0": int((known & (est <= 0)).sum()),
                "knapsack/tasks_p1": int((known & (est >= 1)).sum()),
                "knapsack/fallback_rollouts": int(plan.fallback),
            }
        )
        return out

    @hookimpl
    def zoo_state_dict(self, ctx):
        return self.table.state_dict()

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.table.load_state_dict(state)
