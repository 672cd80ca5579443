"""Built-in GRPO advantages: mean centre, std scale (group | batch | none), all rollouts in the loss."""
import torch

from ..advantages import normalize_then_sum, sum_then_normalize
from ..hookspecs import hookimpl
from ..segments import segment_mean, segment_std


@hookimpl(trylast=True)
def zoo_group_center(ctx, values, groups):
    return segment_mean(values, groups)


@hookimpl(trylast=True)
def zoo_group_scale(ctx, values, groups, center):
    cfg = ctx.config.advantage
    if cfg.scale == "none":
        return torch.ones_like(values)
    if cfg.scale == "batch":
        std = values.std() if values.numel() > 1 else values.new_zeros(())
        return (std + cfg.eps).expand_as(values)
    return segment_std(values, groups) + cfg.eps


@hookimpl(trylast=True)
def zoo_aggregate_rewards(ctx, rollouts, weights):
    if ctx.config.advantage.aggregation == "normalize_then_sum":
        return normalize_then_sum(ctx, rollouts, weights, ctx.config.advantage.eps)
    return sum_then_normalize(ctx, rollouts, weights)


@hookimpl(trylast=True)
def zoo_select_for_loss(ctx, rollouts):
    return torch.ones(len(rollouts), dtype=torch.bool)
