"""MC-GRPO in miniature: advantage sign flips of the mean vs the median baseline under small G.

Rewards are Bernoulli(p) over a grid of success probabilities p, for G = 2, 4, 8.

- mean baseline (plain GRPO): G rollouts, A_i = r_i - mean(r) (the std scale never changes a sign).
- median baseline (MC-GRPO): G+1 rollouts, A_i = (r_i - median) / (MAD + 1e-3) computed by the
  plugin's own code, the pivot removed; the figures are over the G rollouts that reach the loss.

Definitions (the spec's, with the choices it leaves open made explicit):
- sign flip: sign(A_i) != sign(r_i - p), where sign(x) = 0 for x == 0. So a zero advantage on a
  rollout with r_i != p counts as a flip (its signal is lost), and so does a reversed sign.
  The denominator is every rollout that reaches the loss (G per group).
- nonzero: fraction of those rollouts with A_i != 0.
- Figures are exact expectations: every one of the 2^G (mean) or 2^(G+1) (median) reward
  patterns is enumerated and weighted by its probability (no sampling noise); ``--samples N``
  draws N groups per (p, G) instead (Monte Carlo, seeded). Each G's figure is the average over
  the p grid (default 0.05, 0.10, ..., 0.95; p in {0, 1} would give r == p everywhere).

With binary rewards any baseline inside [0, 1] can never give a rollout the *opposite* sign of
r - p: it can only zero it. So the strict reversal rate (printed, "reversed") is 0 for both
baselines and, for p inside (0, 1), signflip == 1 - nonzero. A second table repeats the
comparison for a graded reward, r = correct + 0.25 * bonus with correct ~ Bernoulli(p) and
bonus ~ Bernoulli(0.5), where reversals do happen (reference: the expected reward p + 0.125).

A third part simulates learning, for the paper's claim that the median closes most of the gap
between G = 2 and G = 8 (within 1 accuracy point). Toy model: 512 tasks, each a Bernoulli policy
with success probability sigmoid(theta_t) (theta_t ~ N(-1, 1.5)); the graded reward above (the
bonus is noise the policy cannot control); per step 32 tasks, G rollouts (mean: A = r - mean) or
G+1 (median: the plugin's advantages, pivot dropped); both rescaled to max |A| = 1 per group
(rescale = "max_abs"), so only the centre differs; REINFORCE step
theta_t += lr * mean over the loss rollouts of A_i * (c_i - p_t). Accuracy = mean p_t over all
tasks after 300 steps, averaged over 8 seeds.

The last line is one JSON object: the graded-reward reversal and flip rates per G (the figures
that matter: with a binary reward a reversal cannot happen), the Bernoulli flip/non-zero rates,
and the learning comparison with ``claim_holds``.
"""
from __future__ import annotations

import argparse
import json

import torch

from grpo_zoo import Groups
from grpo_zoo_mc_grpo.median import mc_advantages, pivot_mask, rescale, sign_disagrees, sign_reversed

GS = (2, 4, 8)


def patterns(levels: int, n: int) -> torch.Tensor:
    """Every assignment of ``levels`` outcome codes to ``n`` rollouts: [levels**n, n] (long)."""
    return torch.cartesian_prod(*[torch.arange(levels)] * n).reshape(-1, n)


def sampled(probs: torch.Tensor, n: int, count: int, gen: torch.Generator) -> torch.Tensor:
    return torch.multinomial(probs.expand(count * n, -1), 1, replacement=True, generator=gen).reshape(count, n)


def mean_baseline(r: torch.Tensor):
    """[M, G] rewards -> advantages (r - group mean) and a keep mask (all kept)."""
    return r - r.mean(1, keepdim=True), torch.ones_like(r, dtype=torch.bool)


