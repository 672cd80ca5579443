"""One step's budget plan: which tasks are optimized, which fall back, and where the leftover goes.

Rules (README "Allocation rule"), for n tasks, a total budget T and bounds [low, high]:

1. Uniform share u = clamp(T // n, low, high). A task without an estimate gets u
   rollouts (u = G with the default T = G * n). When no task has an estimate,
   the remainder T - u * n is spread one rollout each over the first tasks.
2. A task with estimate p in {0, 1} (Value = 0 for every N) gets ``low``.
3. Tasks with 0 < p < 1 share what is left, R = T - u * (#unestimated) - low * (#extreme),
   through the knapsack solver (maximize the summed Value, low <= N_i <= high).
   Fallback (``fallback_confidence`` = c, default 0.9, as in the reference implementation of
   the paper's fallback): a mixed task needs the fewest N in [low, high] whose group has mixed
   rewards with probability >= c; when those needs add up to less than R, the excess
   R - sum(needs) goes to the p = 0 tasks first (evenly, each capped at ``high``), and the solver
   shares the rest. Without p = 0 tasks the solver gets all of R.
4. Leftover L = R - (what the solver placed): only non-zero when every mixed task
   is at ``high`` or there is none. ``leftover = "hard"`` spreads L evenly over the
   p = 0 tasks (earlier tasks get the odd rollouts; each capped at ``high``);
   ``"hard_then_easy"`` then gives what still remains to the p = 1 tasks the same
   way; ``"none"`` leaves it unspent. Budget that no rule can place is not sampled.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np

from .solver import SOLVERS, solve_dp
from .value import p_nonzero, value


@dataclass
class Plan:
    budgets: np.ndarray  # int64 [n]
    estimates: np.ndarray  # float64 [n], NaN where a task has no estimate
    uniform: int  # the uniform share u
    total: int  # the budget the plan was given
    fallback: int = 0  # rollouts the fallback rule reserved for p = 0 tasks
    trained: object = None  # callable budget -> group size (zoo_trained_rollouts); None = the budget itself

    @property
    def known(self) -> np.ndarray:
        return ~np.isnan(self.estimates)

    def sizes(self, budgets) -> np.ndarray:
        b = np.asarray(budgets, dtype=np.int64)
        return b if self.trained is None else np.array([max(self.trained(int(x)), 1) for x in b], dtype=np.int64)

    def value(self) -> float:
        """Summed Value(trained(N_i), p_i) over tasks with an estimate."""
        k = self.known
        return float(value(self.sizes(self.budgets[k]), self.estimates[k]).sum())

    def uniform_value(self) -> float:
        """The same figure had every task received the uniform share."""
        k = self.known
        return float(value(self.sizes(np.full(int(k.sum()), self.uniform)), self.estimates[k]).sum())


def needs(p: np.ndarray, low: int, high: int, confidence: float, sizes: np.ndarray) -> np.ndarray:
    """Per task: the fewest budgets N in [low, high] whose group (sizes[N - low]) is mixed with probability >= confidence.

    ``high`` where no budget reaches it. The reference code uses log(1 - c) / log(max(p, 1 - p)),
    the budget at which the majority outcome alone has probability <= 1 - c; this exact form
    also counts the minority outcome and the planner's group sizes.
    """
    ok = p_nonzero(sizes[None, :], p[:, None]) >= confidence  # [n, span + 1]
    first = np.where(ok.any(axis=1), ok.argmax(axis=1), high - low)
    return low + first.astype(np.int64)


def spread(count: int, amount: int, cap) -> np.ndarray:
    """``amount`` split as evenly as possible over ``count`` slots (first slots get the odd units), each <= cap (int or per slot)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    base, odd = divmod(int(amount), count)
    out = np.full(count, base, dtype=np.int64)
    out[:odd] += 1
    return np.minimum(out, np.maximum(cap, 0))


def plan_budgets(estimates, total: int, low: int, high: int, leftover: str = "hard", solver: str = "fast",
                 trained=None, fallback_confidence: float | None = 0.9) -> Plan:
    """Apply the rules above; ``estimates`` holds a success rate or None per task.

    ``trained``: optional callable budget -> group size (what the sampling wrappers return and
    train of that budget, ``zoo_trained_rollouts``); budgets are then valued by that size, with
    the exact DP when it is not the budget itself.
    """
    est = np.array([np.nan if e is None else float(e) for e in estimates], dtype=np.float64)
    n = est.size
    sizes = np.arange(low, high + 1, dtype=np.int64)
    if trained is not None:
        # a budget that yields no group is worth what a group of one is: nothing (P_nonzero(0) = -1 is meaningless)
        sizes = np.maximum(np.array([int(trained(b)) for b in range(low, high + 1)], dtype=np.int64), 1)
        if np.array_equal(sizes, np.arange(low, high + 1)):
            trained = None  # every rollout is trained: the plain value function
    solve = SOLVERS[solver] if trained is None else partial(solve_dp, trained=sizes)
    if n == 0:
        return Plan(np.zeros(0, dtype=np.int64), est, 0, int(total), trained=trained)
    if total < low * n:
        raise ValueError(
            f"total budget {total} cannot give each of {n} tasks min_rollouts={low}; "
            f"raise knapsack.total_budget (or sampling.group_size) or lower knapsack.min_rollouts"
        )
    u = int(min(max(total // n, low), high))
    budgets = np.zeros(n, dtype=np.int64)
    unknown = np.isnan(est)
    hard = ~unknown & (est <= 0.0)
    easy = ~unknown & (est >= 1.0)
    mixed = ~unknown & ~hard & ~easy
    budgets[unknown] = u
    if unknown.all():
        budgets += spread(n, total - u * n, high - u)
        return Plan(budgets, est, u, int(total), trained=trained)
    budgets[hard | easy] = low
    rest = int(total - budgets[unknown | hard | easy].sum())
    idx = np.flatnonzero(mixed)
    reserved = 0
    if fallback_confidence is not None and idx.size and hard.any():
        excess = rest - int(needs(est[idx], low, high, fallback_confidence, sizes).sum())
        if excess > 0:
            where = np.flatnonzero(hard)
            add = spread(where.size, excess, high - low)
            budgets[where] += add
            reserved = int(add.sum())
            rest -= reserved
    if idx.size:
        budgets[idx] = solve(est[idx], rest, low, high)
        rest -= int(budgets[idx].sum())
    groups = {"hard": [hard], "hard_then_easy": [hard, easy], "none": []}[leftover]
    for mask in groups:
        where = np.flatnonzero(mask)
        add = spread(where.size, rest, high - budgets[where])  # the fallback may have raised them already
        budgets[where] += add
        rest -= int(add.sum())
    return Plan(budgets, est, u, int(total), reserved, trained)


def gini(x) -> float:
    """Gini coefficient of non-negative amounts (0 = all equal)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * x.sum()))
