"""Data parallelism: each rank rolls out a share of the tasks, then every rank sees the whole batch.

Advantages need whole groups and, for batch-level scaling, the whole batch,
so rollouts are gathered before advantages; each rank then trains on its
share of the rollouts and DDP averages the gradients.
"""
from __future__ import annotations

import torch

from ..types import Rollouts
from .reduce import merge_rank_metrics

_FIELDS = ("prompt_text", "prompt_ids", "completion_ids", "completion_text")


def world(ctx) -> tuple[int, int]:
    acc = ctx.accelerator
    return (acc.process_index, acc.num_processes) if acc is not None else (0, 1)


def shard_by_budget(ctx, budgets: list[int]) -> list[int]:
    """This rank's task indices: tasks dealt largest budget first to the rank with the fewest
    rollouts so far (ties: lower rank), so ranks generate about as many rollouts each."""
    rank, size = world(ctx)
    if size == 1:
        return list(range(len(budgets)))
    load = [0] * size
    mine = []
    for i in sorted(range(len(budgets)), key=lambda i: (-budgets[i], i)):
        r = min(range(size), key=lambda k: (load[k], k))
        load[r] += budgets[i]
        if r == rank:
            mine.append(i)
    return sorted(mine)


def gather_rollouts(ctx, rollouts: Rollouts, tasks: list, local: list[int]) -> Rollouts:
    """Rollouts of every rank, with group ids pointing into the full ``tasks`` list."""
    rank, size = world(ctx)
    remap = torch.tensor(local, dtype=torch.long)
    if size == 1:
        rollouts.tasks = list(tasks)
        rollouts.group = remap[rollouts.group]
        return rollouts
    from accelerate.utils import gather_object

    mine = {f: getattr(rollouts, f) for f in _FIELDS}
    mine["group"] = remap[rollouts.group].tolist()
    mine["rewards"] = {k: v.tolist() for k, v in rollouts.rewards.items()}
    mine["metrics"] = rollouts.metrics
    mine["sample_logp"] = None if rollouts.sample_logp is None else [t.tolist() for t in rollouts.sample_logp]
    mine["behavior_prompt_ids"] = rollouts.behavior_prompt_ids or [None] * len(rollouts)
    mine["weight_version"] = rollouts.weight_version
    mine["truncated"] = None if rollouts.truncated is None else rollouts.truncated.tolist()
    parts = gather_object([mine])
    merged = Rollouts(
        tasks=list(tasks),
        group=torch.tensor([g for p in parts for g in p["group"]], dtype=torch.long),
        **{f: [x for p in parts for x in p[f]] for f in _FIELDS},
        rewards={k: torch.tensor([x for p in parts for x in p["rewards"][k]]) for k in rollouts.rewards},
        sample_logp=None
        if any(p["sample_logp"] is None for p in parts)
        else [torch.tensor(x, dtype=torch.float32) for p in parts for x in p["sample_logp"]],
        behavior_prompt_ids=None
        if all(x is None for p in parts for x in p["behavior_prompt_ids"])
        else [x for p in parts for x in p["behavior_prompt_ids"]],
        extras=rollouts.extras,
        weight_version=None
        if any(p["weight_version"] is None for p in parts)
        else [v for p in parts for v in p["weight_version"]],
        truncated=None
        if any(p["truncated"] is None for p in parts)
        else torch.tensor([x for p in parts for x in p["truncated"]], dtype=torch.bool),
    )
    # plugin metrics: counts add up, _max/_min keep the extreme, other figures are rollout-weighted means
    merged.metrics.update(merge_rank_metrics([(p["metrics"], len(p["group"])) for p in parts]))
    return merged


# ---------------------------------------------------------------- `accelerate launch --cpu --num_processes N`
# Without MPI, accelerate's CPU launcher starts ONE process, whatever N is (it
# expects mpirun to start the others). grpo-zoo then starts the N ranks itself
# with torch.distributed.run (gloo), so the documented command works as written.
_RANK_VARS = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "PMI_SIZE", "OMPI_COMM_WORLD_SIZE", "MV2_COMM_WORLD_SIZE")
NO_FAN_OUT = "GRPO_ZOO_NO_FAN_OUT"
RUN_DIR_VAR = "GRPO_ZOO_RUN_DIR"


def _parent_num_processes() -> int | None:
    import os
    from pathlib import Path

    try:
        argv = [a.decode() for a in Path(f"/proc/{os.getppid()}/cmdline").read_bytes().split(b"\0")]
    except OSError:
        return None
    if "launch" not in argv or not any("accelerate" in a for a in argv[:3]):
        return None
    for k, a in enumerate(argv):
        for flag in ("--num_processes", "--num-processes"):
            if a == flag and k + 1 < len(argv):
                return int(argv[k + 1])
            if a.startswith(flag + "="):
                return int(a.split("=", 1)[1])
    return None


def accelerate_cpu_fan_out_size() -> int | None:
    """N when ``accelerate launch --cpu --num_processes N`` (N > 1) started this one process without MPI."""
    import os

    env = os.environ
    if env.get("ACCELERATE_USE_CPU", "").lower() not in ("true", "1") or "MASTER_ADDR" not in env:
        return None
    if env.get(NO_FAN_OUT) or any(v in env for v in _RANK_VARS):
        return None
    try:
        n = _parent_num_processes()
    except ValueError:
        return None
    return n if n and n > 1 else None


def fan_out(num_processes: int, run_dir) -> int:
    """Run this same command line as ``num_processes`` ranks on this machine; returns their exit code."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    main = sys.modules.get("__main__")
    if getattr(main, "__spec__", None) is not None and main.__spec__.name in ("grpo_zoo.__main__", "grpo_zoo"):
        target = ["-m", "grpo_zoo"]
    else:
        target = [sys.argv[0]]
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={num_processes}", "--nnodes=1",
           "--master_addr=127.0.0.1", f"--master_port={port}", *target, *sys.argv[1:]]
    env = dict(os.environ, **{NO_FAN_OUT: "1", RUN_DIR_VAR: str(run_dir)})
    print(f"grpo-zoo: accelerate --cpu started one process; starting {num_processes} ranks (gloo)", file=sys.stderr)
    return subprocess.call(cmd, env=env)
