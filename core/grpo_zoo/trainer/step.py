"""One GRPO training step: select, budget, roll out, score, advantages, policy update."""
from __future__ import annotations

import contextlib
import math
import time

import torch

from ..behavior import BehaviorCorrection
from ..segments import segment_all_equal
from ..types import LossInputs, RolloutRequest, Rollouts
from . import dynamic_sampling, finite
from .distributed import gather_rollouts, shard_by_budget
from .distributed import world as world_of
from .reduce import all_reduce
from .truncation import counted_lengths, mask_truncated


def make_request(ctx, tasks, budget_left=None) -> RolloutRequest:
    budgets = ctx.hooks.plan_budget(ctx, tasks, ctx.config.sampling.group_size, budget_left)
    return RolloutRequest(tasks=list(tasks), prompts=[ctx.hooks.build_prompt(ctx, t) for t in tasks], budgets=budgets)


def collect(ctx, tasks, source=None, budget_left=None, with_budgets=False) -> Rollouts:
    """Roll out and score this rank's share of ``tasks``; every rank ends with the whole batch.

    Budgets are planned over the step's whole task list on every rank (planners
    see the same state: they observe the gathered batch), then the tasks are
    dealt to ranks so each generates about as many rollouts.
    With ``source``, groups that zoo_accept_groups rejects are refilled from it
    (see dynamic_sampling).
    """
    full = make_request(ctx, tasks, budget_left)
    local = shard_by_budget(ctx, full.budgets)
    request = full.subset(local)
    rollouts = ctx.hooks.rollout(ctx, request)
    rollouts = gather_rollouts(ctx, rollouts, tasks, local)
    # reward.on_nonfinite applies to each scored batch, before any plugin accepts or observes a NaN
    budgets = full.budgets
    checked = finite.check_rewards(ctx, rollouts)
    if checked is not rollouts:  # "drop_group": its tasks left the batch, and so do their budgets
        kept = {id(t) for t in checked.tasks}
        budgets = [b for t, b in zip(rollouts.tasks, budgets) if id(t) in kept]
    rollouts = checked
    if with_budgets:
        return rollouts, budgets
    return rollouts if source is None else dynamic_sampling.refill(ctx, rollouts, budgets, source)


def loss_order(rollouts: Rollouts, idx: list[int]) -> list[int]:
    """A deterministic order for the update: rollouts of one prompt together (the engine runs a
    shared prompt once per micro-batch), similar prompt and completion lengths side by side."""
    first: dict[tuple, int] = {}
    for i in idx:
        first.setdefault(tuple(rollouts.prompt_ids[i]), i)

    def key(i):
        p = rollouts.prompt_ids[i]
        return (len(p), first[tuple(p)], len(rollouts.completion_ids[i]), i)

    return sorted(idx, key=key)


def micro_batches(rollouts: Rollouts, idx: list[int], size: int) -> list[list[int]]:
    ordered = loss_order(rollouts, idx)
    return [ordered[k : k + size] for k in range(0, len(ordered), size)]