def median_baseline(r: torch.Tensor):
    """[M, G+1] rewards -> MC-GRPO advantages (the plugin's code) and the keep mask (pivot dropped)."""
    m, n = r.shape
    groups = Groups.from_sizes([n] * m)
    flat = r.reshape(-1)
    adv = mc_advantages(flat, groups).reshape(m, n)
    keep = ~pivot_mask(flat, groups).reshape(m, n)
    return adv, keep


def figures(r: torch.Tensor, adv: torch.Tensor, keep: torch.Tensor, weights: torch.Tensor, mu: float) -> dict:
    """Expected per-rollout rates over reward patterns ``r`` [M, n] with probabilities ``weights`` [M]."""
    ref = torch.full_like(r, mu)
    kept = keep.sum(1).double()

    def rate(flags):
        return float((weights * ((flags & keep).sum(1) / kept)).sum())

    return {
        "signflip": rate(sign_disagrees(adv, r, ref, 1e-9)),
        "reversed": rate(sign_reversed(adv, r, ref, 1e-9)),
        "nonzero": rate(adv.abs() > 1e-9),
    }


def reward_model(reward: str, p: float):
    """Outcome values and their probabilities for success probability ``p``."""
    if reward == "bernoulli":
        return torch.tensor([0.0, 1.0], dtype=torch.float64), torch.tensor([1 - p, p])
    # graded: correct + 0.25 * bonus; codes 0..3 = (c, b) in (0,0), (0,1), (1,0), (1,1)
    values = torch.tensor([0.0, 0.25, 1.0, 1.25], dtype=torch.float64)
    return values, torch.tensor([(1 - p) * 0.5, (1 - p) * 0.5, p * 0.5, p * 0.5])


def run(reward: str, grid: list[float], samples: int, seed: int) -> dict:
    """Average over the p grid of the mean- and median-baseline figures, per G."""
    out = {}
    gen = torch.Generator().manual_seed(seed)
    for G in GS:
        acc = {"mean": {}, "median": {}}
        for name, n, baseline in (("mean", G, mean_baseline), ("median", G + 1, median_baseline)):
            exact = None
            if not samples:  # the patterns and their advantages do not depend on p: compute them once
                values, _ = reward_model(reward, 0.5)
                codes = patterns(len(values), n)
                exact = (codes, values[codes], *baseline(values[codes]))
            for p in grid:
                values, probs = reward_model(reward, p)
                mu = float((values * probs.double()).sum())
                if exact is not None:
                    codes, r, adv, keep = exact
                    weights = probs.double()[codes].prod(1)
                else:
                    codes = sampled(probs, n, samples, gen)
                    r = values[codes]
                    adv, keep = baseline(r)
                    weights = torch.full((samples,), 1.0 / samples, dtype=torch.float64)
                for k, v in figures(r, adv, keep, weights, mu).items():
                    acc[name][k] = acc[name].get(k, 0.0) + v / len(grid)
        out[f"G{G}"] = acc
    return out


def learn(G: int, baseline: str, seed: int, tasks: int = 512, per_step: int = 32, steps: int = 300,
          lr: float = 1.0) -> float:
    """Final mean success probability of the toy learner above (one seed)."""
    gen = torch.Generator().manual_seed(seed)
    theta = torch.randn(tasks, generator=gen, dtype=torch.float64) * 1.5 - 1.0
    n = G + 1 if baseline == "median" else G
    groups = Groups.from_sizes([n] * per_step)
    for _ in range(steps):
        idx = torch.randperm(tasks, generator=gen)[:per_step]
        p = torch.sigmoid(theta[idx])
        c = (torch.rand(per_step, n, generator=gen, dtype=torch.float64) < p[:, None]).double()
        bonus = (torch.rand(per_step, n, generator=gen, dtype=torch.float64) < 0.5).double()
        r = (c + 0.25 * bonus).reshape(-1)
        if baseline == "median":
            adv = mc_advantages(r, groups)
            keep = ~pivot_mask(r, groups)
        else:
            adv = r - r.reshape(per_step, n).mean(1).repeat_interleave(n)
            keep = torch.ones_like(r, dtype=torch.bool)
        adv = rescale(adv, groups, "max_abs")
        score = (adv * (c.reshape(-1) - p.repeat_interleave(n)) * keep).reshape(per_step, n).sum(1)
        theta[idx] += lr * score / keep.reshape(per_step, n).sum(1)
    return float(torch.sigmoid(theta).mean())


