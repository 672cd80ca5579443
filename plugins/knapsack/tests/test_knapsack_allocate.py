"""The step plan: uniform without estimates, the p in {0, 1} fallback, the leftover rule."""
import itertools

import numpy as np
import pytest

from grpo_zoo_knapsack import gini, plan_budgets, solve_dp, solve_fast, total_value


def budgets(*args, **kw):
    return plan_budgets(*args, **kw).budgets.tolist()


def test_uniform_while_no_estimate():
    assert budgets([None] * 4, 16, 2, 128) == [4, 4, 4, 4]
    assert budgets([None] * 4, 18, 2, 128) == [5, 5, 4, 4]  # explicit total: remainder to the first tasks
    assert budgets([None] * 2, 100, 2, 8) == [8, 8]  # capped at N_up


def test_unestimated_keep_the_uniform_share_beside_estimated_tasks():
    # unknown -> 4, p=0 -> 2, p=1 -> 2, the mixed task takes the other 8 (no fallback)
    assert budgets([None, 0.0, 1.0, 0.5], 16, 2, 128, fallback_confidence=None) == [4, 2, 2, 8]
    # fallback: p = 0.5 needs 5 rollouts for a mixed group with probability >= 0.9
    # (1 - 2 * 0.5^5 = 0.9375; 0.875 at 4), so the other 3 of its 8 go to the p = 0 task
    plan = plan_budgets([None, 0.0, 1.0, 0.5], 16, 2, 128)
    assert plan.budgets.tolist() == [4, 5, 2, 5] and plan.fallback == 3


def test_mixed_tasks_get_the_knapsack_optimum():
    est = [0.25, 0.5, 0.0, 1.0]
    plan = plan_budgets(est, 16, 2, 128)
    b = plan.budgets
    assert b[2] == 2 and b[3] == 2
    assert b.sum() == 16
    best = solve_dp([0.25, 0.5], 12, 2, 128)
    assert total_value(b[:2], [0.25, 0.5]) == pytest.approx(total_value(best, [0.25, 0.5]), rel=1e-12)
    assert plan.value() >= plan.uniform_value()


def test_leftover_rules():
    est = [0.5, 0.0, 0.0, 1.0]
    # u = 6; the mixed task is capped at 6, 12 rollouts are left over
    assert budgets(est, 24, 2, 6, leftover="hard") == [6, 6, 6, 2]  # p=0 tasks to the cap, 4 unspent
    assert budgets(est, 24, 2, 6, leftover="hard_then_easy") == [6, 6, 6, 6]
    assert budgets(est, 24, 2, 6, leftover="none", fallback_confidence=None) == [6, 2, 2, 2]
    # the fallback fires before the leftover rule: p = 0.5 needs 5, so 13 go to the hard tasks (4 each fit)
    assert budgets(est, 24, 2, 6, leftover="none") == [6, 6, 6, 2]
    # no mixed task at all: everything above the floors goes to the hard tasks, evenly
    assert budgets([0.0, 0.0, 1.0, 1.0], 17, 2, 128) == [7, 6, 2, 2]


def test_infeasible_total_names_the_keys():
    with pytest.raises(ValueError, match="min_rollouts"):
        plan_budgets([0.5] * 4, 7, 2, 128)


