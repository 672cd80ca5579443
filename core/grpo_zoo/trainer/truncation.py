"""``loss.mask_truncated_completions``: truncated completions leave the loss, with TRL 1.16's semantics.

TRL zeroes the completion mask of every completion whose last token is not an
end-of-sequence token, so a truncated completion adds nothing to the loss and
its tokens leave token-count normalizers (``dapo``, ``bnpo``), while it still
counts as a sequence for per-sequence normalizers (``grpo``, ``dr_grpo``).
Its reward and advantage are computed as usual (they shape its group's others).
Here "truncated" is ``Rollouts.truncated``, which every built-in backend sets.
"""
from __future__ import annotations

import torch

from ..config import ConfigError


def truncated_flags(rollouts) -> torch.Tensor:
    if rollouts.truncated is None:
        raise ConfigError(
            "loss.mask_truncated_completions = true needs per-rollout truncated flags, but the sampling backend "
            "left Rollouts.truncated unset"
        )
    return rollouts.truncated.bool()


def mask_truncated(ctx, rollouts, rows: list[int], mask: torch.Tensor) -> torch.Tensor:
    """The loss mask [B, T] of micro-batch ``rows`` with truncated completions' rows zeroed (when the key is on)."""
    if not ctx.config.loss.mask_truncated_completions:
        return mask
    keep = ~truncated_flags(rollouts)[torch.as_tensor(rows, dtype=torch.long)]
    return mask * keep.to(device=mask.device, dtype=mask.dtype).unsqueeze(-1)


def counted_lengths(ctx, rollouts, lengths: torch.Tensor) -> torch.Tensor:
    """Completion lengths as token normalizers count them: 0 for a masked truncated completion."""
    if not ctx.config.loss.mask_truncated_completions:
        return lengths
    return torch.where(truncated_flags(rollouts), torch.zeros_like(lengths), lengths)
