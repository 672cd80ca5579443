"""MC-GRPO as grpo-zoo hooks.

- ``zoo_plan_budget`` (wrapper): every budget planned by whoever plans it gets +1 (G -> G+1).
- ``zoo_group_center`` / ``zoo_group_scale``: group median and MAD + eps, so any aggregation
  that calls ``ctx.normalize`` (built-in GRPO, GDPO's per-column step) is median-centred.
- ``zoo_aggregate_rewards`` (wrapper): optional rescaling of the advantages (off by default).
- ``zoo_select_for_loss`` (wrapper): the pivot of each group leaves the loss, on top of
  whatever the active selection keeps.
- ``zoo_step_metrics`` + state: pivot, MAD and sign-flip figures; the per-task reward table
  behind the sign-flip estimate is checkpointed.
"""
from __future__ import annotations

import warnings

import torch

from grpo_zoo import hookimpl
from grpo_zoo.advantages import weighted_sum

from .config import MCGRPOConfig
from .median import (
    mad_is_zero,
    mad_scale,
    mean_baseline_advantages,
    median_center,
    min_abs_index,
    nonzero_rescale,
    pivot_mask,
    rescale,
    sign_disagrees,
    sign_reversed,
)

NAME = "mc_grpo"
ADV_TOL = 1e-6  # |A| at or below this counts as a zero advantage in the metrics


def total_reward(ctx, rollouts) -> torch.Tensor:
    """The scalar reward per rollout: reward columns weighted by ``reward.weights`` (float64)."""
    return weighted_sum(rollouts.rewards, ctx.reward_weights(rollouts))


