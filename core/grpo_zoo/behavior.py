"""Behaviour-policy correction: importance weights between the sampler's and the trainer's log-probs.

Rollouts can be sampled by another copy of the policy than the one trained
(an inference server a step or more behind, or the same weights with another
kernel and precision): the tokens then come from a behaviour policy mu whose
per-token log-probs the backend returned in ``Rollouts.sample_logp``. The loss
multiplies each token's policy loss by a detached weight built from
rho = pi_old / mu, where pi_old is the trainer's log-prob before the update
(``LossInputs.old_logp``). The modes and bounds follow TRL 1.16's
``vllm_importance_sampling_mode`` / ``_clip_max`` / ``_clip_min`` (its formulas,
our code):

- ``token_truncate``:    w_t = clamp(rho_t, cap_min, cap)
- ``token_mask``:        w_t = rho_t if cap_min <= rho_t <= cap else 0
- ``sequence_truncate``: rho = exp(sum_t log rho_t) per sequence, then clamped, one w per sequence
- ``sequence_mask``:     the sequence ratio, or 0 outside [cap_min, cap]

Tokens whose behaviour log-prob is unknown (NaN) count as log rho = 0, as in TRL.
"""
from __future__ import annotations

import math

import torch

MODES = ("none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask")


def behavior_logp(sample_logp: list[torch.Tensor | None], shape, device) -> torch.Tensor:
    """The rows' behaviour log-probs padded to ``shape`` [B, T]; NaN where unknown (padding, missing rows)."""
    out = torch.full(shape, float("nan"), dtype=torch.float32, device=device)
    for r, lp in enumerate(sample_logp):
        if lp is not None and len(lp):
            n = min(len(lp), shape[1])
            out[r, :n] = lp[:n].to(device=device, dtype=torch.float32)
    return out


def log_ratio(old_logp: torch.Tensor, sample_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-token log(pi_old / mu) [B, T]: 0 on padding and where mu is unknown."""
    diff = (old_logp.detach().float() - sample_logp) * mask
    return torch.nan_to_num(diff, nan=0.0)


def correction_weights(
    old_logp: torch.Tensor, sample_logp: torch.Tensor, mask: torch.Tensor, mode: str, cap: float | None,
    cap_min: float | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(weights, raw ratio): [B, T] for token modes, [B, 1] for sequence modes; both detached."""
    if mode not in MODES or mode == "none":
        raise ValueError(f"loss.behavior_correction {mode!r}: expected one of {', '.join(MODES[1:])}")
    diff = log_ratio(old_logp, sample_logp, mask)
    if mode.startswith("sequence"):
        diff = diff.sum(-1, keepdim=True)
    ratio = torch.exp(diff)
    if mode.endswith("truncate"):
        if cap is None and cap_min is None:  # no bound: plain importance sampling
            return ratio, ratio
        return torch.clamp(ratio, min=cap_min, max=cap), ratio
    lo = -math.inf if cap_min is None else cap_min
    hi = math.inf if cap is None else cap
    return ratio.masked_fill((ratio < lo) | (ratio > hi), 0.0), ratio


class BehaviorCorrection:
    """Applies the configured correction to each micro-batch and collects its metrics over a step.

    ``weight(...)`` returns the per-token weight to multiply the policy loss by
    (None when the correction is off); figures are recorded on the first
    optimizer iteration only, when ``old_logp`` is what the rollouts were
    compared with.
    """

    def __init__(self, loss_cfg, rollouts):
        self.mode = loss_cfg.behavior_correction
        self.cap = loss_cfg.behavior_cap
        self.cap_min = loss_cfg.behavior_cap_min
        self.sample_logp = rollouts.sample_logp
        if self.mode != "none" and self.sample_logp is None:
            raise ValueError(
                f"loss.behavior_correction = {self.mode!r} needs the behaviour log-probs of the sampled tokens "
                f"(Rollouts.sample_logp), which this step's backend did not return"
            )
        self.tokens = self.units = self.changed = 0.0
        self.kl = self.diff_sum = 0.0
        self.diff_max = 0.0
        self.ratio_sum, self.ratio_min, self.ratio_max = 0.0, math.inf, -math.inf
        self.recording = True

    def weight(self, mb: list[int], old_logp: torch.Tensor, mask: torch.Tensor, weight: float = 1.0):
        if self.sample_logp is None:
            return None
        mu = behavior_logp([self.sample_logp[i] for i in mb], old_logp.shape, old_logp.device)
        if self.recording and weight > 0:
            self._record(old_logp, mu, mask)
        if self.mode == "none":
            return None
        w, _ = correction_weights(old_logp, mu, mask, self.mode, self.cap, self.cap_min)
        return w.to(old_logp.dtype)

    def _record(self, old_logp, mu, mask):
        m = mask.bool() & ~torch.isnan(mu)
        d = (old_logp.detach().float() - mu)[m]  # log rho on the tokens the sampler scored
        if d.numel():
            self.tokens += d.numel()
            # k3 estimate of KL(mu || pi_old) from tokens drawn from mu: rho - 1 - log rho >= 0
            self.kl += float((torch.exp(d) - 1 - d).sum())
            self.diff_sum += float(d.abs().sum())
            self.diff_max = max(self.diff_max, float(d.abs().max()))
        mode = self.mode if self.mode != "none" else "token_truncate"
        w, ratio = correction_weights(old_logp, mu, mask, mode, self.cap, self.cap_min)
        if mode.startswith("sequence"):
            keep = mask.bool().any(-1, keepdim=True)
        else:
            keep = mask.bool()
        r, wk = ratio[keep], w[keep]
        if r.numel():
            self.units += r.numel()
            self.ratio_sum += float(r.sum())
            self.ratio_min = min(self.ratio_min, float(r.min()))
            self.ratio_max = max(self.ratio_max, float(r.max()))
            self.changed += float((wk != r).sum())

    def metrics(self) -> dict[str, float]:
        """``behavior/*`` figures of the step (empty when the backend returned no behaviour log-probs).

        ``ratio/*`` are the raw ratios before truncation or masking (per token, or per sequence in
        the sequence modes); ``corrected_frac`` the fraction of them the mode truncated or masked
        (with the correction off: the fraction ``token_truncate`` would have truncated).
        """
        if self.sample_logp is None or not self.tokens:
            return {}
        return {
            "behavior/kl": self.kl / self.tokens,
            "behavior/logp_diff/mean": self.diff_sum / self.tokens,
            "behavior/logp_diff/max": self.diff_max,
            "behavior/ratio/mean": self.ratio_sum / max(self.units, 1.0),
            "behavior/ratio/min": self.ratio_min,
            "behavior/ratio/max": self.ratio_max,
            "behavior/corrected_frac": self.changed / max(self.units, 1.0),
        }