def test_dp_and_fast_plans_agree_and_beat_uniform():
    rng = np.random.default_rng(5)
    for _ in range(200):
        n = int(rng.integers(1, 10))
        est = [None if rng.random() < 0.2 else float(rng.integers(0, 9) / 8) for _ in range(n)]
        total = int(rng.integers(2 * n, 12 * n + 1))
        high = int(rng.integers(max(2, total // n), 40))
        a = plan_budgets(est, total, 2, high, solver="dp", fallback_confidence=None)
        b = plan_budgets(est, total, 2, high, solver="fast", fallback_confidence=None)
        assert a.value() == pytest.approx(b.value(), rel=1e-12, abs=1e-15)
        assert b.budgets.sum() <= total and (b.budgets >= 2).all() and (b.budgets <= high).all()
        assert b.value() >= b.uniform_value() - 1e-15


def test_gini():
    assert gini([4, 4, 4]) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert gini([1, 3]) == pytest.approx(0.25)  # sum |xi - xj| / (2 n^2 mean) = 4 / (2 * 4 * 2)
    assert gini([]) == 0.0


def brute_force(p, budget, low, high, size=lambda n: n):
    """Best summed Value(size(N_i), p_i) over every allocation with low <= N_i <= high, sum <= budget."""
    from grpo_zoo_knapsack import value

    best = -1.0
    for alloc in itertools.product(range(low, high + 1), repeat=len(p)):
        if sum(alloc) <= budget:
            best = max(best, sum(float(value(size(n), q)) for n, q in zip(alloc, p)))
    return best


def test_solvers_find_the_optimal_split_by_brute_force():
    from grpo_zoo_knapsack import value

    rng = np.random.default_rng(3)
    for _ in range(40):
        n = int(rng.integers(1, 4))
        p = rng.uniform(0.02, 0.98, n).round(3).tolist()
        high = int(rng.integers(3, 9))
        budget = int(rng.integers(2 * n, high * n + 2))
        want = brute_force(p, budget, 2, high)
        for solve in (solve_dp, solve_fast):
            got = solve(p, budget, 2, high)
            assert got.sum() <= budget and total_value(got, p) == pytest.approx(want, rel=1e-12)
        # the same with a wrapper that trains only N - floor(N / 2) of N (iGRPO's refinements)
        half = np.array([b - b // 2 for b in range(2, high + 1)])
        got = solve_dp(p, budget, 2, high, trained=half)
        assert sum(float(value(b - b // 2, q)) for b, q in zip(got, p)) == pytest.approx(
            brute_force(p, budget, 2, high, lambda b: b - b // 2), rel=1e-12
        )
    # by hand, p = (0.5, 0.1), 12 rollouts: the 8 above the floors take the largest marginal gains,
    # 0.125 * 0.5^n for n = 2, 3, 4 (0.031, 0.016, 0.0078) and 0.081 * (0.9 * 0.1^n + 0.1 * 0.9^n)
    # for n = 2..6 (0.0073 .. 0.0043); the next ones (0.0039, 0.0039) are left out
    assert solve_fast([0.5, 0.1], 12, 2, 128).tolist() == [5, 7]


def test_plan_values_budgets_by_what_is_trained():
    est = [0.3, 0.6, 0.5]
    trained = lambda b: b - b // 2  # noqa: E731
    plan = plan_budgets(est, 18, 2, 12, trained=trained, fallback_confidence=None)
    assert plan.trained is not None
    assert plan.value() == pytest.approx(brute_force(est, 18, 2, 12, trained), rel=1e-12)
    # an even budget trains no more than the odd budget below it: the optimum never wastes one
    assert all(b % 2 == 1 or b == 2 for b in plan.budgets)
    # an identity map is the plain problem (and keeps the fast solver)
    same = plan_budgets(est, 18, 2, 12, trained=lambda b: b, fallback_confidence=None)
    assert same.trained is None
    assert same.budgets.tolist() == plan_budgets(est, 18, 2, 12, fallback_confidence=None).budgets.tolist()


def test_fallback_fires_at_a_realistic_step():
    # 8 prompts, G = 8 (64 rollouts): needs 5 + 5 + 5 (p = 0.5) + 9 (p = 0.25) = 24 of the 56 left
    # after the floors, so the two p = 0 tasks share the other 32
    est = [0.5, 0.5, 0.5, 0.0, 0.0, 1.0, 1.0, 0.25]
    plan = plan_budgets(est, 64, 2, 128)
    b = plan.budgets
    assert b[3] == b[4] == 2 + 16 and plan.fallback == 32 and b[5] == b[6] == 2
    mixed = [0, 1, 2, 7]
    assert b[mixed].tolist() == solve_fast([est[i] for i in mixed], 24, 2, 128).tolist()
    assert b.sum() == 64
    # without p = 0 tasks the mixed tasks keep everything
    assert plan_budgets([0.5, 0.5, 1.0], 24, 2, 128).fallback == 0


def test_a_budget_that_yields_no_group_is_worth_nothing():
    # a wrapper keeping two rollouts out: budgets 2 and 3 yield groups of 0 and 1, worth 0 (not negative)
    plan = plan_budgets([0.5, 0.5], 8, 2, 6, trained=lambda b: max(b - 2, 0), fallback_confidence=None)
    assert plan.value() == pytest.approx(brute_force([0.5, 0.5], 8, 2, 6, lambda b: max(b - 2, 1)), rel=1e-12)
    assert plan.value() > 0
