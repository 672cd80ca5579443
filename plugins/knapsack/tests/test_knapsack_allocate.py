"""The step plan: uniform without estimates, the p in {0, 1} fallback, the leftover rule."""
import numpy as np
import pytest

from grpo_zoo_knapsack import gini, plan_budgets, solve_dp, total_value


def budgets(*args, **kw):
    return plan_budgets(*args, **kw).budgets.tolist()


def test_uniform_while_no_estimate():
    assert budgets([None] * 4, 16, 2, 128) == [4, 4, 4, 4]
    assert budgets([None] * 4, 18, 2, 128) == [5, 5, 4, 4]  # explicit total: remainder to the first tasks
    assert budgets([None] * 2, 100, 2, 8) == [8, 8]  # capped at N_up


def test_unestimated_keep_the_uniform_share_beside_estimated_tasks():
    # unknown -> 4, p=0 -> 2, p=1 -> 2, the mixed task takes the other 8
    assert budgets([None, 0.0, 1.0, 0.5], 16, 2, 128) == [4, 2, 2, 8]


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
    assert budgets(est, 24, 2, 6, leftover="none") == [6, 2, 2, 2]
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
        a = plan_budgets(est, total, 2, high, solver="dp")
        b = plan_budgets(est, total, 2, high, solver="fast")
        assert a.value() == pytest.approx(b.value(), rel=1e-12, abs=1e-15)
        assert b.budgets.sum() <= total and (b.budgets >= 2).all() and (b.budgets <= high).all()
        assert b.value() >= b.uniform_value() - 1e-15


def test_gini():
    assert gini([4, 4, 4]) == 0.0
    assert gini([0, 0, 0, 1]) == pytest.approx(0.75)
    assert gini([1, 3]) == pytest.approx(0.25)  # sum |xi - xj| / (2 n^2 mean) = 4 / (2 * 4 * 2)
    assert gini([]) == 0.0
