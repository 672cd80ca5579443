"""Two solvers of the Knapsack RL budget problem.

    maximize    sum_i Value(N_i, p_i)
    subject to  sum_i N_i <= budget,  low <= N_i <= high,  N_i integer

- :func:`solve_dp`: exact dynamic programming over (task, budget). O(n * B * (high - low))
  time; for tests and small batches.
- :func:`solve_fast`: exact threshold (Lagrangian) search. Because every Value(., p)
  is concave in N (see :mod:`.value`), the optimum takes the ``budget - n * low``
  largest marginal gains over all (task, extra rollout) pairs, and each task's
  gains are non-increasing, so that set is a prefix per task. The solver finds
  the threshold lambda* (the size-th largest gain) by bisection over the bit
  patterns of non-negative float64 (order-preserving, so the search is exact and
  ends in at most 64 rounds); each round counts, per task and vectorized, the
  gains above lambda with a binary search over N. Gains equal to lambda* fill the
  rest of the budget in task order. Units with zero gain (p in {0, 1}) are never
  given out, so the returned budgets may sum to less than ``budget``.

Both return an int64 array of per-task rollout counts.
"""
from __future__ import annotations

import numpy as np

from .value import info_gain, value


def _check(p: np.ndarray, budget: int, low: int, high: int) -> None:
    if low < 1 or high < low:
        # N >= 1: the formula's P_nonzero(0) = -1 is meaningless, and a task dropped to 0
        # rollouts (value 0, then 0 at N = 1, then > 0) would break concavity.
        raise ValueError(f"bounds must satisfy 1 <= low <= high, got low={low}, high={high}")
    if np.any(~np.isfinite(p)) or np.any((p < 0) | (p > 1)):
        raise ValueError("success rates must lie in [0, 1]")
    if budget < low * p.size:
        raise ValueError(f"budget {budget} cannot give each of {p.size} tasks its minimum of {low} rollouts")


def total_value(budgets, p) -> float:
    """Summed Value(N_i, p_i) of an allocation."""
    return float(np.sum(value(np.asarray(budgets), np.asarray(p))))


def solve_dp(p, budget: int, low: int, high: int, trained=None) -> np.ndarray:
    """Exact optimum by dynamic programming over (task, budget).

    ``trained`` (optional, length high - low + 1): the group size that a budget of low + k
    yields (``zoo_trained_rollouts``); each budget is then valued by Value(trained[k], p).
    Such values need not be concave in the budget (iGRPO trains ceil(N / 2) of N), which the
    DP handles and the threshold solver does not.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    budget, low, high = int(budget), int(low), int(high)
    _check(p, budget, low, high)
    n, span = p.size, high - low
    alloc = np.full(n, low, dtype=np.int64)
    cap = min(budget - low * n, span * n)  # extra rollouts above the floor that can be placed
    if n == 0 or cap == 0:
        return alloc
    sizes = low + np.arange(span + 1) if trained is None else np.asarray(trained, dtype=np.int64)
    if sizes.shape != (span + 1,):
        raise ValueError(f"trained must give one group size per budget {low}..{high}, got {sizes.shape[0]}")
    vals = value(sizes[None, :], p[:, None])  # [n, span + 1]
    best = np.zeros(cap + 1)  # best[b]: best value of the tasks so far using at most b extra rollouts
    choice = np.zeros((n, cap + 1), dtype=np.int64)
    for i in range(n):
        cand = np.full((span + 1, cap + 1), -np.inf)
        for k in range(min(span, cap) + 1):
            cand[k, k:] = best[: cap + 1 - k] + vals[i, k]
        choice[i] = cand.argmax(0)  # the fewest extra rollouts among equal values
        best = cand.max(0)
    b = cap
    for i in range(n - 1, -1, -1):
        alloc[i] += choice[i, b]
        b -= choice[i, b]
    return alloc


def _bits(x: float) -> int:
    return int(np.array(x, dtype=np.float64).view(np.int64))


def _float(b: int) -> float:
    return float(np.array(b, dtype=np.int64).view(np.float64))


def solve_fast(p, budget: int, low: int, high: int) -> np.ndarray:
    """Exact optimum by a threshold search over marginal gains (vectorized; 100k tasks in well under a second)."""
    p = np.asarray(p, dtype=np.float64).ravel()
    budget, low, high = int(budget), int(low), int(high)
    _check(p, budget, low, high)
    n, span = p.size, high - low
    alloc = np.full(n, low, dtype=np.int64)
    extra = budget - low * n
    w = info_gain(p)
    pos = np.flatnonzero(w > 0)
    if n == 0 or extra == 0 or span == 0 or pos.size == 0:
        return alloc
    if extra >= span * pos.size:
        alloc[pos] = high
        return alloc

    pp, ww = p[pos], w[pos]
    qq = 1.0 - pp
    log_p, log_q = np.log(pp), np.log1p(-pp)

    def count(lam: float, left: np.ndarray, right: np.ndarray) -> np.ndarray:
        """Per task: how many of its gains exceed lam, searched within [left, right] (a known bracket)."""
        left, right = left.copy(), right.copy()
        idx = np.flatnonzero(left < right)
        while idx.size:
            lo_, hi_ = left[idx], right[idx]
            mid = (lo_ + hi_) // 2
            n_ = low + mid  # the gain of going from n_ to n_ + 1 rollouts
            g = ww[idx] * (qq[idx] * np.exp(n_ * log_p[idx]) + pp[idx] * np.exp(n_ * log_q[idx]))
            above = g > lam
            lo_ = np.where(above, mid + 1, lo_)
            hi_ = np.where(above, hi_, mid)
            left[idx], right[idx] = lo_, hi_
            idx = idx[lo_ < hi_]
        return left

    none = np.zeros(pos.size, dtype=np.int64)
    at_lo = count(0.0, none, np.full(pos.size, span, dtype=np.int64))
    if int(at_lo.sum()) < extra:  # gains that underflow to 0 are worth nothing: stop there
        alloc[pos] += at_lo
        return alloc
    # lambda* = min { lam >= 0 : #(gains > lam) < extra }, searched over float64 bit patterns
    # (order-preserving for non-negative floats). The counts at the two ends of the
    # bracket bound every count inside it, so each round only searches between them.
    top = float(np.max(ww * (qq * np.exp(low * log_p) + pp * np.exp(low * log_q))))
    lo_b, hi_b, at_hi = _bits(0.0), _bits(top), none
    while hi_b - lo_b > 1:
        mid_b = (lo_b + hi_b) // 2
        c = count(_float(mid_b), at_hi, at_lo)
        if int(c.sum()) < extra:
            hi_b, at_hi = mid_b, c
        else:
            lo_b, at_lo = mid_b, c
    # at_hi counts gains > lambda*; at_lo counts gains > the float just below it, i.e. gains >= lambda*.
    ties = at_lo - at_hi
    rest = extra - int(at_hi.sum())
    take = np.clip(rest - (np.cumsum(ties) - ties), 0, ties)
    alloc[pos] += at_hi + take
    return alloc


SOLVERS = {"fast": solve_fast, "dp": solve_dp}
