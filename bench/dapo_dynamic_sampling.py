"""DAPO dynamic sampling in miniature: the share of trained groups with a non-zero gradient, and the
rollouts it costs, with and without dynamic sampling.

The run goes through core's real step path (``grpo_zoo.trainer.step.collect``: curriculum, budgets,
the zoo_rollout chain, scoring, the dapo plugin's acceptance rule and core's refill loop) with a
simulated backend: task i's completions are correct with probability p_i. The p_i come from
``--rates FILE`` (a JSON list of measured per-task success rates) or, by default, from a stated
assumption, the skewed prompt-pool mix of bench/knapsack_alloc.py (35% near p = 0, 35% near p = 1,
30% in between); they are not measured on the default model here. A group has a non-zero gradient
when its rewards are mixed. Figures per setting: nonzero_frac (mixed groups / trained groups),
groups_trained and rollouts_spent per step (every sampled rollout, rejected groups included),
batches per step, and steps that hit the cap short of prompts_per_step.

DAPO's claim (arXiv 2503.14476, section 3.3): filtering keeps every trained group informative at the
cost of extra sampling. Prints a table, then one JSON object on its last line.
Run: .venv/bin/python bench/dapo_dynamic_sampling.py [--tasks 512 --steps 20 --group-size 8 --prompts 32]
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from grpo_zoo import hookimpl
from grpo_zoo.context import make_context
from grpo_zoo.segments import segment_all_equal
from grpo_zoo.trainer import dynamic_sampling
from grpo_zoo.trainer.step import collect
from grpo_zoo.types import Rollouts, Task

MIX = (0.35, 0.35, 0.30)


def population(rng: np.random.Generator, n: int) -> np.ndarray:
    kind = rng.choice(3, size=n, p=np.asarray(MIX) / np.sum(MIX))
    hopeless, easy, mid = rng.beta(0.25, 12.0, n), 1 - rng.beta(0.25, 12.0, n), rng.uniform(0.05, 0.95, n)
    return np.where(kind == 0, hopeless, np.where(kind == 1, easy, mid))


class SimBackend:
    """zoo_generate: completion text "1" (correct) with probability p of its task, else "0"."""

    def __init__(self, p: dict[str, float]):
        self.p = p

    @hookimpl
    def zoo_generate(self, ctx, request):
        g = ctx.generator(ctx.salt("bench", 1), ctx.sampling_seed(request) & 0xFFFF)
        group, texts = [], []
        for k, (task, n) in enumerate(zip(request.tasks, request.budgets)):
            hits = torch.rand(n, generator=g) < self.p[task.id]
            group += [k] * n
            texts += ["1" if h else "0" for h in hits.tolist()]
        n = len(group)
        return Rollouts(tasks=list(request.tasks), group=torch.tensor(group), prompt_text=["q"] * n,
                        prompt_ids=[[1]] * n, completion_ids=[[2]] * n, completion_text=texts,
                        truncated=torch.zeros(n, dtype=torch.bool))


class SimReward:
    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        return {"correct": torch.tensor([float(t == "1") for t in rollouts.completion_text])}


def run(p: np.ndarray, args, dynamic: bool, max_batches: int) -> dict:
    tasks = [Task(id=f"t{i}", prompt="q") for i in range(len(p))]
    rates = {t.id: float(x) for t, x in zip(tasks, p)}
    raw = {
        "model": "tiny-random", "seed": args.seed, "plugins": ["sim", "simr"] + (["dapo"] if dynamic else []),
        "reward": {"builtin": []},
        "sampling": {"group_size": args.group_size, "max_gen_batches": max_batches, "at_cap": "keep_fewer"},
        "train": {"prompts_per_step": args.prompts},
    }
    ctx = make_context(raw, extra_plugins={"sim": SimBackend(rates), "simr": SimReward()})
    ctx.source = tasks
    per = {"nonzero": [], "trained": [], "spent": [], "batches": [], "short": 0}
    for step in range(args.steps):
        ctx.step = step
        chosen = ctx.hooks.select_tasks(ctx, tasks, step, args.prompts)
        out = collect(ctx, chosen, tasks)
        dynamic_sampling.observe(ctx, out)
        flat = segment_all_equal(out.rewards["correct"], out.groups)
        m = out.metrics
        per["nonzero"].append(float((~flat).float().mean()))
        per["trained"].append(len(out.tasks))
        per["spent"].append(m["dynamic_sampling/rollouts_spent"])
        per["batches"].append(m["dynamic_sampling/batches"])
        per["short"] += int(m["dynamic_sampling/groups_short"] > 0)
    return {
        "nonzero_frac": float(np.mean(per["nonzero"])),
        "groups_trained": float(np.mean(per["trained"])),
        "rollouts_spent": float(np.mean(per["spent"])),
        "batches": float(np.mean(per["batches"])),
        "steps_short": per["short"],
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=512)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rates", type=Path, default=None, help="measured per-task success rates: a JSON list, or a file with a "
                    "\"rates\" list such as bench/data/knapsack_rates.json")
    args = ap.parse_args()
    if args.rates:
        measured = json.loads(args.rates.read_text())  # a list, or a measurement file with "rates"
        p = np.asarray(measured["rates"] if isinstance(measured, dict) else measured, dtype=np.float64)
    else:
        p = population(np.random.default_rng(args.seed), args.tasks)
    settings = {"grpo": (False, 1), "dapo_cap4": (True, 4), "dapo_cap8": (True, 8)}
    results = {name: run(p, args, dyn, cap) for name, (dyn, cap) in settings.items()}
    print(f"p source: {'measured (' + str(args.rates) + ')' if args.rates else 'assumed mix ' + str(MIX)}; "
          f"{len(p)} tasks, G = {args.group_size}, {args.prompts} prompts/step, {args.steps} steps")
    print(f"{'setting':<10} {'nonzero_frac':>12} {'groups':>7} {'rollouts':>9} {'batches':>8} {'short':>6}")
    for name, r in results.items():
        print(f"{name:<10} {r['nonzero_frac']:>12.3f} {r['groups_trained']:>7.1f} {r['rollouts_spent']:>9.1f} "
              f"{r['batches']:>8.2f} {r['steps_short']:>6d}")
    base = results["grpo"]
    summary = {
        "p_source": "measured" if args.rates else "assumed_mix",
        **{f"{k}_{name}": v for name, r in results.items() for k, v in r.items()},
        "rollout_cost_ratio_cap8": results["dapo_cap8"]["rollouts_spent"] / base["rollouts_spent"],
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
