"""GDPO's resolution claim in miniature: distinct advantage values per group, GRPO vs GDPO.

Random groups with K in {2, 3, 4} binary reward columns (each column of each group
a Bernoulli draw with its own success rate p ~ U(0, 1)) and G in {2, 4, 8}. For every
group we count the distinct advantage values that plain GRPO (weighted sum, then
group normalization: core's built-in) and GDPO (the `gdpo` plugin: per-column
group normalization, weighted sum, batch normalization) give its rollouts, and
average. More distinct values = finer training signal; GRPO collapses reward
combinations with the same total (e.g. (1,0) and (0,1)) and, across groups,
totals that differ only by a scale.

Needs core and the gdpo plugin installed; no model. Last line: one JSON object
{"G2": {"grpo": .., "gdpo": ..}, "G4": {..}, "G8": {..}}.
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
    for g in (2, 3, 4):
        print(f"  G={g}: grpo {distinct_vectors(ctx_grpo, g)}  gdpo {distinct_vectors(ctx_flat, g)}")
    print(f"({time.perf_counter() - t0:.1f}s) mean distinct advantage values per group, over K = {list(REWARD_COUNTS)}:")
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
