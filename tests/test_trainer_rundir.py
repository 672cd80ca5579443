"""The run folder: manifest, metrics, samples, plots, checkpoints, and the CLI's summary."""
from __future__ import annotations

import json

import pytest

from grpo_zoo import __version__, cli
from grpo_zoo.trainer import checkpoint
from grpo_zoo.trainer.rundir import read_jsonl

REQUIRED_KEYS = {
    "step",
    "reward/mean",
    "reward/correct/mean",
    "reward/kit/even_tokens/mean",
    "loss",
    "frac_zero_std",
    "rollouts",
    "tokens",
    "time/generate_s",
    "time/train_s",
    "time/step_s",
}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Three steps, a checkpoint after every step (only the newest two are kept)."""
    import grpo_zoo.testing as kit
    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.loop import Trainer

    out = tmp_path_factory.mktemp("rundir") / "run"
    raw = kit.merge(kit.BASE_CONFIG, {"train": {"steps": 3, "checkpoint_every": 1, "samples_per_step": 2}})
    raw["plugins"] = ["kit_reward"]
    ctx = make_context(raw, extra_plugins={"kit_reward": kit.KitReward()})
    metrics = Trainer(ctx, out, progress=False).run()
    return out, metrics


def test_manifest(run):
    out, _ = run
    m = json.loads((out / "manifest.json").read_text())
    assert m["core_version"] == __version__
    assert m["seed"] == 0
    cfg = m["config"]  # resolved: defaults filled in
    assert cfg["model"] == "tiny-random" and cfg["train"]["steps"] == 3
    assert cfg["loss"]["type"] == "grpo" and cfg["advantage"]["scale"] == "group"
    names = {p["name"]: p for p in m["plugins"]}
    assert names["builtin.sampling"]["version"] == __version__ and names["builtin.sampling"]["builtin"]
    assert "kit_reward" in names and names["kit_reward"]["version"]


def test_metrics_and_samples(run):
    out, last = run
    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    for r in rows:
        assert REQUIRED_KEYS <= set(r), REQUIRED_KEYS - set(r)
        assert "kl" not in r  # beta = 0
        assert r["rollouts"] == 6 and r["tokens"] > 0
        assert 0.0 <= r["frac_zero_std"] <= 1.0
        assert r["time/step_s"] >= r["time/train_s"] > 0
    assert last["step"] == 2
    assert json.loads((out / "summary.json").read_text())["step"] == 2
    samples = read_jsonl(out / "samples.jsonl")
    assert [s["step"] for s in samples] == [0, 0, 1, 1, 2, 2]
    assert {"task", "prompt", "completion", "rewards", "advantage"} <= set(samples[0])
    assert "<|im_start|>" in samples[0]["prompt"]  # the exact rendered context


def test_plots_and_plot_command(run, capsys):
    out, _ = run
    for name in ("reward.png", "loss.png"):
        assert (out / "plots" / name).stat().st_size > 1000
    (out / "plots" / "reward.png").unlink()
    assert cli.main(["plot", str(out)]) == 0
    assert (out / "plots" / "reward.png").exists()
    assert "reward.png" in capsys.readouterr().out


def test_checkpoints(run):
    out, _ = run
    kept = [p.name for p in checkpoint.checkpoints(out)]
    assert kept == ["step-000001", "step-000002"]  # the oldest was pruned
    assert checkpoint.latest(out).name == "step-000002"
    ck = out / "checkpoints" / "step-000002"
    assert (ck / "model" / "model.safetensors").exists() and (ck / "model" / "tokenizer.json").exists()
    assert not list((out / "checkpoints").glob(".tmp-*"))


def test_cli_train_prints_summary(tmp_path, capsys):
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'model = "tiny-random"\n[task]\nsize = 8\n[sampling]\ngroup_size = 2\nmax_new_tokens = 4\n'
        "[reward]\nbuiltin = [\"correct\", \"length\"]\nlength_target = 8\n"
        "[train]\nsteps = 2\nprompts_per_step = 2\n"
    )
    assert cli.main(["train", str(cfg), "--out", str(tmp_path / "r"), "--set", "train.samples_per_step=1"]) == 0
    text = capsys.readouterr().out
    assert f"run folder: {tmp_path / 'r'}" in text
    assert "reward/mean:" in text and "at the first step" in text and "plots:" in text
    assert len(read_jsonl(tmp_path / "r" / "samples.jsonl")) == 2
