"""Evaluation under two CPU processes (accelerate launch, gloo): the eval set is split across ranks and
gathered, giving the rows of a one-process run; `generated` sums both ranks' completions."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from grpo_zoo import cli
from grpo_zoo.evaluation import EVAL_FILE
from grpo_zoo.trainer.rundir import read_jsonl

CONFIG = """
model = "tiny-random"
seed = 0
[task]
size = 16
[sampling]
group_size = 3
max_new_tokens = 8
[reward]
builtin = ["correct", "length"]
length_target = 8
[train]
steps = 2
prompts_per_step = 3
micro_batch_size = 2
lr = 1e-2
[eval]
size = 5
max_new_tokens = 6
"""


def test_two_process_eval_matches_one_process(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("CUDA_VISIBLE_DEVICES", None)
    two = tmp_path / "two"
    cmd = [accelerate, "launch", "--cpu", "--num_processes", "2", "-m", "grpo_zoo", "train", str(cfg), "--out", str(two)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    one = tmp_path / "one"
    assert cli.main(["train", str(cfg), "--out", str(one)]) == 0

    rows2, rows1 = read_jsonl(two / EVAL_FILE), read_jsonl(one / EVAL_FILE)
    assert [r["step"] for r in rows2] == [0, 2]  # one row per evaluation: only rank 0 writes
    assert all(r["eval/tasks"] == 5 for r in rows2)  # both ranks' shares gathered (3 + 2 tasks)
    # before training the weights are the same: the gathered evaluation equals the one-process one
    for k in ("eval/pass@1", "eval/reward/correct", "eval/reward/length", "eval/completion_len"):
        assert rows2[0][k] == pytest.approx(rows1[0][k]), k
    metrics = read_jsonl(two / "metrics.jsonl")
    assert all(m["generated"] == m["rollouts"] == 9 for m in metrics)  # counted on each rank, summed
    assert rows2[-1]["generated"] == 18
