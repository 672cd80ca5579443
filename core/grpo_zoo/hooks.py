"""A typed facade over the plugin manager: call sites get typed results and errors that name the plugin."""
from __future__ import annotations

from typing import Any

import pluggy
import torch

from .plugins import PER_PLUGIN_HOOKS, PluginHookError, culprit
from .segments import Groups
from .types import LossInputs, RolloutRequest, Rollouts, Task


class Hooks:
    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.column_owners: dict[str, str] = {}  # reward column -> plugin, for errors that name the plugin

    def _call(self, hook: str, **kwargs):
        try:
            return getattr(self.pm.hook, hook)(**kwargs)
        except PluginHookError:
            raise
        except Exception as exc:
            raise PluginHookError(culprit(self.pm, hook, exc), hook, exc) from exc

    def _first(self, hook: str, **kwargs):
        out = self._call(hook, **kwargs)
        if out is None:
            raise PluginHookError("?", hook, RuntimeError("no plugin answered (built-ins are missing?)"))
        return out

    def per_plugin(self, hook: str, **kwargs) -> dict[str, Any]:
        """Call ``hook`` on each plugin separately; returns {plugin name: answer} for non-None answers."""
        assert hook in PER_PLUGIN_HOOKS, hook
        out = {}
        for impl in getattr(self.pm.hook, hook).get_hookimpls():
            try:  # as pluggy does, an implementation gets only the arguments it names
                value = impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception as exc:
                raise PluginHookError(impl.plugin_name, hook, exc) from exc
            if value is not None:
                out[impl.plugin_name] = value
        return out

    def load_state_dicts(self, ctx, states: dict[str, Any]) -> None:
        for impl in self.pm.hook.zoo_load_state_dict.get_hookimpls():
            if impl.plugin_name in states:
                try:
                    impl.function(ctx=ctx, state=states[impl.plugin_name])
                except Exception as exc:
                    raise PluginHookError(impl.plugin_name, "zoo_load_state_dict", exc) from exc

    # curriculum
    def task_source(self, ctx):
        return self._first("zoo_task_source", ctx=ctx)

    def select_tasks(self, ctx, source, step: int, count: int, exclude=None) -> list[Task]:
        return self._first("zoo_select_tasks", ctx=ctx, source=source, step=step, count=count, exclude=exclude)

    def observe(self, ctx, rollouts: Rollouts, accepted: torch.Tensor | None = None) -> None:
        if accepted is None:
            accepted = torch.ones(len(rollouts.tasks), dtype=torch.bool)
        self._call("zoo_observe", ctx=ctx, rollouts=rollouts, accepted=accepted)

    # sampling
    def plan_budget(self, ctx, tasks: list[Task], group_size: int, budget_left: int | None = None) -> list[int]:
        budgets = [
            int(b)
            for b in self._first("zoo_plan_budget", ctx=ctx, tasks=tasks, group_size=group_size, budget_left=budget_left)
        ]
        if len(budgets) != len(tasks):
            raise PluginHookError("?", "zoo_plan_budget", ValueError(f"{len(budgets)} budgets for {len(tasks)} tasks"))
        return budgets

    def trained_rollouts(self, ctx, budget: int) -> int:
        """Size of the group that a budget of ``budget`` rollouts yields after the sampling wrappers."""
        n = int(self._first("zoo_trained_rollouts", ctx=ctx, budget=int(budget)))
        if n < 0:
            raise PluginHookError("?", "zoo_trained_rollouts", ValueError(f"{n} trained rollouts for a budget of {budget}"))
        return n

    def build_prompt(self, ctx, task: Task):
        return self._first("zoo_build_prompt", ctx=ctx, task=task)

    def rollout(self, ctx, request: RolloutRequest) -> Rollouts:
        return self._first("zoo_rollout", ctx=ctx, request=request)

    def generate(self, ctx, request: RolloutRequest) -> Rollouts:
        out = self._first("zoo_generate", ctx=ctx, request=request)
        if not request.extras.get("eval"):  # every completion the run paid for (drafts, re-samples); not evaluation
            ctx.info["generated"] = ctx.info.get("generated", 0) + len(out)
        return out

    # reward
    def rewards(self, ctx, rollouts: Rollouts) -> dict[str, torch.Tensor]:
        cols: dict[str, torch.Tensor] = {}
        owner: dict[str, str] = {}
        impls = self.pm.hook.zoo_reward.get_hookimpls()
        for impl in impls:  # registration order: built-ins first, so a repeated column blames the plugin
            try:
                out = impl.function(ctx=ctx, rollouts=rollouts)
            except Exception as exc:
                raise PluginHookError(impl.plugin_name, "zoo_reward", exc) from exc
            for name, col in (out or {}).items():
                if name in cols:
                    raise PluginHookError(
                        impl.plugin_name,
                        "zoo_reward",
                        ValueError(f"reward column {name!r} is already produced by {owner[name]!r}"),
                    )
                col = torch.as_tensor(col, dtype=torch.float32).flatten()
                if col.numel() != len(rollouts):
                    raise PluginHookError(
                        impl.plugin_name,
                        "zoo_reward",
                        ValueError(f"column {name!r} has {col.numel()} values for {len(rollouts)} rollouts"),
                    )
                cols[name] = col
                owner[name] = impl.plugin_name
        self.column_owners.update(owner)
        return cols

    # advantage
    def group_center(self, ctx, values: torch.Tensor, groups: Groups) -> torch.Tensor:
        return self._first("zoo_group_center", ctx=ctx, values=values, groups=groups)

    def group_scale(self, ctx, values: torch.Tensor, groups: Groups, center: torch.Tensor) -> torch.Tensor:
        return self._first("zoo_group_scale", ctx=ctx, values=values, groups=groups, center=center)

    def aggregate_rewards(self, ctx, rollouts: Rollouts, weights: dict[str, float]) -> torch.Tensor:
        return self._first("zoo_aggregate_rewards", ctx=ctx, rollouts=rollouts, weights=weights)

    def select_for_loss(self, ctx, rollouts: Rollouts) -> torch.Tensor:
        return self._first("zoo_select_for_loss", ctx=ctx, rollouts=rollouts)

    # loss
    def policy_loss(self, ctx, inputs: LossInputs) -> torch.Tensor:
        return self._first("zoo_policy_loss", ctx=ctx, inputs=inputs)

    def kl(self, ctx, inputs: LossInputs) -> torch.Tensor:
        return self._first("zoo_kl", ctx=ctx, inputs=inputs)

    def aggregate_loss(self, ctx, per_token: torch.Tensor, inputs: LossInputs) -> torch.Tensor:
        return self._first("zoo_aggregate_loss", ctx=ctx, per_token=per_token, inputs=inputs)

    # dynamic sampling
    def accept_groups(self, ctx, rollouts: Rollouts) -> torch.Tensor:
        """Every plugin's answer AND-ed: one bool per group of ``rollouts.tasks``."""
        n = len(rollouts.tasks)
        keep = torch.ones(n, dtype=torch.bool)
        for name, out in self.per_plugin("zoo_accept_groups", ctx=ctx, rollouts=rollouts).items():
            out = torch.as_tensor(out).flatten()
            if out.numel() != n or out.dtype != torch.bool:
                raise PluginHookError(
                    name,
                    "zoo_accept_groups",
                    ValueError(f"expected a bool tensor with one entry per group ({n}), got {out.dtype} [{out.numel()}]"),
                )
            keep &= out
        return keep

    # lifecycle
    def run_start(self, ctx) -> None:
        self._call("zoo_run_start", ctx=ctx)

    def run_end(self, ctx, metrics: dict) -> None:
        self._call("zoo_run_end", ctx=ctx, metrics=metrics)

    def after_update(self, ctx, step: int) -> None:
        self._call("zoo_after_update", ctx=ctx, step=step)

    def step_metrics(self, ctx, rollouts: Rollouts, step: int) -> dict[str, float]:
        merged: dict[str, float] = {}
        for part in self._call("zoo_step_metrics", ctx=ctx, rollouts=rollouts, step=step):
            merged.update(part or {})
        return merged
