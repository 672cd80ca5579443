"""Shared by the scale benches: one short training run in a fresh subprocess (so its peak RSS is
its own), returning its median time per step and peak RSS. Not a bench itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, resource, statistics, sys
from pathlib import Path
from grpo_zoo.context import make_context
from grpo_zoo.trainer.loop import Trainer
from grpo_zoo.trainer.rundir import read_jsonl
cfg, overrides, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
Trainer(make_context(cfg, overrides), out, progress=False, save_final=False).run()
rows = read_jsonl(out / "metrics.jsonl")
times = [r["time/step_s"] for r in rows[1:]] or [rows[0]["time/step_s"]]  # the first step warms up
print("RESULT " + json.dumps({
    "s_per_step": statistics.median(times),
    "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "loss": [r["loss"] for r in rows], "reward": [r["reward/mean"] for r in rows],
}))
"""


def base_config(model: str, steps: int, prompts: int, group: int, max_new_tokens: int, threads: int) -> dict:
    return {
        "model": model,
        "seed": 0,
        "task": {"name": "basic_arithmetic", "size": 64,
                 "params": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}},
        "sampling": {"group_size": group, "max_new_tokens": max_new_tokens},
        "reward": {"builtin": ["correct", "length"], "length_target": max_new_tokens},
        "train": {"steps": steps, "prompts_per_step": prompts, "micro_batch_size": prompts * group,
                  "lr": 1e-6, "threads": threads, "checkpoint_every": 0},
    }


def run(cfg: dict, overrides: list[str], timeout: int = 1800) -> dict:
    with tempfile.TemporaryDirectory(prefix="grpo-zoo-bench-") as tmp:
        env = dict(os.environ, OMP_NUM_THREADS=str(cfg["train"]["threads"] or os.cpu_count()))
        proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(cfg), json.dumps(overrides), tmp + "/run"],
                              env=env, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise SystemExit(f"bench run {overrides} failed:\n{proc.stderr[-3000:]}")
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")][-1]
        return json.loads(line[len("RESULT "):])