def learning(seeds: int) -> dict:
    acc = {f"G{G}_{b}": sum(learn(G, b, s) for s in range(seeds)) / seeds for G in (2, 8) for b in ("mean", "median")}
    gap_mean = acc["G8_mean"] - acc["G2_mean"]
    gap_median = acc["G8_median"] - acc["G2_median"]
    return {
        **{k: round(v, 4) for k, v in acc.items()},
        "gap_G8_minus_G2_mean": round(gap_mean, 4),
        "gap_G8_minus_G2_median": round(gap_median, 4),
        "claim": "median: G = 2 within 1 accuracy point of G = 8",
        "claim_holds": bool(abs(gap_median) <= 0.01),
        "seeds": seeds,
    }


def table(title: str, res: dict) -> str:
    lines = [title, f"{'G':>3} | {'signflip mean':>13} {'median':>8} | {'reversed mean':>13} {'median':>8} | "
             f"{'nonzero mean':>12} {'median':>8}"]
    for key, r in res.items():
        a, b = r["mean"], r["median"]
        lines.append(
            f"{key[1:]:>3} | {a['signflip']:13.4f} {b['signflip']:8.4f} | {a['reversed']:13.4f} {b['reversed']:8.4f} | "
            f"{a['nonzero']:12.4f} {b['nonzero']:8.4f}"
        )
    return "\n".join(lines)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--grid", type=float, nargs="+", default=[round(0.05 * k, 2) for k in range(1, 20)])
    ap.add_argument("--samples", type=int, default=0, help="Monte Carlo groups per (p, G); 0 = exact enumeration")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--learn-seeds", type=int, default=8)
    args = ap.parse_args(argv)
    mode = f"Monte Carlo, {args.samples} groups per (p, G)" if args.samples else "exact expectation"
    grid = f"p in {args.grid[0]}..{args.grid[-1]} ({len(args.grid)} points)"
    graded = run("graded", args.grid, args.samples, args.seed)
    print(table(f"graded reward r = correct + 0.25*bonus ({mode}, {grid})", graded))
    print()
    bern = run("bernoulli", args.grid, args.samples, args.seed)
    print(table(f"Bernoulli reward ({mode}, {grid})", bern))
    learned = learning(args.learn_seeds)
    print()
    print(f"learning (toy, graded reward, {args.learn_seeds} seeds): final accuracy")
    print(f"{'':8s} {'G = 2':>8s} {'G = 8':>8s} {'gap':>8s}")
    for b in ("mean", "median"):
        print(f"{b:8s} {learned[f'G2_{b}']:8.4f} {learned[f'G8_{b}']:8.4f} {learned[f'gap_G8_minus_G2_{b}']:8.4f}")
    result = {
        "bench": "mc_grpo_signflip",
        "graded": {
            key: {
                "reversal_mean": round(r["mean"]["reversed"], 4),
                "reversal_median": round(r["median"]["reversed"], 4),
                "signflip_mean": round(r["mean"]["signflip"], 4),
                "signflip_median": round(r["median"]["signflip"], 4),
            }
            for key, r in graded.items()
        },
        "bernoulli": {
            key: {
                "signflip_mean": round(r["mean"]["signflip"], 4),
                "signflip_median": round(r["median"]["signflip"], 4),
                "nonzero_mean": round(r["mean"]["nonzero"], 4),
                "nonzero_median": round(r["median"]["nonzero"], 4),
            }
            for key, r in bern.items()
        },
        "learning": learned,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
