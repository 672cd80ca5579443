"""iGRPO's checkable fact in miniature: with a binary reward of success probability p, the draft that
stage 1 picks (argmax, ties -> first) is correct with probability 1 - (1 - p)^N.

Runs the plugin's own selection (grpo_zoo_igrpo.select.best_per_group) on simulated Bernoulli drafts
and prints, as the last line, one JSON object with the empirical and theoretical rates.
Usage: python plugins/igrpo/bench/best_of_n.py [--tasks 50000] [--seed 0]
"""
import argparse
import json

import torch

from grpo_zoo.segments import Groups
from grpo_zoo_igrpo.select import best_per_group


def simulate(p: float, n: int, tasks: int, generator: torch.Generator) -> float:
    groups = Groups.from_sizes([n] * tasks)
    rewards = (torch.rand(n * tasks, generator=generator) < p).float()
    best = best_per_group(rewards, groups, "first")
    return float(rewards[best].mean())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    g = torch.Generator().manual_seed(args.seed)
    rows, worst_z = [], 0.0
    for p in (0.1, 0.3, 0.5):
        for n in (1, 2, 4, 8):
            emp = simulate(p, n, args.tasks, g)
            theory = 1 - (1 - p) ** n
            se = max((theory * (1 - theory) / args.tasks) ** 0.5, 1e-12)
            worst_z = max(worst_z, abs(emp - theory) / se)
            rows.append({"p": p, "N": n, "empirical": round(emp, 4), "theory": round(theory, 4)})
            print(f"p={p:.1f} N={n}: best draft correct {emp:.4f}  theory 1-(1-p)^N = {theory:.4f}")
    print(json.dumps({"bench": "igrpo_best_of_n", "tasks": args.tasks, "rows": rows, "max_z": round(worst_z, 2),
                      "claim_holds": worst_z < 4.0}))


if __name__ == "__main__":
    main()
