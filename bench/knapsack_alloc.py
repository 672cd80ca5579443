"""Knapsack RL in miniature: more groups with a non-zero gradient at the same rollout budget.

(a) A simulated training population. Task success rates are skewed the way RL
    prompt pools are (many easy tasks near p = 1, many hopeless ones near p = 0,
    the rest spread out) and drift upward a little each epoch as the policy
    learns. Every epoch each task is rolled out once; its estimate for the next
    epoch is its success share in this epoch (as the plugin does). Epoch 0 is
    uniform for both policies (no estimates); from epoch 1 on, "uniform" gives
    every task G rollouts and "knapsack" gives the plugin's plan for the same
    total G * tasks. A group has a non-zero gradient when its rewards are mixed
    (some successes, some failures). Two figures per policy:
    - nonzero_*: the fraction of groups (tasks) with a non-zero gradient;
    - effective_ratio_*: the fraction of rollouts that sit in such groups, i.e. that
      carry a non-zero gradient (the paper's "effective gradient ratio" of sampled data).
    Paper (arXiv 2509.25849): the effective ratio rises by 20-40%. In this simulation
    the rollout-level ratio rises far more, while the group-level fraction does not
    rise (see the README's "Benchmark" section for why).
(b) Time of the fast (threshold) solver for 100,000 tasks at 8 rollouts each on average.

Prints a table, then one JSON object on its last line.
Run: .venv/bin/python bench/knapsack_alloc.py [--tasks 2000 --epochs 6 --seeds 5]
"""
from __future__ import annotations

import argparse
import json
import time

import numpy as np

from grpo_zoo_knapsack import plan_budgets, solve_dp, solve_fast, total_value


MIX = (0.35, 0.35, 0.30)  # hopeless, easy, in between


def population(rng: np.random.Generator, n: int, mix=MIX) -> np.ndarray:
    """True success rates: a share ``mix[0]`` near 0 (hopeless), ``mix[1]`` near 1 (easy), the rest uniform."""
    kind = rng.choice(3, size=n, p=np.asarray(mix) / np.sum(mix))
    hopeless = rng.beta(0.25, 12.0, n)  # mostly ~0, a few that are merely hard
    easy = 1.0 - rng.beta(0.25, 12.0, n)
    middle = rng.beta(1.0, 1.0, n)
    return np.where(kind == 0, hopeless, np.where(kind == 1, easy, middle))


