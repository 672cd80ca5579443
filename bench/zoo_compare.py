"""Every first-party method against plain GRPO on one task, at a matched rollout budget.

    python bench/zoo_compare.py                      # the full table (hours of CPU time on 2 cores, see below)
    python bench/zoo_compare.py --quick              # grpo vs mc_grpo, 2 seeds, a small budget: a smoke run
    python bench/zoo_compare.py --measure-base       # the default model's held-out pass@1 on the candidate tasks
    python bench/zoo_compare.py --methods grpo,igrpo --seeds 0,1,2 --budget 512

Each (method, seed) trains the default model (SmolLM2-135M-Instruct) from scratch on the
same task, sampling, reward and optimizer settings; only the method's plugins and their
sections (taken from examples/<method>.toml, or examples/mix.toml for the mix) differ.
A run stops after the step at which its generated completions reach the budget: every
completion a method samples counts, drafts (igrpo), hinted re-samples and the hinter's
own hints (hints), the extra G+1 rollout (mc_grpo) and the reallocated budgets (knapsack)
included, so no method buys accuracy with more samples. Each run is evaluated on the same
held-out set (greedy pass@1, a distinct generator seed, checked disjoint from training)
before training and after its last step.

A finished run writes bench_result.json in its folder; rerunning the same command after an
interruption reuses those and trains only the runs that are missing.

Prints the per-run figures, the table grouped by method (mean ± std over seeds) and, last,
one JSON line. Runs land in --out (default runs/zoo_compare/<method>-s<seed>/), so
`grpo-zoo compare runs/zoo_compare/*` redraws the curves.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "core"))

# The task: sums of two one-digit numbers (reasoning-gym chain_sum). Measured with --measure-base
# on 2026-11-30 (48 held-out tasks, greedy, the prompts and rewards below), the default model starts
# at pass@1 0.292 there, inside the 20-60% band; two-term two-digit chain sums start at 0.042,
# three-term one-digit ones at 0.042, basic_arithmetic with two one-digit terms at 0.125, and
# products of one- or two-digit numbers at 0.146 (an earlier figure of 0.375 for those did not
# reproduce: 0.188 on 32 tasks, 0.146 on 48). One-digit products leave too few distinct prompts
# outside the training set for a 48-task held-out set.
TASK = {
    "source": "reasoning_gym",
    "name": "chain_sum",
    "params": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1},
    "size": 256,
    "system_prompt": "You are a calculator. Reply with the final number only.",
}
EVAL_SEED = 1_000_003  # one held-out generator seed for every run, so all runs see (nearly) the same set
CANDIDATES = {  # --measure-base: tasks and params whose pass@1 is measured
    "products 1x1 digit": ("products", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}),
    "basic_arithmetic 2 terms 1 digit": ("basic_arithmetic", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}),
    "chain_sum 2 terms 2 digits": ("chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 2, "max_digits": 2}),
    "products 1-2 digit factors": ("products", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}),
    "products 3 terms 1 digit": ("products", {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}),
    "chain_sum 2 terms 1 digit": ("chain_sum", {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}),
    "chain_sum 3 terms 1 digit": ("chain_sum", {"min_terms": 3, "max_terms": 3, "min_digits": 1, "max_digits": 1}),
}
METHODS = ["grpo", "mc_grpo", "gdpo", "knapsack", "igrpo", "hints", "golden_goose", "mix"]


def base_config(args, seed: int) -> dict:
    return {
        "seed": seed,
        "model": args.model,
        "task": dict(TASK),
        "sampling": {"group_size": 8, "temperature": 0.7, "max_new_tokens": 24},
        # two columns so gdpo has something to decouple; pass@1 is the task scorer alone
        "reward": {"builtin": ["correct", "format"], "format_regex": r"\d\s*=\s*-?\d+"},
        "train": {"steps": 10_000, "prompts_per_step": 4, "lr": 1e-5, "micro_batch_size": 16, "samples_per_step": 1,
                  "threads": args.threads},
        "eval": {"size": args.eval_size, "max_new_tokens": 24, "seed": EVAL_SEED},
    }


def method_config(method: str, args, seed: int) -> dict:
    """The base config plus the method's plugins and their sections from its example."""
    raw = base_config(args, seed)
    if method == "grpo":
        return raw
    example = tomllib.loads((ROOT / "examples" / f"{method}.toml").read_text())
    names = example.get("plugins") or [method]
    raw["plugins"] = list(names)
    for name in names:
        if name in example:
            raw[name] = example[name]
    if "run" in example:
        raw["run"] = example["run"]
    return raw


class BudgetSpent(Exception):
    pass


def spent(ctx, metrics_rows) -> int:
    """Completions generated so far: every generate call of the run plus the hinter's hints."""
    hints = sum(int(r.get("hint/hints_generated", 0)) for r in metrics_rows)
    return int(ctx.info.get("generated", 0)) + hints


