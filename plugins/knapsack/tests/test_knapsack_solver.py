"""The exact DP and the fast threshold solver agree (same optimal total value) on many random instances."""
import itertools
import time

import numpy as np
import pytest

from grpo_zoo_knapsack import solve_dp, solve_fast, total_value


def brute_force(p, budget, low, high) -> float:
    best = -np.inf
    for alloc in itertools.product(range(low, high + 1), repeat=len(p)):
        if sum(alloc) <= budget:
            best = max(best, total_value(alloc, p))
    return best


def random_instance(rng):
    n = int(rng.integers(1, 9))
    low = int(rng.integers(1, 4))
    high = low + int(rng.integers(0, 16))
    kind = rng.integers(0, 3)
    if kind == 0:  # estimates from 8 rollouts: many exact ties, 0 and 1 included
        p = rng.integers(0, 9, n) / 8
    elif kind == 1:
        p = rng.random(n)
    else:  # skewed: near 0 and near 1
        p = np.where(rng.random(n) < 0.5, rng.beta(0.3, 5, n), rng.beta(5, 0.3, n))
    budget = int(rng.integers(low * n, high * n + 12))
    return p, budget, low, high


def check_alloc(a, budget, low, high):
    assert a.dtype == np.int64
    assert a.sum() <= budget
    assert (a >= low).all() and (a <= high).all()


def test_dp_and_fast_agree_on_random_instances():
    rng = np.random.default_rng(1234)
    for _ in range(1500):
        p, budget, low, high = random_instance(rng)
        a, b = solve_dp(p, budget, low, high), solve_fast(p, budget, low, high)
        check_alloc(a, budget, low, high)
        check_alloc(b, budget, low, high)
        assert total_value(b, p) == pytest.approx(total_value(a, p), rel=1e-12, abs=1e-15), (p, budget, low, high, a, b)


def test_both_match_brute_force_on_small_instances():
    rng = np.random.default_rng(7)
    for _ in range(150):
        n = int(rng.integers(1, 4))
        low = int(rng.integers(1, 3))
        high = low + int(rng.integers(0, 7))
        p = rng.integers(0, 9, n) / 8 if rng.random() < 0.5 else rng.random(n)
        budget = int(rng.integers(low * n, high * n + 3))
        best = brute_force(p, budget, low, high)
        assert total_value(solve_dp(p, budget, low, high), p) == pytest.approx(best, rel=1e-12, abs=1e-15)
        assert total_value(solve_fast(p, budget, low, high), p) == pytest.approx(best, rel=1e-12, abs=1e-15)


def test_agree_on_larger_instances():
    rng = np.random.default_rng(99)
    for _ in range(5):
        n = 40
        p = np.where(rng.random(n) < 0.4, rng.integers(0, 9, n) / 8, rng.random(n))
        budget = 8 * n
        a, b = solve_dp(p, budget, 2, 64), solve_fast(p, budget, 2, 64)
        assert total_value(b, p) == pytest.approx(total_value(a, p), rel=1e-12)
        assert b.sum() == budget  # every mixed task still gains from one more rollout


def test_hand_example():
    # p = 1/2, 1/2 with 6 rollouts: symmetric optimum 3 + 3
    assert solve_fast([0.5, 0.5], 6, 2, 8).tolist() == [3, 3]
    assert sorted(solve_dp([0.5, 0.5], 6, 2, 8).tolist()) == [3, 3]
    # a p = 0 task never gets more than the floor; its share goes to the mixed task
    assert solve_fast([0.0, 0.5], 10, 2, 8).tolist() == [2, 8]
    # ties among identical tasks are broken in task order (deterministic)
    assert solve_fast([0.25] * 3, 7, 2, 8).tolist() == [3, 2, 2]


def test_saturation_and_edges():
    assert solve_fast([0.3, 0.6], 1000, 2, 5).tolist() == [5, 5]  # budget left unspent at the cap
    assert solve_fast([0.3, 0.6], 4, 2, 5).tolist() == [2, 2]  # budget exactly the floor
    assert solve_fast([], 10, 2, 5).tolist() == []
    assert solve_fast([0.3, 0.6], 9, 3, 3).tolist() == [3, 3]  # no span
    with pytest.raises(ValueError, match="minimum"):
        solve_fast([0.3, 0.6], 3, 2, 5)
    with pytest.raises(ValueError, match="1 <= low"):
        solve_fast([0.3], 3, 0, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        solve_dp([1.5], 3, 1, 5)
    # extreme rates whose gains underflow: still valid, never over budget
    p = [1e-300, 1 - 1e-16, 1e-12, 0.5]
    a = solve_fast(p, 200, 2, 128)
    check_alloc(a, 200, 2, 128)
    assert total_value(a, p) == pytest.approx(total_value(solve_dp(p, 200, 2, 128), p), rel=1e-12)


def test_fast_solver_scales():
    rng = np.random.default_rng(0)
    p = rng.integers(0, 9, 100_000) / 8
    t = time.perf_counter()
    a = solve_fast(p, 800_000, 2, 128)
    elapsed = time.perf_counter() - t
    assert a.sum() == 800_000
    assert elapsed < 10.0  # about 0.3 s on 2 CPU cores; generous for a shared machine