def split_for_rank(ctx, ordered: list[int]) -> list[int]:
    """This rank's contiguous share (sizes differ by at most one), so groups mostly stay on one rank."""
    rank, size = world_of(ctx)
    n = len(ordered)
    return ordered[rank * n // size : (rank + 1) * n // size]


_GLOBAL_NORMALIZERS = ("grpo", "dapo", "dr_grpo", "gspo", "cispo", "sapo")
_LOSS_HOOKS = ("zoo_policy_loss", "zoo_aggregate_loss", "zoo_kl")


def skippable(ctx, rollouts: Rollouts) -> torch.Tensor | None:
    """Which rollouts contribute exactly zero gradient, or None when that cannot be known.

    With the built-in loss (no plugin implements or wraps a loss hook), beta = 0
    and a normalizer that spans the whole step, a rollout with advantage 0 has
    per-token loss 0 whatever its ratio, so skipping its forward and backward
    leaves the gradient unchanged (groups whose rewards are all equal are common).
    """
    cfg = ctx.config.loss
    if cfg.beta > 0 or cfg.type not in _GLOBAL_NORMALIZERS or rollouts.advantages is None:
        return None
    pm = ctx.hooks.pm
    for hook in _LOSS_HOOKS:
        if any(not impl.plugin_name.startswith("builtin.") for impl in getattr(pm.hook, hook).get_hookimpls()):
            return None
    return rollouts.advantages == 0


def policy_update(ctx, rollouts: Rollouts, optimizer, scheduler) -> dict[str, float]:
    """num_iterations optimizer steps over the rollouts that enter the loss."""
    engine, cfg = ctx.engine, ctx.config
    acc = ctx.accelerator
    world = acc.num_processes if acc is not None else 1
    chosen = torch.nonzero(rollouts.in_loss).flatten().tolist()
    # Rollouts whose gradient is exactly zero need no forward/backward (normalizers still count them).
    zero_gradient = skippable(ctx, rollouts)
    active = chosen if zero_gradient is None else [i for i in chosen if not zero_gradient[i]]
    mine = split_for_rank(ctx, loss_order(rollouts, active))
    batches = micro_batches(rollouts, mine, cfg.train.micro_batch_size)
    # DDP all-reduces once per backward: every rank runs the same number of
    # micro-batches; a rank with fewer pads with zero-weight ones.
    weights = [1.0] * len(batches)
    if world > 1 and active:
        most = math.ceil(math.ceil(len(active) / world) / cfg.train.micro_batch_size)
        while len(batches) < most:
            batches.append([active[0]])
            weights.append(0.0)
    lengths = rollouts.completion_lengths()
    # Normalizers span the whole optimizer step on every rank, divided by the
    # world size because DDP averages the ranks' gradients.
    total_tokens = float(counted_lengths(ctx, rollouts, lengths)[chosen].sum()) / world
    total_seqs = len(chosen) / world
    longest = int(lengths.max()) if len(lengths) else 1
    max_len = max(cfg.sampling.max_new_tokens, longest)
    real_batches = sum(1 for w in weights if w > 0)

    def ids(mb):
        return [rollouts.prompt_ids[i] for i in mb], [rollouts.completion_ids[i] for i in mb]

    # With num_iterations = 1 the "old" log-probs are the current ones,
    # detached: no extra forward pass. With more, they are frozen once here.
    # Rollouts trained in another context than they were sampled in get theirs
    # from the sampling (behaviour) context, before any optimizer step.
    behavior = rollouts.behavior_prompt_ids or [None] * len(rollouts)
    rows_of = [[r for r, i in enumerate(mb) if behavior[i] is not None] for mb in batches]
    # Sharded (fsdp2), every forward all-gathers: all ranks must score alike, so a rank without
    # behaviour rows in a micro-batch where another rank has some scores a stand-in and drops it.
    sharded = getattr(engine, "sharded", False)
    stand_in = all_reduce(ctx, torch.tensor([float(bool(r)) for r in rows_of]), "max").tolist() if sharded and batches else []
    old, ref, old_rows = {}, {}, {}
    with torch.no_grad():
        for k, mb in enumerate(batches):
            if cfg.loss.num_iterations > 1:
                old[k] = engine.logprobs(*ids(mb))[0].detach()
            rows = rows_of[k]
            if rows:
                lp, _ = engine.logprobs([behavior[mb[r]] for r in rows], [rollouts.completion_ids[mb[r]] for r in rows])
                old_rows[k] = (rows, lp.detach())
            elif sharded and stand_in[k]:
                engine.logprobs(*ids(mb[:1]))
            if cfg.loss.beta > 0:
                ref[k] = engine.logprobs(*ids(mb), scorer=engine.ref_scorer)[0].detach()

    def old_logp(k, logp):
        base = old.get(k, logp.detach())
        if k not in old_rows:
            return base
        rows, lp = old_rows[k]
        base = base.clone()
        base[rows, : lp.shape[1]] = lp.to(base.dtype)  # same completions: same lengths, the rest is padding
        return base

    stats = {"loss": 0.0, "kl": 0.0, "clip_frac": 0.0, "grad_norm": 0.0}
    correction = BehaviorCorrection(cfg.loss, rollouts)  # behaviour log-probs vs old_logp (behavior.py)
    params = [p for p in engine.model.parameters() if p.requires_grad]
    for _ in range(cfg.loss.num_iterations):
        optimizer.zero_grad(set_to_none=True)
        kl_sum = clip_sum = tok_sum = 0.0
        for k, mb in enumerate(batches):
            sync = contextlib.nullcontext()
            if acc is not None and k < len(batches) - 1:
                sync = acc.no_sync(engine.scorer)  # all-reduce once, after the last micro-batch
            with sync:
                logp, mask = engine.logprobs(*ids(mb))
                mask = mask_truncated(ctx, rollouts, mb, mask)
                inputs = LossInputs(
                    logp=logp,
                    old_logp=old_logp(k, logp),
                    advantages=rollouts.advantages[mb].to(logp.device),
                    mask=mask,
                    ref_logp=ref.get(k),
                    total_tokens=total_tokens,
                    total_sequences=total_seqs,
                    max_completion_length=max_len,
                    num_micro_batches=max(real_batches, 1),
                )
                per_token = ctx.hooks.policy_loss(ctx, inputs)
                is_weight = correction.weight(mb, inputs.old_logp, mask, weights[k])
                if is_weight is not None:
                    per_token = per_token * is_weight
                if cfg.loss.beta > 0:
                    kl = ctx.hooks.kl(ctx, inputs)
                    per_token = per_token + cfg.loss.beta * kl
                    kl_sum += weights[k] * float((kl.detach() * mask).sum())
                loss = ctx.hooks.aggregate_loss(ctx, per_token, inputs) * weights[k]
                if acc is not None:
                    acc.backward(loss)
                else:
                    loss.backward()
            stats["loss"] += float(loss.detach())
            ratio = torch.exp(logp.detach() - inputs.old_logp)
            clipped = (ratio < 1 - cfg.loss.epsilon_low) | (ratio > 1 + cfg.loss.epsilon_high)
            clip_sum += weights[k] * float((clipped & mask).sum())
            tok_sum += weights[k] * float(mask.sum())
        if not batches:  # every rollout had a zero gradient: still an optimizer step (momentum, decay)
            for p in params:
                p.grad = torch.zeros_like(p)
        if cfg.train.grad_clip > 0:
            clip = acc.clip_grad_norm_ if acc is not None else torch.nn.utils.clip_grad_norm_  # unscales fp16, shards
            norm = clip(params, cfg.train.grad_clip)
            stats["grad_norm"] = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # fsdp2: a DTensor
        if finite.bad_update(ctx, params, stats):
            optimizer.zero_grad(set_to_none=True)  # skipped: NaN/inf must reach neither weights nor moments
        else:
            optimizer.step()
        scheduler.step()
        if acc is not None:  # token-weighted over every rank's share, as one process computes them
            kl_sum, clip_sum, tok_sum = all_reduce(ctx, torch.tensor([kl_sum, clip_sum, tok_sum]), "sum").tolist()
        stats["kl"] = kl_sum / max(tok_sum, 1.0)
        stats["clip_frac"] = clip_sum / max(tok_sum, 1.0)
        correction.recording = False
    stats["loss"] /= cfg.loss.num_iterations
    if acc is not None:  # DDP averages the ranks' gradients: the step's loss is the mean of theirs
        stats["loss"] = float(acc.reduce(torch.tensor(stats["loss"], device=acc.device), reduction="mean"))
    stats["lr"] = scheduler.get_last_lr()[0]
    stats.update(correction.metrics())
    return stats


def train_step(ctx, source, step: int, optimizer, scheduler) -> tuple[dict, Rollouts]:
    cfg = ctx.config
    ctx.step = step
    t0 = time.perf_counter()
    tasks = ctx.hooks.select_tasks(ctx, source, step, cfg.train.prompts_per_step)
    with ctx.engine.gathered() if hasattr(ctx.engine, "gathered") else contextlib.nullcontext():
        rollouts = collect(ctx, tasks, source)  # sharded (fsdp2): every rank samples from gathered weights
    t1 = time.perf_counter()
    dynamic_sampling.observe(ctx, rollouts)
    ctx.compute_advantages(rollouts)
    stats = policy_update(ctx, rollouts, optimizer, scheduler)
    ctx.hooks.after_update(ctx, step)  # e.g. push the new weights to the inference server (weight_sync.py)
    t2 = time.perf_counter()
    metrics = step_metrics(ctx, rollouts, step, stats)
    metrics.update({"time/generate_s": t1 - t0, "time/train_s": t2 - t1, "time/step_s": t2 - t0})
    metrics.update(ctx.hooks.step_metrics(ctx, rollouts, step))
    return metrics, rollouts


def step_metrics(ctx, rollouts: Rollouts, step: int, stats: dict) -> dict:
    weights = ctx.reward_weights(rollouts)
    total = sum(weights[k] * v for k, v in rollouts.rewards.items())
    groups = rollouts.groups
    m = {"step": step, "reward/mean": float(total.mean()), "reward/std": float(total.std()) if len(total) > 1 else 0.0}
    for k, v in rollouts.rewards.items():
        m[f"reward/{k}/mean"] = float(v.mean())
    m["frac_zero_std"] = float(segment_all_equal(total, groups).float().mean())
    m["rollouts"] = len(rollouts)
    m["rollouts_in_loss"] = int(rollouts.in_loss.sum())
    m["tokens"] = int(rollouts.completion_lengths().sum())
    m["completion_len/mean"] = float(rollouts.completion_lengths().float().mean())
    m["advantage/abs_mean"] = float(rollouts.advantages.abs().mean())
    m.update({k: v for k, v in stats.items() if k != "kl" or ctx.config.loss.beta > 0})
    m.update(rollouts.metrics)
    return m
