"""Cross-rank reductions for metrics: what every logged figure becomes under data parallelism.

Every rank must call these collectives in the same order (they are
all-reduces); with one process they return their input unchanged.
"""
from __future__ import annotations

import torch

OPS = ("sum", "mean", "max", "min")


def all_reduce(ctx, value, op: str = "mean"):
    """``value`` (number or tensor) reduced over the ranks with ``op`` (sum, mean, max or min).

    A number comes back as a float, a tensor as a tensor of the same shape and
    dtype on its own device. Reductions run in float64 on the accelerator's
    device, so sums of counts stay exact.
    """
    if op not in OPS:
        raise ValueError(f"all_reduce op={op!r}: expected one of {', '.join(OPS)}")
    acc = getattr(ctx, "accelerator", None)
    is_tensor = isinstance(value, torch.Tensor)
    if acc is None or acc.num_processes == 1:
        return value if is_tensor else float(value)
    import torch.distributed as dist

    t = (value.detach() if is_tensor else torch.tensor(value)).to(acc.device, torch.float64).clone()
    dist_op = {"sum": dist.ReduceOp.SUM, "mean": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN}[op]
    dist.all_reduce(t, op=dist_op)
    if op == "mean":
        t = t / acc.num_processes
    if is_tensor:
        return t.to(value.device, value.dtype)
    return float(t)


def metric_op(name: str) -> str:
    """How a per-rank figure named ``name`` combines: counts add, ``max``/``min`` keep the extreme,
    anything else is a mean (weighted by each rank's rollouts where that is known)."""
    if name.endswith(("_count", "/count")):
        return "sum"
    if name.endswith(("_max", "/max")):
        return "max"
    if name.endswith(("_min", "/min")):
        return "min"
    return "mean"


def merge_rank_metrics(parts: list[tuple[dict, int]]) -> dict:
    """Sampling-time metrics of every rank, ``[(metrics, rollouts on that rank), ...]``, as one dict.

    Means are weighted by each rank's rollout count, so a per-rollout mean
    equals the one a single process computes over the whole batch. A key that
    only some ranks report is combined over those ranks.
    """
    merged: dict = {}
    keys = [k for m, _ in parts for k in m]
    for k in dict.fromkeys(keys):
        have = [(m[k], n) for m, n in parts if k in m]
        op = metric_op(k)
        vals = [float(v) for v, _ in have]
        if op == "sum":
            merged[k] = sum(vals)
        elif op == "max":
            merged[k] = max(vals)
        elif op == "min":
            merged[k] = min(vals)
        else:
            weight = sum(n for _, n in have)
            merged[k] = sum(v * n for v, (_, n) in zip(vals, have)) / weight if weight else sum(vals) / len(vals)
        if all(isinstance(v, int) and not isinstance(v, bool) for v, _ in have) and op != "mean":
            merged[k] = int(merged[k])
    return merged
