"""Built-in policy losses (clipped surrogate; TRL 1.16's cispo and sapo), the k3 KL and the aggregations (grpo, dapo, dr_grpo, bnpo, gspo)."""
import torch

from ..hookspecs import hookimpl
from ..loss_terms import aggregation_of, cispo_per_token, kl_importance_weight, log_importance_weights, sapo_per_token


@hookimpl(trylast=True)
def zoo_policy_loss(ctx, inputs):
    cfg = ctx.config.loss
    log_ratio = log_importance_weights(cfg, inputs)  # [B, T], or [B, 1] at importance_sampling_level = "sequence"
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high)
    adv = inputs.advantages.unsqueeze(-1).to(ratio.dtype)
    if cfg.type == "cispo":
        return cispo_per_token(cfg, inputs, ratio, adv)
    if cfg.type == "sapo":
        return sapo_per_token(cfg, ratio, adv)
    return -torch.min(ratio * adv, clipped * adv)


@hookimpl(trylast=True)
def zoo_kl(ctx, inputs):
    diff = inputs.ref_logp - inputs.logp
    kl = torch.exp(diff) - diff - 1
    if ctx.config.loss.kl_bias_correction:  # TRL 1.16's default use_bias_correction_kl
        kl = kl * kl_importance_weight(ctx.config.loss, inputs)
    return kl


@hookimpl(trylast=True)
def zoo_aggregate_loss(ctx, per_token, inputs):
    mask = inputs.mask.to(per_token.dtype)
    per_token = per_token.expand_as(mask)
    masked = per_token * mask
    kind = aggregation_of(ctx.config.loss.type)  # sapo -> grpo, cispo -> dapo (as TRL)
    if kind in ("grpo", "gspo"):
        per_seq = masked.sum(-1) / mask.sum(-1).clamp(min=1.0)
        return per_seq.sum() / max(inputs.total_sequences, 1.0)
    if kind == "dapo":
        return masked.sum() / max(inputs.total_tokens, 1.0)
    if kind == "dr_grpo":
        return masked.sum() / (max(inputs.total_sequences, 1.0) * inputs.max_completion_length)
    if kind == "bnpo":
        return masked.sum() / mask.sum().clamp(min=1.0) / inputs.num_micro_batches
    raise ValueError(f"loss.type {kind!r} has no aggregation")