class MCGRPO:
    """One instance per run; keeps the per-task reward table used by the sign-flip metric."""

    def __init__(self):
        self.table: dict[str, list[float]] = {}  # task id -> [reward sum, rollout count]
        self._last: dict | None = None  # pivot figures of the current step, for zoo_step_metrics
        self._warned_even = False

    @hookimpl
    def zoo_config_model(self):
        return MCGRPOConfig

    # sampling: G -> G+1, whoever planned G
    @hookimpl(wrapper=True)
    def zoo_plan_budget(self, ctx, tasks, group_size):
        budgets = yield
        return [self._sampled(ctx, int(b)) for b in budgets]

    def _sampled(self, ctx, budget: int) -> int:
        """The fewest rollouts to draw so that the group the advantages see has one more member than
        the planned budget trains (the pivot), and an odd size (odd_groups).

        Plain sampling returns every rollout, so that is budget + 1, or budget + 2 where budget + 1 is
        even: with an even group the lower median splits 50/50 groups in favour of successes
        ([1, 1, 0, 0] -> A = [1000, 1000, 0, 0]); the paper's G + 1 is always odd. Group sizes come
        from zoo_trained_rollouts, so a wrapper that keeps drafts out (iGRPO) is counted.
        """
        want = ctx.hooks.trained_rollouts(ctx, budget) + 1
        odd = ctx.config.mc_grpo.odd_groups
        fallback = None
        for n in range(budget + 1, 4 * budget + 16):  # any split rule reaches the size well within this
            size = ctx.hooks.trained_rollouts(ctx, n)
            if size >= want:
                fallback = n if fallback is None else fallback
                if not odd or size % 2 == 1:
                    break
        else:
            n = fallback if fallback is not None else budget + 1
        size = ctx.hooks.trained_rollouts(ctx, n)
        if size % 2 == 0 and not self._warned_even:
            self._warned_even = True
            why = "mc_grpo.odd_groups = false" if not odd else "no nearby budget gives one"
            warnings.warn(
                f"mc_grpo: a budget of {budget} gives an even group of {size} ({why}); the lower median "
                f"then gives 50/50 groups positive advantages only",
                stacklevel=2,
            )
        return n

    # advantage pieces (the mean_drop_min control passes both questions on to the built-in mean / std)
    @hookimpl
    def zoo_group_center(self, ctx, values, groups):
        if ctx.config.mc_grpo.baseline == "mean_drop_min":
            return None
        return median_center(values, groups)

    @hookimpl
    def zoo_group_scale(self, ctx, values, groups, center):
        if ctx.config.mc_grpo.baseline == "mean_drop_min":
            return None
        return mad_scale(values, groups, center, ctx.config.mc_grpo.eps)

    @hookimpl(wrapper=True)
    def zoo_aggregate_rewards(self, ctx, rollouts, weights):
        advantages = yield
        cfg = ctx.config.mc_grpo
        out = rescale(advantages, rollouts.groups, cfg.rescale, cfg.clip_value)
        if cfg.nonzero_rescale:
            out = nonzero_rescale(out, rollouts.groups, ADV_TOL)
        return out

    @hookimpl(wrapper=True)
    def zoo_select_for_loss(self, ctx, rollouts):
        inner = torch.as_tensor((yield), dtype=torch.bool)
        cfg = ctx.config.mc_grpo
        if cfg.baseline == "mean_drop_min":
            idx = min_abs_index(rollouts.advantages.double(), rollouts.groups)
            pivots = torch.zeros(len(rollouts), dtype=torch.bool)
            pivots[idx[idx >= 0]] = True
            self._last = {"pivots_dropped": int((inner & pivots).sum())}
            return inner & ~pivots
        if cfg.pivot_on == "advantage":
            # the final advantages are a per-group increasing function of the aggregated score
            # (GDPO's batch step only scales), so their median rollout is the score's median rollout
            values = rollouts.advantages.double()
        else:
            values = total_reward(ctx, rollouts)
        pivots = pivot_mask(values, rollouts.groups)
        self._last = {"pivots_dropped": int((inner & pivots).sum())}
        return inner & ~pivots

    # lifecycle
    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        cfg = ctx.config.mc_grpo
        groups = rollouts.groups
        total = total_reward(ctx, rollouts)
        keep = rollouts.in_loss.bool()
        adv = rollouts.advantages.double()
        last, self._last = self._last or {}, None
        m = {
            f"{NAME}/pivots_dropped": last.get("pivots_dropped", 0),
            f"{NAME}/mad_zero_frac": float(mad_is_zero(total, groups).double().mean()) if len(total) else 0.0,
        }
        if bool(keep.any()):
            m[f"{NAME}/nonzero_adv_frac"] = float((adv[keep].abs() > ADV_TOL).double().mean())
            m[f"{NAME}/adv_abs_max"] = float(adv[keep].abs().max())
        if cfg.sign_flip_reference != "off":
            m.update(self._sign_flip(cfg.sign_flip_reference, rollouts, total, adv, keep))
        return m

    def _sign_flip(self, mode: str, rollouts, total, adv, keep) -> dict:
        """Sign of each loss rollout's advantage vs the sign of r - (estimated expected reward of its task)."""
        groups = rollouts.groups
        ids = [t.id for t in rollouts.tasks]
        step_sum = torch.zeros(groups.num_groups, dtype=torch.float64).index_add_(0, groups.index, total)
        step_cnt = groups.counts.tolist()
        if mode == "pooled":
            self._add(ids, step_sum.tolist(), step_cnt)
        ref = torch.tensor(
            [self.table[i][0] / self.table[i][1] if self.table.get(i, (0, 0))[1] > 0 else float("nan") for i in ids],
            dtype=torch.float64,
        )
        if mode == "history":
            self._add(ids, step_sum.tolist(), step_cnt)
        ref = ref[groups.index]
        use = keep & ~torch.isnan(ref)
        if not bool(use.any()):
            return {}
        mean_adv = mean_baseline_advantages(total, groups, keep)
        r, ref = total[use], ref[use]

        def rate(test, a):
            return float(test(a[use], r, ref, ADV_TOL).double().mean())

        return {
            f"{NAME}/sign_flip_rate": rate(sign_disagrees, adv),
            f"{NAME}/sign_reversal_rate": rate(sign_reversed, adv),
            f"{NAME}/sign_flip_rate_mean_baseline": rate(sign_disagrees, mean_adv),
            f"{NAME}/sign_reversal_rate_mean_baseline": rate(sign_reversed, mean_adv),
        }

    def _add(self, ids, sums, counts) -> None:
        for task_id, s, n in zip(ids, sums, counts):
            if n:
                row = self.table.setdefault(task_id, [0.0, 0])
                row[0] += float(s)
                row[1] += int(n)

    @hookimpl
    def zoo_state_dict(self, ctx):
        return {"table": {k: list(v) for k, v in self.table.items()}}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.table = {str(k): [float(v[0]), int(v[1])] for k, v in state.get("table", {}).items()}
