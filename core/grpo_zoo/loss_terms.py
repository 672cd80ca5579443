"""Pieces of the built-in loss shared by its hooks: importance weights, TRL 1.16's
``cispo`` and ``sapo`` per-token terms, and which normalizer each loss type uses.

Kept out of ``builtins/loss.py`` so the hooks there stay a few lines each; every
formula here is checked against TRL's own ``_compute_loss`` in tests/test_trl_parity.py.
"""
from __future__ import annotations

import torch

# Loss types that reuse another type's aggregation (TRL 1.16: sapo normalizes like grpo,
# cispo like dapo; gspo is grpo with sequence-level importance weights).
AGGREGATION_OF = {"gspo": "grpo", "sapo": "grpo", "cispo": "dapo"}


def aggregation_of(loss_type: str) -> str:
    return AGGREGATION_OF.get(loss_type, loss_type)


def importance_level(cfg) -> str:
    """``"token"`` or ``"sequence"``; ``type = "gspo"`` is an alias that implies ``"sequence"``."""
    return "sequence" if cfg.type == "gspo" else cfg.importance_sampling_level


def log_importance_weights(cfg, inputs) -> torch.Tensor:
    """log(pi / pi_old): [B, T] per token, or [B, 1] per sequence (the mean of its token log-ratios,
    i.e. the log of the geometric mean of the token ratios, as GSPO defines it)."""
    log_ratio = inputs.logp - inputs.old_logp
    if importance_level(cfg) == "sequence":
        mask = inputs.mask.to(log_ratio.dtype)
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    return log_ratio


def cispo_per_token(cfg, inputs, ratio: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """CISPO (MiniMax-M1): a REINFORCE term weighted by the importance ratio clipped from above at
    ``epsilon_high`` (TRL's meaning: the ratio cap itself, e.g. 5.0, not 1 + epsilon_high) and
    detached, so every token keeps a gradient through its log-prob."""
    return -torch.clamp(ratio, max=cfg.epsilon_high).detach() * adv * inputs.logp


def sapo_per_token(cfg, ratio: torch.Tensor, adv: torch.Tensor) -> torch.Tensor:
    """SAPO: the hard clip replaced by a sigmoid gate sigma(tau (r - 1)) * 4 / tau, whose slope at
    r = 1 is 1 (same gradient as the plain surrogate on-policy); tau is ``sapo_temperature_pos``
    for positive advantages and ``sapo_temperature_neg`` otherwise."""
    pos = torch.full_like(adv, cfg.sapo_temperature_pos)
    neg = torch.full_like(adv, cfg.sapo_temperature_neg)
    tau = torch.where(adv > 0, pos, neg)
    return -(torch.sigmoid(tau * (ratio - 1)) * 4 / tau) * adv


def kl_importance_weight(cfg, inputs) -> torch.Tensor:
    """The factor TRL 1.16 multiplies the k3 KL by when ``use_bias_correction_kl`` (its default):
    the (differentiable) importance ratio, so the KL gradient is the unbiased reverse-KL one."""
    return torch.exp(log_importance_weights(cfg, inputs))
