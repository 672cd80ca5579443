"""NaN and inf: in rewards (policy ``reward.on_nonfinite``), in the loss and in gradients (skipped updates).

One NaN reward makes every advantage of its group (or batch) NaN, then the loss,
the gradients and, after one optimizer step, every weight. So non-finite
values are stopped where they enter:

- rewards, right after the rollouts are scored (before any plugin observes
  them): ``"error"`` (default) raises naming the plugin, the column and the
  task; ``"drop_group"`` removes every group with a non-finite value in any
  column (TRL's convention: a reward function returns None, i.e. NaN, for
  samples it does not apply to... here the whole group goes, since a group's
  advantages need all of its rewards); ``"zero"`` replaces them with 0;
- the gradients (a NaN/inf loss makes them NaN), before each optimizer step:
  a non-finite one skips that update (weights and optimizer moments untouched), counted in
  ``nonfinite/skipped_updates``; after ``train.max_bad_steps`` consecutive steps
  with a skipped update the run stops with an error.
"""
from __future__ import annotations

import math
from dataclasses import replace

import torch

from ..errors import NonFiniteError
from .durable import warn
from .sharding import local


def _describe(v: float) -> str:
    return "NaN" if math.isnan(v) else ("inf" if v > 0 else "-inf")


def check_rewards(ctx, rollouts):
    """Apply ``reward.on_nonfinite`` to the step's scored rollouts; returns the rollouts to train on."""
    if not rollouts.rewards:
        return rollouts
    bad = torch.zeros(len(rollouts), dtype=torch.bool)
    for col in rollouts.rewards.values():
        bad |= ~torch.isfinite(col)
    if not bad.any():
        return rollouts
    policy = ctx.config.reward.on_nonfinite
    count = int(bad.sum())
    if policy == "error":
        name, i = next((n, int(torch.nonzero(~torch.isfinite(c))[0])) for n, c in rollouts.rewards.items()
                       if not torch.isfinite(c).all())
        owner = getattr(ctx.hooks, "column_owners", {}).get(name, "?")
        raise NonFiniteError(
            f"step {ctx.step}: reward column {name!r} (plugin {owner!r}) is {_describe(float(rollouts.rewards[name][i]))} "
            f"for task {rollouts.task_of(i).id!r} ({count} non-finite reward(s) this step); set "
            'reward.on_nonfinite = "drop_group" or "zero" to train on without them'
        )
    if policy == "zero":
        for name, col in rollouts.rewards.items():
            rollouts.rewards[name] = torch.where(torch.isfinite(col), col, torch.zeros_like(col))
        rollouts.metrics["nonfinite/zeroed"] = float(count)
        return rollouts
    return drop_groups(ctx, rollouts, torch.unique(rollouts.group[bad]))


def drop_groups(ctx, rollouts, groups: torch.Tensor):
    """The rollouts without the given groups; their tasks leave the task list too (ids renumbered),
    so no hook sees an empty group."""
    keep_groups = [g for g in range(len(rollouts.tasks)) if g not in set(groups.tolist())]
    keep = torch.isin(rollouts.group, torch.as_tensor(keep_groups, dtype=torch.long))
    if not keep.any():
        raise NonFiniteError(
            f"step {ctx.step}: every group has a non-finite reward (reward.on_nonfinite = \"drop_group\"): "
            "nothing left to train on; check the reward plugins"
        )
    kept = rollouts.take(torch.nonzero(keep).flatten())
    renumber = torch.full((len(rollouts.tasks),), -1, dtype=torch.long)
    renumber[torch.as_tensor(keep_groups, dtype=torch.long)] = torch.arange(len(keep_groups))
    out = replace(kept, tasks=[rollouts.tasks[g] for g in keep_groups], group=renumber[kept.group])
    out.metrics["nonfinite/dropped_groups"] = float(len(groups))
    return out


def bad_update(ctx, params, stats: dict) -> bool:
    """True (and counted in ``stats``) when a gradient is NaN/inf: the caller skips the update.

    The decision rests on the gradients alone: with several processes they are all-reduced, so every
    rank decides alike (a rank-local loss could differ); a NaN loss makes NaN gradients anyway.
    """
    loss_ok = math.isfinite(stats.get("loss", 0.0))
    grads = [p.grad for p in params if p.grad is not None]
    # sharded (fsdp2) gradients: each rank checks its shards, then the ranks agree
    grads_ok = all(bool(torch.isfinite(local(g)).all()) for g in grads)
    if any(hasattr(g, "to_local") for g in grads):
        grads_ok = ctx.all_reduce(float(grads_ok), "min") > 0
    if grads_ok:
        return False
    stats["nonfinite/skipped_updates"] = stats.get("nonfinite/skipped_updates", 0) + 1
    what = "loss" if not loss_ok else "gradient"
    warn(f"step {ctx.step}: non-finite {what}; skipping this optimizer update")
    return True


def after_step(ctx, metrics: dict) -> None:
    """Count consecutive steps with a skipped update; stop the run after ``train.max_bad_steps`` of them."""
    bad = metrics.get("nonfinite/skipped_updates", 0) > 0
    run = ctx.info.get("bad_steps", 0) + 1 if bad else 0
    ctx.info["bad_steps"] = run
    limit = ctx.config.train.max_bad_steps
    if bad and run >= limit:
        raise NonFiniteError(
            f"step {ctx.step}: the loss or gradients were NaN/inf in {run} consecutive steps "
            f"(train.max_bad_steps = {limit}); stopping. Lower train.lr, keep train.grad_clip on, or check the "
            "reward and loss plugins"
        )
