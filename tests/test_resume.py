"""Checkpoints and resume: a run stopped and resumed at a checkpoint gives the metrics of an uninterrupted one."""
from __future__ import annotations

import random

import pytest
import torch

from grpo_zoo import cli, hookimpl
from grpo_zoo.testing import KitReward
from grpo_zoo.trainer import checkpoint
from grpo_zoo.trainer.rundir import read_jsonl

STEPS = 4
CONFIG = {
    "task": {"size": 6},  # 2 prompts a step: the curriculum wraps into a new (reshuffled) epoch at step 3
    "train": {"lr": 2e-2, "warmup_steps": 1, "schedule": "cosine", "checkpoint_every": 2},
    "loss": {"num_iterations": 2},
}


class Stateful:
    """A plugin with state (a running sum fed by the global RNGs) that it reports every step."""

    def __init__(self):
        self.total = 0.0
        self.calls = 0

    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        self.calls += 1
        self.total += random.random() + float(torch.rand(()))

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        return {"stateful/total": self.total, "stateful/calls": self.calls}

    @hookimpl
    def zoo_state_dict(self, ctx):
        return {"total": self.total, "calls": self.calls}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.total, self.calls = state["total"], state["calls"]


class Crash(Exception):
    pass


class KillAt:
    """Kills the run when step ``at`` starts (after its rollouts, before its update)."""

    def __init__(self, at: int):
        self.at = at

    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        if ctx.step == self.at:
            raise Crash(f"killed at step {self.at}")


def comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def assert_same_metrics(a, b):
    a, b = comparable(a), comparable(b)
    assert [r["step"] for r in a] == [r["step"] for r in b]
    for ra, rb in zip(a, b):
        assert set(ra) == set(rb)
        for k in ra:
            assert ra[k] == pytest.approx(rb[k], rel=1e-6, abs=1e-7), (ra["step"], k, ra[k], rb[k])


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    from grpo_zoo.context import make_context
    from grpo_zoo.testing import BASE_CONFIG, merge
    from grpo_zoo.trainer.loop import Trainer

    out = tmp_path_factory.mktemp("full") / "run"
    raw = merge(BASE_CONFIG, CONFIG)
    raw["train"]["steps"] = STEPS
    raw["plugins"] = ["kit_reward", "stateful"]
    ctx = make_context(raw, extra_plugins={"kit_reward": KitReward(), "stateful": Stateful()})
    Trainer(ctx, out, progress=False).run()
    rows = read_jsonl(out / "metrics.jsonl")
    assert len(rows) == STEPS and rows[-1]["curriculum/epoch"] == 1
    assert len({r["lr"] for r in rows}) > 1  # warm-up + cosine: resume must restore the schedule
    return rows


def _plugins(kill_at=None):
    plugins = {"stateful": Stateful}  # a class: a fresh instance per run, state only through the checkpoint
    if kill_at is not None:
        plugins["kill"] = KillAt(kill_at)
    return plugins


def test_killed_and_resumed_run_matches(zoo_train_step, uninterrupted, tmp_path):
    out = tmp_path / "run"
    with pytest.raises(Exception, match="killed at step 3"):
        zoo_train_step(plugins=_plugins(kill_at=3), config=CONFIG, steps=STEPS, run_dir=out)
    assert len(read_jsonl(out / "metrics.jsonl")) == 3  # step 2 finished but was never checkpointed
    assert checkpoint.latest(out).name == "step-000001"
    res = zoo_train_step(plugins=_plugins(), config=CONFIG, steps=STEPS, run_dir=out, resume=True)
    assert_same_metrics(res.metrics, uninterrupted)


