"""Fault suite: kill -9 at seeded random points, then --resume, equals the uninterrupted run bitwise.

Each case runs the trainer in a subprocess that SIGKILLs itself at a point drawn
from a seeded RNG (mid-step, inside a checkpoint write, between the folder's and
the pointer's renames, just after a checkpoint), then resumes it in a fresh
process and compares every metric and every final weight exactly.
"""
from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from grpo_zoo.testing import BASE_CONFIG, merge
from grpo_zoo.trainer import checkpoint
from grpo_zoo.trainer.rundir import read_jsonl

RUNNER = Path(__file__).with_name("fault_runner.py")
STEPS = 4
CONFIG = merge(
    BASE_CONFIG,
    {
        "task": {"size": 6},
        "plugins": ["kit_reward", "stateful", "killer"],
        "train": {"steps": STEPS, "lr": 2e-2, "warmup_steps": 1, "schedule": "cosine", "checkpoint_every": 1},
        "loss": {"num_iterations": 2},
    },
)
PHASES = ["observe", "state", "manifest", "pointer", "after"]


def run(out: Path, *extra: str) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(RUNNER), str(out), json.dumps(CONFIG), *extra]
    env = {**__import__("os").environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)


def final_weights(out: Path) -> dict:
    ckpt = checkpoint.latest(out)
    return load_file(str(ckpt / "model" / "model.safetensors"))


def comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("ref") / "run"
    p = run(out)
    assert p.returncode == 0, p.stderr[-3000:]
    return comparable(read_jsonl(out / "metrics.jsonl")), final_weights(out)


def kill_points(seed: int, n: int) -> list[tuple[int, str]]:
    rng = random.Random(seed)
    return rng.sample([(s, p) for s in range(STEPS) for p in PHASES], n)


# seeded draws (every phase but "pointer"), the pointer swing, and a kill before the first checkpoint
@pytest.mark.parametrize("step,phase", kill_points(seed=7, n=4) + [(1, "pointer"), (0, "observe")])
def test_kill9_then_resume_is_bitwise_identical(reference, tmp_path, step, phase):
    out = tmp_path / "run"
    killed = run(out, "--kill", f"{step}:{phase}")
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr[-3000:])
    resumed = run(out, "--resume")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "finished" in resumed.stdout
    ref_rows, ref_weights = reference
    assert comparable(read_jsonl(out / "metrics.jsonl")) == ref_rows  # exact, not approximate
    weights = final_weights(out)
    assert weights.keys() == ref_weights.keys()
    for k in weights:
        assert torch.equal(weights[k], ref_weights[k]), k
    # no half-written checkpoint survives, and only intact ones are listed
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    assert not [n for n in names if n.startswith(".tmp")], names
    assert all(checkpoint.verify(p) is None for p in checkpoint.checkpoints(out))