def train_to_budget(raw: dict, out: Path, budget: int) -> dict:
    """Train until ``budget`` completions are generated, evaluating before and after."""
    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.loop import Trainer, seed_all
    from grpo_zoo.trainer.rundir import append_jsonl, write_manifest
    from grpo_zoo.trainer.step import train_step

    ctx = make_context(raw)
    trainer = Trainer(ctx, out, progress=False, save_final=False)
    trainer.run_dir.mkdir(parents=True, exist_ok=True)  # Trainer.run makes it; this loop replaces run()
    write_manifest(ctx, trainer.run_dir)
    ctx.hooks.run_start(ctx)
    t0 = time.perf_counter()
    before = trainer.evals.before_training()
    rows, step = [], 0
    while spent(ctx, rows) < budget:
        seed_all(hash((raw["seed"], step)) & 0x7FFFFFFF)  # as Trainer.run does
        metrics, _ = train_step(ctx, trainer.source, step, trainer.optimizer, trainer.scheduler)
        trainer.evals.after_step(step, metrics)
        rows.append(metrics)
        append_jsonl(trainer.run_dir / "metrics.jsonl", [metrics])
        step += 1
    after = trainer.evals.evaluate_now(step)
    trainer.evals.plot()
    return {
        "steps": step,
        "generated": spent(ctx, rows),
        "before": before["eval/pass@1"],
        "after": after["eval/pass@1"],
        "seconds": time.perf_counter() - t0,
    }


def measure_base(args) -> list[dict]:
    from grpo_zoo.config import ConfigError
    from grpo_zoo.evaluation import eval_target

    out = []
    for label, (name, params) in CANDIDATES.items():
        raw = base_config(args, 0)
        raw["task"] = {**TASK, "name": name, "params": params}
        t0 = time.perf_counter()
        try:
            m = eval_target(args.model, raw)
        except ConfigError as exc:  # e.g. too few distinct prompts left once the training set is excluded
            print(f"{label:<36} not measured: {exc}", flush=True)
            continue
        out.append({"task": label, "pass@1": m["eval/pass@1"], "tasks": m["eval/tasks"], "seconds": time.perf_counter() - t0})
        print(f"{label:<36} greedy pass@1 = {m['eval/pass@1']:.3f} on {m['eval/tasks']} held-out tasks "
              f"({out[-1]['seconds']:.0f} s)", flush=True)
    return out


def fmt(values: list[float], digits: int = 3) -> str:
    import statistics

    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{statistics.fmean(values):.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true", help="grpo and mc_grpo, 2 seeds, budget 64, 24 eval tasks")
    p.add_argument("--measure-base", action="store_true", help="only measure the base model's pass@1 per candidate task")
    p.add_argument("--methods", default=",".join(METHODS))
    p.add_argument("--seeds", default="0,1")
    p.add_argument("--budget", type=int, default=768, help="generated completions per run")
    p.add_argument("--eval-size", type=int, default=48)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default="runs/zoo_compare")
    args = p.parse_args()
    if args.quick:
        args.methods, args.budget, args.eval_size = "grpo,mc_grpo", 64, 24
    if args.measure_base:
        res = measure_base(args)
        print(json.dumps({"bench": "zoo_compare", "mode": "measure_base", "model": args.model,
                          "eval_size": args.eval_size, "results": res}))
        return 0
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"--methods: unknown {unknown}; choose from {METHODS}")
    seeds = [int(s) for s in args.seeds.split(",")]
    if len(seeds) < 2:
        print("warning: one seed gives no spread; the table needs >= 2 seeds to mean anything", file=sys.stderr)
    results: dict[str, list[dict]] = {}
    for method in methods:
        for seed in seeds:
            out = Path(args.out) / f"{method}-s{seed}"
            done = out / "bench_result.json"
            if done.exists():  # a finished run of an interrupted bench: reuse it, so a rerun continues
                r = json.loads(done.read_text())
            elif out.exists():
                raise SystemExit(f"{out} exists without bench_result.json (an unfinished run): remove it or pass another --out")
            else:
                r = train_to_budget(method_config(method, args, seed), out, args.budget)
                done.write_text(json.dumps(r))
            results.setdefault(method, []).append({"seed": seed, **r})
            print(f"{method:<13} seed {seed}: pass@1 {r['before']:.3f} -> {r['after']:.3f} in {r['steps']} steps, "
                  f"{r['generated']} completions, {r['seconds']:.0f} s", flush=True)
    print(f"\nheld-out greedy pass@1 ({args.eval_size} tasks), budget {args.budget} generated completions, "
          f"seeds {seeds}, model {args.model}, task {TASK['name']} {TASK['params']}\n")
    print("| method | before | after | gain | steps | completions | seconds |")
    print("|---|---|---|---|---|---|---|")
    table = []
    for method, rs in results.items():
        col = {k: [r[k] for r in rs] for k in ("before", "after", "steps", "generated", "seconds")}
        gain = [r["after"] - r["before"] for r in rs]
        print(f"| {method} | {fmt(col['before'])} | {fmt(col['after'])} | {fmt(gain)} | {fmt(col['steps'], 1)} | "
              f"{fmt(col['generated'], 0)} | {fmt(col['seconds'], 0)} |")
        table.append({"method": method, "runs": rs})
    print(json.dumps({"bench": "zoo_compare", "quick": args.quick, "model": args.model, "budget": args.budget,
                      "eval_size": args.eval_size, "seeds": seeds, "task": TASK, "methods": table}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
