"""Hint reliance and the hinter reward (HiLL), on plain tensors.

Notation: a hint h for question q is tried with n reasoner rollouts; p is the
share of them that are correct.

- Hint reliance of one correct hinted rollout y:
  HR(y) = mean_t log pi(y_t | q, y_<t) - mean_t log pi(y_t | q + h, y_<t)
  (negative when y leans on the hint); a hint's HR is the mean over its
  correct rollouts.
- Hinter reward (0 when p is 0 or 1):
  transfer_weighted: (1 - p^n - (1 - p)^n) * exp(min(HR, 0) / T)
  non_degenerate:    1 - p^n - (1 - p)^n
  variance:          p (1 - p)
"""
from __future__ import annotations

import torch
from grpo_zoo.segments import Groups, segment_mean, segment_std


def sequence_mean(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean log-prob over each row's completion tokens ([B, T] -> [B]); an empty row gives 0."""
    m = mask.to(logp.dtype)
    return (logp * m).sum(-1) / m.sum(-1).clamp(min=1.0)


def hint_reliance(plain_logp, plain_mask, hinted_logp, hinted_mask) -> torch.Tensor:
    """HR per rollout: mean token log-prob without the hint minus with it ([B])."""
    return sequence_mean(plain_logp, plain_mask) - sequence_mean(hinted_logp, hinted_mask)


def hinter_reward(p, n, reliance, kind: str = "transfer_weighted", temperature: float = 0.3) -> torch.Tensor:
    """Reward of each hint from its pass rate ``p``, rollout count ``n`` and reliance (tensors [K])."""
    p = torch.as_tensor(p, dtype=torch.float64)
    n = torch.as_tensor(n, dtype=torch.float64).expand_as(p)
    hr = torch.as_tensor(reliance, dtype=torch.float64).expand_as(p)
    non_degenerate = 1 - p**n - (1 - p) ** n
    if kind == "variance":
        r = p * (1 - p)
    elif kind == "non_degenerate":
        r = non_degenerate
    elif kind == "transfer_weighted":
        r = non_degenerate * torch.exp(hr.clamp(max=0.0) / temperature)
    else:
        raise ValueError(f"hints.hinter_reward: unknown kind {kind!r}")
    return torch.where((p <= 0) | (p >= 1), torch.zeros_like(r), r)


def group_advantages(rewards: torch.Tensor, groups: Groups, eps: float) -> torch.Tensor:
    """GRPO advantages of the hints of each prompt: (r - mean) / (std + eps); lone hints get 0."""
    r = rewards.double()
    scale = segment_std(r, groups) + eps
    centred = r - segment_mean(r, groups)
    return torch.where(scale > 0, centred / scale.clamp(min=1e-30), torch.zeros_like(r))
