"""The Knapsack RL value of giving N rollouts to a task with success rate p (ALGORITHMS.md section 5).

    P_nonzero(N, p) = 1 - p^N - (1 - p)^N        chance that a group of N has mixed rewards
    InfoGain(p)     = p * (1 - p)^2              maximal at p = 1/3 (value 4/27)
    Value(N, p)     = P_nonzero(N, p) * InfoGain(p)

Concavity in N (what makes the greedy / threshold solver exact). With q = 1 - p,
the marginal gain of the (N+1)-th rollout is

    Value(N+1, p) - Value(N, p) = InfoGain(p) * (q * p^N + p * q^N)

and both p^N and q^N are non-increasing in N for p in [0, 1]; for p in (0, 1)
the gain is strictly decreasing and positive, for p in {0, 1} it is exactly 0.
So Value(., p) is concave on the integers N >= 1 for every p, and a budget spent
on the largest marginal gains first is optimal (Gross 1956; Ibaraki & Katoh 1988).
N = 0 is excluded: the formula gives P_nonzero(0) = -1, and with the natural
Value(0) = 0 instead, the gains 0 -> 1 -> 2 would be 0 then positive, not concave.
The solvers therefore require N_low >= 1 (so does the config).

Every function broadcasts over numpy arrays and returns float64.
"""
from __future__ import annotations

import numpy as np


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def p_nonzero(n, p):
    """Probability that n Bernoulli(p) rewards are not all equal."""
    n, p = _f64(n), _f64(p)
    return 1.0 - np.power(p, n) - np.power(1.0 - p, n)


def info_gain(p):
    """p * (1 - p)^2: the expected learning signal of a group with mixed rewards."""
    p = _f64(p)
    return p * (1.0 - p) ** 2


def value(n, p):
    """Value(N, p) = P_nonzero(N, p) * InfoGain(p); 0 for p in {0, 1}."""
    return p_nonzero(n, p) * info_gain(p)


def marginal_gain(n, p):
    """Value(n + 1, p) - Value(n, p), in the closed form InfoGain(p) * (q p^n + p q^n)."""
    n, p = _f64(n), _f64(p)
    q = 1.0 - p
    return info_gain(p) * (q * np.power(p, n) + p * np.power(q, n))
