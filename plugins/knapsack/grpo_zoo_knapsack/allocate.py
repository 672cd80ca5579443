"""One step's budget plan: which tasks are optimized, which fall back, and where the leftover goes.

Rules (README "Allocation rule"), for n tasks, a total budget T and bounds [low, high]:

1. Uniform share u = clamp(T // n, low, high). A task without an estimate gets u
   rollouts (u = G with the default T = G * n). When no task has an estimate,
   the remainder T - u * n is spread one rollout each over the first tasks.
2. A task with estimate p in {0, 1} (Value = 0 for every N) gets ``low``.
3. Tasks with 0 < p < 1 share what is left, R = T - u * (#unestimated) - low * (#extreme),
   through the knapsack solver (maximize the summed Value, low <= N_i <= high).
4. Leftover L = R - (what the solver placed): only non-zero when every mixed task
   is at ``high`` or there is none. ``leftover = "hard"`` spreads L evenly over the
   p = 0 tasks (earlier tasks get the odd rollouts; each capped at ``high``);
   ``"hard_then_easy"`` then gives what still remains to the p = 1 tasks the same
   way; ``"none"`` leaves it unspent. Budget that no rule can place is not sampled.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .solver import SOLVERS
from .value import value


@dataclass
class Plan:
    budgets: np.ndarray  # int64 [n]
    estimates: np.ndarray  # float64 [n], NaN where a task has no estimate
    uniform: int  # the uniform share u
    total: int  # the budget the plan was given

    @property
    def known(self) -> np.ndarray:
        return ~np.isnan(self.estimates)

    def value(self) -> float:
        """Summed Value(N_i, p_i) over tasks with an estimate."""
        k = self.known
        return float(value(self.budgets[k], self.estimates[k]).sum())

    def uniform_value(self) -> float:
        """The same figure had every task received the uniform share."""
        k = self.known
        return float(value(np.full(int(k.sum()), self.uniform), self.estimates[k]).sum())


def spread(count: int, amount: int, cap: int) -> np.ndarray:
    """``amount`` split as evenly as possible over ``count`` slots (first slots get the odd units), each <= cap."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    base, odd = divmod(int(amount), count)
    out = np.full(count, base, dtype=np.int64)
    out[:odd] += 1
    return np.minimum(out, max(cap, 0))


def plan_budgets(estimates, total: int, low: int, high: int, leftover: str = "hard", solver: str = "fast") -> Plan:
    """Apply the rules above; ``estimates`` holds a success rate or None per task."""
    est = np.array([np.nan if e is None else float(e) for e in estimates], dtype=np.float64)
    n = est.size
    if n == 0:
        return Plan(np.zeros(0, dtype=np.int64), est, 0, int(total))
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
        return Plan(budgets, est, u, int(total))
    budgets[hard | easy] = low
    rest = int(total - budgets[unknown | hard | easy].sum())
    idx = np.flatnonzero(mixed)
    if idx.size:
        budgets[idx] = SOLVERS[solver](est[idx], rest, low, high)
        rest -= int(budgets[idx].sum())
    groups = {"hard": [hard], "hard_then_easy": [hard, easy], "none": []}[leftover]
    for mask in groups:
        where = np.flatnonzero(mask)
        add = spread(where.size, rest, high - low)
        budgets[where] += add
        rest -= int(add.sum())
    return Plan(budgets, est, u, int(total))


def gini(x) -> float:
    """Gini coefficient of non-negative amounts (0 = all equal)."""
    x = np.sort(np.asarray(x, dtype=np.float64))
    n = x.size
    if n == 0 or x.sum() == 0:
        return 0.0
    ranks = np.arange(1, n + 1)
    return float((2 * ranks - n - 1) @ x / (n * x.sum()))
