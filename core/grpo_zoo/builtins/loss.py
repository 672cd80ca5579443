"""Built-in clipped-surrogate loss, k3 KL and the five aggregations (grpo, dapo, dr_grpo, bnpo, gspo)."""
import torch

from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def zoo_policy_loss(ctx, inputs):
    cfg = ctx.config.loss
    log_ratio = inputs.logp - inputs.old_logp
    if cfg.type == "gspo":  # one ratio per sequence: geometric mean of the token ratios
        mask = inputs.mask.to(log_ratio.dtype)
        log_ratio = ((log_ratio * mask).sum(-1) / mask.sum(-1).clamp(min=1.0)).unsqueeze(-1)
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - cfg.epsilon_low, 1 + cfg.epsilon_high)
    adv = inputs.advantages.unsqueeze(-1).to(ratio.dtype)
    return -torch.min(ratio * adv, clipped * adv)


@hookimpl(trylast=True)
def zoo_kl(ctx, inputs):
    diff = inputs.ref_logp - inputs.logp
    return torch.exp(diff) - diff - 1


@hookimpl(trylast=True)
def zoo_aggregate_loss(ctx, per_token, inputs):
    mask = inputs.mask.to(per_token.dtype)
    per_token = per_token.expand_as(mask)
    masked = per_token * mask
    kind = ctx.config.loss.type
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
