"""GDPO's resolution claim: distinct advantage vectors across groups, GRPO vs GDPO.

The paper's collapse is across groups: under GRPO (sum, then normalize) different reward
combinations give the same advantage vector, e.g. at G = 2 the totals (0,1), (0,2) and (1,2)
all give (-0.7071, +0.7071). The headline figure enumerates every combination of two binary
rewards over G rollouts (4^G groups, one group each, no batch step) and counts the distinct
advantage vectors each method produces, for G = 2, 4, 8.

Secondary (printed, also in the JSON under "within_group"): the mean number of distinct values
*within* a group. At G = 2 this is identical for both methods by construction (two rollouts
have at most two values), so it cannot show the paper's effect there.

Random groups with K in {2, 3, 4} binary reward columns (each column of each group
a Bernoulli draw with its own success rate p ~ U(0, 1)) and G in {2, 4, 8}. For every
group we count the distinct advantage values that plain GRPO (weighted sum, then
group normalization: core's built-in) and GDPO (the `gdpo` plugin: per-column
group normalization, weighted sum, batch normalization) give its rollouts, and
average. More distinct values = finer training signal; GRPO collapses reward
combinations with the same total (e.g. (1,0) and (0,1)) and, across groups,
totals that differ only by a scale.

Needs core and the gdpo plugin installed; no model. Last line: one JSON object with
"distinct_vectors" {"G2": {"grpo": .., "gdpo": ..}, ...} and "within_group".
Run: .venv/bin/python bench/gdpo_resolution.py
"""
from __future__ import annotations

import itertools
import json
import time

import torch

from grpo_zoo.context import make_context
from grpo_zoo.segments import segment_nunique
from grpo_zoo_gdpo import distinct_per_group
from grpo_zoo_gdpo.sim import rollouts_from_columns

SEED = 0
GROUP_SIZES = (2, 4, 8)
REWARD_COUNTS = (2, 3, 4)
GROUPS_PER_CELL = 3000  # per (G, K)
GROUPS_PER_BATCH = 100  # the batch step rescales a batch uniformly: it never changes a count within a group


def context(gdpo: bool, batch_normalize: bool = True):
    raw = {"model": "tiny-random", "seed": SEED, "plugins": ["gdpo"] if gdpo else []}
    if gdpo:
        raw["gdpo"] = {"batch_normalize": batch_normalize}
    return make_context(raw)


def cell(ctx_grpo, ctx_gdpo, g: int, k: int, gen: torch.Generator) -> tuple[float, float, float]:
    """Mean distinct advantages per group (GRPO, GDPO) and the share of groups where GDPO has more."""
    grpo_sum = gdpo_sum = more = 0.0
    done = 0
    while done < GROUPS_PER_CELL:
        n = min(GROUPS_PER_BATCH, GROUPS_PER_CELL - done)
        p = torch.rand(n, 1, k, generator=gen).expand(n, g, k)
        rewards = torch.bernoulli(p, generator=gen).reshape(n * g, k)
        cols = {f"r{j}": rewards[:, j] for j in range(k)}
        r_grpo = ctx_grpo.compute_advantages(rollouts_from_columns(cols, [g] * n))
        r_gdpo = ctx_gdpo.compute_advantages(rollouts_from_columns(cols, [g] * n))
        groups = r_grpo.groups
        a = segment_nunique(r_grpo.advantages, groups).double()
        b = segment_nunique(r_gdpo.advantages, groups).double()
        grpo_sum += float(a.sum())
        gdpo_sum += float(b.sum())
        more += float((b > a).double().sum())
        assert distinct_per_group(r_gdpo.advantages, groups) == float(b.mean())
        done += n
    return grpo_sum / done, gdpo_sum / done, more / done


def distinct_vectors(ctx, g: int) -> int:
    """Every combination of two binary rewards over G rollouts, one group each: how many distinct
    advantage vectors come out (the paper's count of distinct advantage groups; no batch step)."""
    combos = torch.tensor(list(itertools.product([0.0, 1.0], repeat=2 * g)))  # [4^G, 2G]
    n = combos.shape[0]
    cols = {"r0": combos[:, :g].reshape(-1), "r1": combos[:, g:].reshape(-1)}
    adv = ctx.compute_advantages(rollouts_from_columns(cols, [g] * n)).advantages.double()
    rows = torch.round(adv.reshape(n, g) * 100).long()  # coarse: eps = 1e-4 shifts values in the 4th decimal
    return int(torch.unique(rows, dim=0).shape[0])


def main() -> dict:
    t0 = time.perf_counter()
    gen = torch.Generator().manual_seed(SEED)
    ctx_grpo, ctx_gdpo = context(False), context(True)
    out = {}
    print(f"{GROUPS_PER_CELL} groups per (G, K); K binary rewards, p ~ U(0,1) per group and column; seed {SEED}")
    print(f"{'G':>3} {'K':>3} {'grpo':>8} {'gdpo':>8} {'gdpo>grpo':>10}")
    for g in GROUP_SIZES:
        tot_a = tot_b = 0.0
        for k in REWARD_COUNTS:
            a, b, more = cell(ctx_grpo, ctx_gdpo, g, k, gen)
            print(f"{g:>3} {k:>3} {a:>8.3f} {b:>8.3f} {more:>10.3f}")
            tot_a += a
            tot_b += b
        out[f"G{g}"] = {"grpo": round(tot_a / len(REWARD_COUNTS), 4), "gdpo": round(tot_b / len(REWARD_COUNTS), 4)}
    ctx_flat = context(True, batch_normalize=False)
    print("distinct advantage vectors over all 4^G combinations of 2 binary rewards (no batch step):")
    vectors = {}
    for g in GROUP_SIZES:
        a, b = distinct_vectors(ctx_grpo, g), distinct_vectors(ctx_flat, g)
        vectors[f"G{g}"] = {"grpo": a, "gdpo": b, "combinations": 4**g}
        print(f"  G={g}: grpo {a}  gdpo {b}  ({4**g} combinations)")
    holds = all(v["gdpo"] > v["grpo"] for v in vectors.values())
    print(f"({time.perf_counter() - t0:.1f}s)")
    result = {
        "bench": "gdpo_resolution",
        "distinct_vectors": vectors,
        "claim": "GDPO keeps reward combinations apart that GRPO collapses (more distinct advantage vectors)",
        "claim_holds": holds,
        "within_group": out,
        "within_group_note": "mean distinct values inside one group over K = 2, 3, 4 columns; equal at G = 2 by construction",
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
