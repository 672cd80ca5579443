"""Dynamic sampling: keep the groups every plugin accepts (zoo_accept_groups), refill the rest.

After the step's first batch is scored, groups that some plugin rejects (DAPO:
all rewards equal, so no gradient) are set aside and the curriculum is asked
for more tasks, excluding every task this step drew, until the step holds as
many accepted groups as it drew tasks or ``sampling.max_gen_batches`` batches
were sampled. Each refill batch goes through the same path as the first:
budgets from the active planner (told ``budget_left``, the part of the step's
budget the kept groups do not use), prompts, the whole ``zoo_rollout`` chain
(wrappers included), scoring, and the gather across ranks. Every rank sees
the same gathered batches, so every rank keeps the same groups.

``ctx.sample_round`` counts the batches (0 = the first), so refill batches get
random streams of their own and a resumed run draws the same ones.
"""
from __future__ import annotations

import torch

from ..types import Rollouts

KEY = "dynamic_sampling"  # Rollouts.extras key: {"scored": every scored group, "accepted": bool per group of it}
PREFIX = "dynamic_sampling/"


class DynamicSamplingError(RuntimeError):
    pass


def refill(ctx, first: Rollouts, first_budgets: list[int], source) -> Rollouts:
    """The step's kept groups, starting from its first scored batch ``first`` (group g = task g)."""
    from .step import collect  # step imports this module

    cfg = ctx.config.sampling
    target = len(first.tasks)
    step_total = int(sum(first_budgets))
    batches, masks, budgets = [first], [ctx.hooks.accept_groups(ctx, first)], [list(first_budgets)]
    drawn = {t.id for t in first.tasks}
    stop = None
    try:
        while True:
            kept, kept_budget = _kept_so_far(masks, budgets)
            if kept >= target:
                break
            if len(batches) >= cfg.max_gen_batches:
                stop = "cap"
                break
            budget_left = step_total - kept_budget
            count = min(target - kept, budget_left // cfg.group_size)
            if count < 1:  # the kept groups used the step's budget (a planner gave them more than group_size)
                stop = "budget"
                break
            ctx.sample_round = len(batches)
            tasks = ctx.hooks.select_tasks(ctx, source, ctx.step, count, exclude=frozenset(drawn))
            unique = {}
            for t in tasks:  # a curriculum that ignores `exclude` must not hand this step a task twice
                if t.id not in drawn:
                    unique.setdefault(t.id, t)
            tasks = list(unique.values())
            if not tasks:
                stop = "pool"
                break
            drawn |= set(unique)
            batch, planned = collect(ctx, tasks, budget_left=budget_left, with_budgets=True)
            batches.append(batch)
            budgets.append(planned)
            masks.append(ctx.hooks.accept_groups(ctx, batch))
    finally:
        ctx.sample_round = 0

    accepted = torch.cat(masks)
    order = torch.nonzero(accepted).flatten()[:target]  # overshoot: the first accepted groups in draw order
    chosen = order.tolist()
    padded = 0
    if len(chosen) < target and stop in ("cap", "pool"):
        mode = cfg.at_cap
        if mode == "error":
            raise DynamicSamplingError(
                f"dynamic sampling accepted {len(chosen)} of {target} groups in sampling.max_gen_batches = "
                f"{cfg.max_gen_batches} batches (sampling.at_cap = 'error')"
            )
        if mode == "pad" or not chosen:  # keep_fewer with nothing accepted: an empty step cannot train
            rejected = torch.nonzero(~accepted).flatten().tolist()
            extra = rejected[: target - len(chosen)]
            padded = len(extra)
            chosen = sorted(chosen + extra)
    if len(batches) == 1 and len(chosen) == target:
        out = first  # nothing rejected, or nothing to refill with: the batch as it was
        scored = first
    else:
        scored = Rollouts.merge(batches)
        out = scored.compact(chosen)
    kept_mask = torch.zeros(len(accepted), dtype=torch.bool)
    kept_mask[torch.as_tensor(chosen, dtype=torch.long)] = True
    out.extras[KEY] = {"scored": scored, "accepted": accepted, "kept": kept_mask}
    out.metrics.update(
        {
            PREFIX + "batches": len(batches),
            PREFIX + "groups_drawn": len(accepted),
            PREFIX + "groups_accepted": int(accepted.sum()),
            PREFIX + "groups_rejected": int((~accepted).sum()),
            PREFIX + "groups_kept": len(chosen),
            PREFIX + "groups_padded": padded,
            PREFIX + "groups_short": target - len(chosen),
            PREFIX + "rollouts_spent": sum(len(b) for b in batches),
            PREFIX + "budget_planned": int(sum(sum(b) for b in budgets)),
        }
    )
    return out


def _kept_so_far(masks, budgets) -> tuple[int, int]:
    """Accepted groups so far and the planned rollouts they hold."""
    kept = sum(int(m.sum()) for m in masks)
    spent = sum(int(b) for m, bs in zip(masks, budgets) for b, ok in zip(bs, m.tolist()) if ok)
    return kept, spent


def observe(ctx, rollouts: Rollouts) -> None:
    """zoo_observe over every group the step scored (kept or not), with the accepted mask."""
    info = rollouts.extras.get(KEY)
    if info is None:
        ctx.hooks.observe(ctx, rollouts)
    else:
        ctx.hooks.observe(ctx, info["scored"], info["accepted"])
