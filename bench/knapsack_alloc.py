"""Knapsack RL, the paper's metric at equal rollouts: effective gradient ratio, per-step plans, measured tasks.

The paper (arXiv 2509.25849) reports the *effective gradient ratio*: the share of sampled
rollouts whose gradient is non-zero. Under GRPO with a binary reward a rollout has a
non-zero advantage exactly when its group is mixed (some successes, some failures), so
the ratio is (rollouts in mixed groups) / (rollouts sampled). Claim: +20-40% over uniform
budgets at the same total.

(a) Simulated training, planned the way the plugin plans it. The population is the
    default model's measured per-task success rates on a reasoning-gym task
    (``bench/data/knapsack_rates.json``, written by ``--measure``), resampled to
    ``--tasks`` tasks. Every epoch visits each task once, in a fresh order, in steps of
    P tasks (the trainer's ``train.prompts_per_step``), for (P, G) = (4, 4) (the trainer's
    defaults), (4, 8) (examples/knapsack.toml) and (32, 8). Each step,
    "uniform" gives every task G rollouts; "knapsack" calls the plugin's own planner
    (``plan_budgets``: N in [2, 128], the confidence fallback) with the same total G * P and
    each task's success share at its previous visit. Between epochs the policy improves
    (every task's logit + N(0.15, 0.25)). Epoch 0 is uniform for both; figures are over
    epochs 1.. . Figures: effective gradient ratio (rollout level; the paper's), the share
    of groups that are mixed (group level), and the largest budget given.
(b) The fast solver's time on 100,000 tasks and its agreement with the DP.

``--measure`` samples the default model (smollm2-135m) and writes the rates file; it
loads a real model, so run it under the heavy-job lock:
    flock /tmp/grpo-zoo-heavy.lock timeout 3600 .venv/bin/python bench/knapsack_alloc.py --measure
Then (no model, seconds):
    .venv/bin/python bench/knapsack_alloc.py
Prints a table, then one JSON object on its last line.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from grpo_zoo_knapsack import plan_budgets, solve_dp, solve_fast, total_value

RATES = Path(__file__).with_name("data") / "knapsack_rates.json"
# (prompts per step, G): the trainer's defaults, examples/knapsack.toml, and a paper-like step
SETTINGS = ((4, 4), (4, 8), (32, 8))
MEASURE_TASK = {
    "source": "reasoning_gym",
    "name": "products",
    # one- and two-digit factors: a spread of difficulty for a 135M model
    "params": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2},
    "system_prompt": "You are a calculator. Reply with the final number only.",
}


def measure(out: Path, tasks: int, samples: int, seed: int, model: str = "smollm2-135m", chunk: int = 8) -> dict:
    """Per-task success rates of the default model: ``samples`` completions of each of ``tasks`` tasks."""
    import torch

    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.engine import Engine
    from grpo_zoo.trainer.models import load_model_and_tokenizer
    from grpo_zoo.types import RolloutRequest

    config = {
        "model": model,
        "seed": seed,
        "task": {**MEASURE_TASK, "size": tasks},
        "sampling": {"group_size": samples, "max_new_tokens": 16, "temperature": 1.0},
        "reward": {"builtin": ["correct"]},
        "train": {"threads": 2},
    }
    ctx = make_context(config)
    torch.set_num_threads(2)
    policy, tok = load_model_and_tokenizer(ctx.config.model, ctx.config.train.dtype)
    policy.eval()
    ctx.engine = Engine(policy, tok, temperature=ctx.config.sampling.temperature)
    source = list(ctx.hooks.task_source(ctx))
    rates, t0 = [], time.perf_counter()
    for step, start in enumerate(range(0, len(source), chunk)):
        batch = source[start : start + chunk]
        ctx.step = step
        req = RolloutRequest(batch, [ctx.hooks.build_prompt(ctx, t) for t in batch], [samples] * len(batch))
        with torch.no_grad():
            r = ctx.sample(req)
        wins = torch.zeros(len(batch), dtype=torch.float64).index_add_(0, r.group, r.rewards["correct"].double())
        rates += (wins / samples).tolist()
        print(f"  tasks {start + len(batch)}/{len(source)}: mean rate so far {np.mean(rates):.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)
        data = {
            "model": model,
            "task": MEASURE_TASK,
            "samples_per_task": samples,
            "temperature": 1.0,
            "max_new_tokens": 16,
            "seed": seed,
            "rates": [round(x, 6) for x in rates],
            "complete": len(rates) == len(source),  # written after every chunk: a cut run keeps its tasks
            "command": f"flock /tmp/grpo-zoo-heavy.lock timeout 3600 .venv/bin/python bench/knapsack_alloc.py "
                       f"--measure --measure-tasks {tasks} --measure-samples {samples}",
        }
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(data, indent=1) + "\n")
    return data


def drift(rng: np.random.Generator, p: np.ndarray) -> np.ndarray:
    """The policy improves a little between epochs (logit + N(0.15, 0.25)); p = 0 or 1 tasks stay put."""
    q = np.clip(p, 1e-6, 1 - 1e-6)
    logit = np.log(q / (1 - q)) + rng.normal(0.15, 0.25, p.size)
    moved = 1.0 / (1.0 + np.exp(-logit))
    return np.where((p <= 0) | (p >= 1), p, moved)


def simulate(seed: int, rates: np.ndarray, k: int, tasks: int, epochs: int, g: int, per_step: int, low: int,
             high: int) -> dict:
    rng = np.random.default_rng(seed)
    # resample the measured rates; a measured 0 (or 1) of k samples only says "below about 1/k",
    # so such tasks get a true rate drawn uniformly in [0, 1/k) (or (1 - 1/k, 1]), not exactly 0 / 1
    p = rng.choice(rates, size=tasks)
    p = np.where(p <= 0, rng.uniform(0, 1 / k, tasks), np.where(p >= 1, 1 - rng.uniform(0, 1 / k, tasks), p))
    last: dict[str, list] = {"uniform": [None] * tasks, "knapsack": [None] * tasks}
    eff: dict[str, list] = {"uniform": [0, 0], "knapsack": [0, 0]}  # rollouts in mixed groups, rollouts
    grp: dict[str, list] = {"uniform": [0, 0], "knapsack": [0, 0]}  # mixed groups, groups
    max_budget, fallback = 0, 0
    for epoch in range(epochs):
        order = rng.permutation(tasks)
        for start in range(0, tasks - per_step + 1, per_step):
            idx = order[start : start + per_step]
            draw = rng.random((per_step, high + g))  # shared outcome stream: same luck for both policies
            for name in ("uniform", "knapsack"):
                if name == "uniform":
                    b = np.full(per_step, g, dtype=np.int64)
                else:
                    plan = plan_budgets([last[name][i] for i in idx], g * per_step, low, high)
                    b = plan.budgets
                    if epoch:
                        fallback += plan.fallback
                wins = np.array([(draw[j, : b[j]] < p[i]).sum() for j, i in enumerate(idx)])
                for j, i in enumerate(idx):
                    last[name][i] = float(wins[j] / b[j])
                if epoch == 0:
                    continue  # both uniform without estimates
                mixed = (wins > 0) & (wins < b)
                eff[name][0] += int(b[mixed].sum())
                eff[name][1] += int(b.sum())
                grp[name][0] += int(mixed.sum())
                grp[name][1] += per_step
                if name == "knapsack":
                    max_budget = max(max_budget, int(b.max()))
        p = drift(rng, p)
    return {
        "effective": {k2: v[0] / v[1] for k2, v in eff.items()},
        "groups": {k2: v[0] / v[1] for k2, v in grp.items()},
        "rollouts": {k2: v[1] for k2, v in eff.items()},
        "max_budget": max_budget,
        "fallback": fallback,
    }


def time_solver(tasks: int, per_task: int, low: int, high: int, repeats: int = 3) -> float:
    rng = np.random.default_rng(0)
    est = rng.binomial(8, rng.beta(0.5, 0.5, tasks)) / 8  # estimates from 8 rollouts: many ties, 0 and 1
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        alloc = solve_fast(est, per_task * tasks, low, high)
        times.append(time.perf_counter() - t)
    assert alloc.sum() <= per_task * tasks
    return float(np.median(times))


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
    ap.add_argument("--measure", action="store_true", help="sample the default model and write the rates file")
    ap.add_argument("--measure-tasks", type=int, default=32)
    ap.add_argument("--measure-samples", type=int, default=12)
    ap.add_argument("--rates", type=Path, default=RATES)
    ap.add_argument("--model", default="smollm2-135m", help="model for --measure (tiny-random for a smoke test)")
    ap.add_argument("--tasks", type=int, default=256)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--low", type=int, default=2)
    ap.add_argument("--high", type=int, default=128)
    ap.add_argument("--solver-tasks", type=int, default=100_000)
    args = ap.parse_args()
    if args.measure:
        data = measure(args.rates, args.measure_tasks, args.measure_samples, seed=0, model=args.model)
        r = np.array(data["rates"])
        print(json.dumps({"bench": "knapsack_measure", "tasks": r.size, "mean": round(float(r.mean()), 4),
                          "p0": int((r == 0).sum()), "p1": int((r == 1).sum()), "file": str(args.rates)}))
        return

    data = json.loads(args.rates.read_text())
    rates = np.asarray(data["rates"], dtype=np.float64)
    k = int(data["samples_per_task"])
    print(f"population: {rates.size} measured rates of {data['model']} on reasoning-gym {data['task']['name']} "
          f"({k} samples each; mean {rates.mean():.3f}, {int((rates == 0).sum())} at 0, "
          f"{int((rates == 1).sum())} at 1), resampled to {args.tasks} tasks; N in [{args.low}, {args.high}], "
          f"{args.epochs} epochs (0 uniform for both), {args.seeds} seeds; plans per step")
    print(f"    {'prompts x G':>12s} | {'effective ratio: uniform':>24s} {'knapsack':>9s} {'gain':>7s} | "
          f"{'mixed groups: uniform':>21s} {'knapsack':>9s} | {'max N':>5s}")
    rows = []
    for per_step, g in SETTINGS:
        runs = [simulate(s_, rates, k, args.tasks, args.epochs, g, per_step, args.low, args.high)
                for s_ in range(args.seeds)]
        mean = lambda key, name: float(np.mean([r[key][name] for r in runs]))  # noqa: E731
        ef_u, ef_k = mean("effective", "uniform"), mean("effective", "knapsack")
        gr_u, gr_k = mean("groups", "uniform"), mean("groups", "knapsack")
        row = {
            "prompts_per_step": per_step, "group_size": g,
            "effective_ratio_uniform": round(ef_u, 4), "effective_ratio_knapsack": round(ef_k, 4),
            "effective_ratio_gain": round(ef_k / ef_u - 1, 4),
            "mixed_groups_uniform": round(gr_u, 4), "mixed_groups_knapsack": round(gr_k, 4),
            "rollouts_uniform": mean("rollouts", "uniform"), "rollouts_knapsack": mean("rollouts", "knapsack"),
            "max_budget": max(r["max_budget"] for r in runs),
            "fallback_rollouts_per_seed": float(np.mean([r["fallback"] for r in runs])),
        }
        row["claim_holds"] = bool(row["effective_ratio_gain"] >= 0.20)
        rows.append(row)
        print(f"    {f'{per_step} x {g}':>12s} | {ef_u:24.4f} {ef_k:9.4f} {ef_k / ef_u - 1:+7.1%} | "
              f"{gr_u:21.4f} {gr_k:9.4f} | {row['max_budget']:5d}")
    solver_s = time_solver(args.solver_tasks, 8, args.low, args.high)
    exact = check_exact()
    print(f"    paper: effective gradient ratio +20-40%, up to 93 rollouts on one prompt")
    print(f"(b) fast solver, {args.solver_tasks} tasks: {solver_s:.3f} s; DP agreement: {exact}")
    print(json.dumps({
        "bench": "knapsack_alloc",
        "metric": "effective gradient ratio (rollouts in mixed groups / rollouts), equal total rollouts",
        "claim": "+20-40% effective gradient ratio (claim_holds: gain >= +20%)",
        "settings": rows,
        "population": {"file": str(args.rates.name), "model": data["model"], "task": data["task"]["name"],
                       "tasks_measured": int(rates.size), "samples_per_task": k,
                       "mean_rate": round(float(rates.mean()), 4), "complete": data.get("complete", True)},
        "tasks": args.tasks, "epochs": args.epochs, "seeds": args.seeds,
        "solver_100k_s": round(solver_s, 4), "solver_matches_dp": exact,
    }))


if __name__ == "__main__":
    main()