def test_crash_mid_checkpoint_write_keeps_previous(zoo_train_step, uninterrupted, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_save = checkpoint.write_state

    def dying_save(folder, state):
        if state.get("step") == 3:
            (folder / "state.json").write_text("half a checkpoint")
            raise Crash("power cut while writing the step-3 checkpoint")
        return real_save(folder, state)

    monkeypatch.setattr(checkpoint, "write_state", dying_save)
    with pytest.raises(Exception, match="power cut"):
        zoo_train_step(plugins=_plugins(), config=CONFIG, steps=STEPS, run_dir=out)
    monkeypatch.setattr(checkpoint, "write_state", real_save)
    assert (out / "checkpoints" / ".tmp-step-000003").exists()  # the torn write
    assert checkpoint.latest(out).name == "step-000001"  # still the previous one
    res = zoo_train_step(plugins=_plugins(), config=CONFIG, steps=STEPS, run_dir=out, resume=True)
    assert_same_metrics(res.metrics, uninterrupted)
    assert checkpoint.latest(out).name == "step-000003"


def test_crash_between_renames_falls_back_to_newest_complete(zoo_train_step, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real_replace = checkpoint.os.replace

    def dying_replace(src, dst):
        if str(dst).endswith("latest") and "step-000003" in open(src).read():
            raise Crash("crashed before the pointer moved")
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", dying_replace)
    with pytest.raises(Exception, match="pointer"):
        zoo_train_step(plugins=_plugins(), config=CONFIG, steps=STEPS, run_dir=out)
    assert (out / "checkpoints" / "latest").read_text() == "step-000001"
    assert checkpoint.latest(out).name == "step-000003"  # complete, so it is used


def test_cli_resume_continues_to_more_steps(tmp_path, capsys):
    """`train` with steps=2, then `train --resume --set train.steps=4` == one 4-step run."""
    cfg = tmp_path / "run.toml"
    cfg.write_text(
        'model = "tiny-random"\nseed = 3\n[task]\nsize = 6\n[sampling]\ngroup_size = 3\nmax_new_tokens = 6\n'
        '[reward]\nbuiltin = ["correct", "length"]\nlength_target = 4\n'
        "[train]\nprompts_per_step = 2\nlr = 1e-2\nmicro_batch_size = 4\n"
    )
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli.main(["train", str(cfg), "--out", str(full), "--set", "train.steps=4"]) == 0
    assert cli.main(["train", str(cfg), "--out", str(part), "--set", "train.steps=2"]) == 0
    assert cli.main(["train", "--resume", str(part), "--set", "train.steps=4"]) == 0
    assert_same_metrics(read_jsonl(part / "metrics.jsonl"), read_jsonl(full / "metrics.jsonl"))
    assert "at the last" in capsys.readouterr().out
    # resuming a finished run is a no-op that still prints the summary
    assert cli.main(["train", "--resume", str(part)]) == 0
    assert len(read_jsonl(part / "metrics.jsonl")) == 4


def test_run_killed_before_its_first_checkpoint_resumes_from_step_0(zoo_train_step, uninterrupted, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.raises(Exception, match="killed at step 1"):
        zoo_train_step(plugins=_plugins(kill_at=1), config=CONFIG, steps=STEPS, run_dir=out)
    assert checkpoint.latest(out) is None and len(read_jsonl(out / "metrics.jsonl")) == 1
    res = zoo_train_step(plugins=_plugins(), config=CONFIG, steps=STEPS, run_dir=out, resume=True)
    assert "no checkpoint yet (killed before the first); starting from step 0" in capsys.readouterr().err
    assert_same_metrics(res.metrics, uninterrupted)


def test_resume_with_every_checkpoint_damaged_is_a_clear_error(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"config": {"model": "tiny-random"}}')
    bad = tmp_path / "checkpoints" / "step-000001"
    bad.mkdir(parents=True)
    (bad / "MANIFEST.json").write_text('{"format": 2, "files": {"state.json": {"size": 1, "sha256": "0"}}}')
    assert cli.main(["train", "--resume", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert f"checkpoint {bad} is damaged" in err and "every checkpoint" in err