def drift(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """The policy improves a little between epochs (logit + N(0.15, 0.25))."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log(p / (1 - p)) + rng.normal(0.15, 0.25, p.size)
    return 1.0 / (1.0 + np.exp(-logit))


def rollout(rng: np.random.Generator, budgets: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Successes of each task's group."""
    return rng.binomial(budgets, p)


def simulate(seed: int, tasks: int, epochs: int, g: int, low: int, high: int, mix=MIX) -> dict:
    rng = np.random.default_rng(seed)
    p = population(rng, tasks, mix)
    est = {"uniform": [None] * tasks, "knapsack": [None] * tasks}
    mixed = {"uniform": [], "knapsack": []}
    effective = {"uniform": [], "knapsack": []}
    expected = {"uniform": [], "knapsack": []}
    used = {"uniform": [], "knapsack": []}
    max_budget = 0
    for epoch in range(epochs):
        outcome_rng = np.random.default_rng([seed, epoch])
        for name in ("uniform", "knapsack"):
            if name == "uniform":
                b = np.full(tasks, g, dtype=np.int64)
            else:
                b = plan_budgets(est[name], g * tasks, low, high).budgets
            wins = rollout(outcome_rng, b, p)
            est[name] = list(wins / b)
            if epoch == 0:
                continue  # both are uniform without estimates
            ok = (wins > 0) & (wins < b)
            mixed[name].append(float(np.mean(ok)))
            effective[name].append(float(b[ok].sum() / b.sum()))
            expected[name].append(float(np.mean(1 - p**b - (1 - p) ** b)))
            used[name].append(int(b.sum()))
            if name == "knapsack":
                max_budget = max(max_budget, int(b.max()))
        p = drift(rng, p)
    return {
        "nonzero": {k: float(np.mean(v)) for k, v in mixed.items()},
        "effective": {k: float(np.mean(v)) for k, v in effective.items()},
        "expected": {k: float(np.mean(v)) for k, v in expected.items()},
        "rollouts": {k: float(np.mean(v)) for k, v in used.items()},
        "max_budget": max_budget,
    }


def time_solver(tasks: int, per_task: int, low: int, high: int, repeats: int = 3) -> tuple[float, int]:
    rng = np.random.default_rng(0)
    p_true = population(rng, tasks)
    est = rng.binomial(8, p_true) / 8  # estimates from 8 rollouts: heavy ties, many 0 and 1
    mixed = est[(est > 0) & (est < 1)]
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        alloc = solve_fast(est, per_task * tasks, low, high)
        times.append(time.perf_counter() - t)
    assert alloc.sum() <= per_task * tasks
    return float(np.median(times)), int(mixed.size)


def check_exact(seed: int = 0, instances: int = 200) -> bool:
    """The fast solver reaches the DP optimum (same total value) on random small instances."""
    rng = np.random.default_rng(seed)
    for _ in range(instances):
        n = int(rng.integers(1, 12))
        p = rng.integers(0, 9, n) / 8
        budget = int(rng.integers(2 * n, 16 * n))
        a, b = solve_dp(p, budget, 2, 32), solve_fast(p, budget, 2, 32)
        if not np.isclose(total_value(a, p), total_value(b, p), rtol=1e-12, atol=1e-15):
            return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--low", type=int, default=2)
    ap.add_argument("--high", type=int, default=128)
    ap.add_argument("--solver-tasks", type=int, default=100_000)
    ap.add_argument("--mix", default=",".join(map(str, MIX)), help="shares of hopeless, easy and in-between tasks")
    args = ap.parse_args()
    mix = tuple(float(x) for x in args.mix.split(","))

    runs = [simulate(s, args.tasks, args.epochs, args.group_size, args.low, args.high, mix) for s in range(args.seeds)]
    nz_u = float(np.mean([r["nonzero"]["uniform"] for r in runs]))
    nz_k = float(np.mean([r["nonzero"]["knapsack"] for r in runs]))
    ef_u = float(np.mean([r["effective"]["uniform"] for r in runs]))
    ef_k = float(np.mean([r["effective"]["knapsack"] for r in runs]))
    ex_u = float(np.mean([r["expected"]["uniform"] for r in runs]))
    ex_k = float(np.mean([r["expected"]["knapsack"] for r in runs]))
    ro_u = float(np.mean([r["rollouts"]["uniform"] for r in runs]))
    ro_k = float(np.mean([r["rollouts"]["knapsack"] for r in runs]))
    max_b = max(r["max_budget"] for r in runs)
    solver_s, mixed_tasks = time_solver(args.solver_tasks, args.group_size, args.low, args.high)
    exact = check_exact()

    print(f"(a) {args.tasks} tasks, {args.epochs} epochs (epoch 0 uniform for both), G = {args.group_size}, "
          f"N in [{args.low}, {args.high}], {args.seeds} seeds, mix hopeless/easy/between = {args.mix}")
    print(f"    {'':10s} {'non-zero groups':>16s} {'(expected)':>10s} {'non-zero rollouts':>18s} {'rollouts/epoch':>15s}")
    print(f"    {'uniform':10s} {nz_u:16.4f} {ex_u:10.4f} {ef_u:18.4f} {ro_u:15.0f}")
    print(f"    {'knapsack':10s} {nz_k:16.4f} {ex_k:10.4f} {ef_k:18.4f} {ro_k:15.0f}")
    print(f"    groups with a non-zero gradient: {nz_k / nz_u - 1:+.1%}; rollouts with one (effective gradient "
          f"ratio): {ef_k / ef_u - 1:+.1%} (paper: +20-40%); largest budget {max_b} (paper: 93)")
    print(f"(b) fast solver, {args.solver_tasks} tasks ({mixed_tasks} with 0 < p < 1), "
          f"{args.group_size * args.solver_tasks} rollouts: {solver_s:.3f} s; DP agreement: {exact}")
    print(json.dumps({
        "nonzero_uniform": round(nz_u, 4),
        "nonzero_knapsack": round(nz_k, 4),
        "nonzero_gain": round(nz_k / nz_u - 1, 4),
        "effective_ratio_uniform": round(ef_u, 4),
        "effective_ratio_knapsack": round(ef_k, 4),
        "effective_ratio_gain": round(ef_k / ef_u - 1, 4),
        "expected_nonzero_uniform": round(ex_u, 4),
        "expected_nonzero_knapsack": round(ex_k, 4),
        "rollouts_per_epoch_uniform": ro_u,
        "rollouts_per_epoch_knapsack": ro_k,
        "max_budget": max_b,
        "solver_100k_s": round(solver_s, 4),
        "solver_tasks": args.solver_tasks,
        "solver_matches_dp": exact,
        "tasks": args.tasks,
        "epochs": args.epochs,
        "seeds": args.seeds,
        "mix": list(mix),
    }))


if __name__ == "__main__":
    main()
