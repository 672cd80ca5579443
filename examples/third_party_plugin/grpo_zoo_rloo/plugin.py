"""Leave-one-out baseline (RLOO): each rollout is compared with the mean of the *other* rollouts of its group.

Written only against grpo-zoo's public API, as an outside author would.
"""
from typing import Literal

import torch
from pydantic import Field

from grpo_zoo import hookimpl
from grpo_zoo.config import Section
from grpo_zoo.segments import segment_std, segment_sum


class Config(Section):
    scale: Literal["none", "group"] = Field("none", description="RLOO proper uses no scaling")
    eps: float = Field(1e-4, gt=0)


class RLOO:
    def __init__(self):
        self.singletons = 0

    @hookimpl
    def zoo_config_model(self):
        return Config

    @hookimpl
    def zoo_group_center(self, ctx, values, groups):
        n = groups.sizes().to(values.dtype)
        others = (segment_sum(values, groups) - values) / (n - 1).clamp(min=1)
        # A lone rollout has no others: centring on itself gives advantage 0.
        return torch.where(n > 1, others, values)

    @hookimpl
    def zoo_group_scale(self, ctx, values, groups, center):
        cfg = ctx.config.rloo
        if cfg.scale == "none":
            return torch.ones_like(values)
        return segment_std(values, groups) + cfg.eps

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        self.singletons += int((rollouts.groups.counts == 1).sum())
        return {"rloo/singleton_groups": self.singletons}
