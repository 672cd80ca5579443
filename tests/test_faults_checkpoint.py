"""Fault suite: checkpoints hold no pickle, are verified against their manifest, and survive full disks."""
from __future__ import annotations

import errno
import json
import os
import pickle
import shutil
from pathlib import Path

import pytest
import torch

from grpo_zoo import cli, hookimpl
from grpo_zoo.errors import CheckpointError
from grpo_zoo.trainer import checkpoint, durable, statefile
from grpo_zoo.trainer.rundir import read_jsonl

CONFIG = {"task": {"size": 6}, "train": {"lr": 2e-2, "checkpoint_every": 1}}
STEPS = 3


def comparable(rows):
    return [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]


def weights(ckpt: Path) -> dict:
    from safetensors.torch import load_file

    return load_file(str(ckpt / "model" / "model.safetensors"))


def assert_same_run(a: Path, b: Path):
    assert comparable(read_jsonl(a / "metrics.jsonl")) == comparable(read_jsonl(b / "metrics.jsonl"))
    wa, wb = weights(checkpoint.latest(a)), weights(checkpoint.latest(b))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """An uninterrupted 3-step run with a checkpoint after every step."""
    from grpo_zoo.context import make_context
    from grpo_zoo.testing import BASE_CONFIG, KitReward, merge
    from grpo_zoo.trainer.loop import Trainer

    out = tmp_path_factory.mktemp("full") / "run"
    raw = merge(BASE_CONFIG, CONFIG)
    raw["train"]["steps"] = STEPS
    raw["plugins"] = ["kit_reward"]
    Trainer(make_context(raw, extra_plugins={"kit_reward": KitReward()}), out, progress=False).run()
    return out


def _train(zoo_train_step, out, resume=False):
    return zoo_train_step(config=CONFIG, steps=STEPS, run_dir=out, resume=resume)


# --- finding 1: no code execution from a run folder -------------------------------------------------


class Boom:
    def __reduce__(self):
        return (os.system, (f"touch {Boom.marker}",))


def test_checkpoint_holds_no_pickle(full_run):
    ckpt = checkpoint.latest(full_run)
    files = {p.relative_to(ckpt).as_posix() for p in ckpt.rglob("*") if p.is_file()}
    assert {"state.json", "state.safetensors", "MANIFEST.json", "model/model.safetensors"} <= files
    assert not [f for f in files if f.endswith((".pt", ".bin", ".pkl"))]
    json.loads((ckpt / "state.json").read_text())  # plain JSON


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """A 1-step run made by the CLI with built-in plugins only (resumable by `python -m grpo_zoo`)."""
    root = tmp_path_factory.mktemp("cli")
    cfg = root / "run.toml"
    cfg.write_text('model = "tiny-random"\n[task]\nsize = 4\n[sampling]\ngroup_size = 2\nmax_new_tokens = 4\n'
                   "[train]\nsteps = 1\nprompts_per_step = 2\n")
    assert cli.main(["train", str(cfg), "--out", str(root / "run")]) == 0
    return root / "run"


@pytest.mark.parametrize("where", ["state.pt", "model/pytorch_model.bin"])
def test_malicious_pickle_in_a_run_folder_is_refused_and_never_run(cli_run, tmp_path, where):
    run = tmp_path / "run"
    shutil.copytree(cli_run, run)
    marker = tmp_path / "pwned"
    Boom.marker = marker
    ckpt = checkpoint.latest(run)
    if where == "state.pt":  # an old-format checkpoint: state.pt and no manifest
        for p in ("state.json", "state.safetensors", "MANIFEST.json"):
            (ckpt / p).unlink(missing_ok=True)
    with open(ckpt / where, "wb") as f:
        pickle.dump({"step": 0, "x": Boom()}, f)
    import subprocess
    import sys

    p = subprocess.run([sys.executable, "-m", "grpo_zoo", "train", "--resume", str(run)],
                       capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert not marker.exists(), "the pickle in the run folder was executed"
    assert p.returncode == 2, p.stderr[-2000:]
    assert "grpo-zoo: error:" in p.stderr and "pickle" in p.stderr and "Traceback" not in p.stderr
    assert ckpt.name in p.stderr


def test_plugin_state_round_trips_exactly(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    state = {
        "optimizer": opt.state_dict(),  # int keys, tuples (betas), tensors, None, bools
        "nested": {1: [1.5, float("nan"), float("-inf"), "s", None, True, (2, "x")], "$odd": 3, (1, 2): "t"},
        "view": torch.arange(10)[2:5],
        "shared": [torch.ones(3)] * 2,  # one tensor twice: stored twice, comes back equal
        "empty": [torch.zeros(0), torch.zeros(0, 2)],
        "bf16": torch.ones(2, dtype=torch.bfloat16),
        "float_vs_int": [1, 1.0],
    }
    statefile.save({"plugins": {"p": state}}, tmp_path / "s.json", tmp_path / "s.safetensors")
    back = statefile.load(tmp_path / "s.json", tmp_path / "s.safetensors")["plugins"]["p"]
    assert back["optimizer"]["param_groups"] == opt.state_dict()["param_groups"]
    for k, v in opt.state_dict()["state"].items():
        assert back["optimizer"]["state"][k].keys() == v.keys()
        assert all(torch.equal(back["optimizer"]["state"][k][n], v[n]) for n in v)
    n = back["nested"]
    assert n[1][:1] == [1.5] and n[1][1] != n[1][1] and n[1][2] == float("-inf") and n[1][3:] == ["s", None, True, (2, "x")]
    assert n["$odd"] == 3 and n[(1, 2)] == "t"
    assert torch.equal(back["view"], torch.tensor([2, 3, 4])) and back["bf16"].dtype == torch.bfloat16
    assert all(torch.equal(t, torch.ones(3)) for t in back["shared"])
    assert [t.shape for t in back["empty"]] == [(0,), (0, 2)]
    assert [type(x) for x in back["float_vs_int"]] == [int, float]
    opt2 = torch.optim.AdamW(model.parameters(), lr=0.1)
    opt2.load_state_dict(back["optimizer"])  # torch accepts it as is


def test_unsaveable_plugin_state_is_refused_at_save_naming_the_plugin(zoo_train_step, tmp_path):
    class Bad:
        @hookimpl
        def zoo_state_dict(self, ctx):
            return {"ok": 1, "fn": lambda: 0}

    with pytest.raises(CheckpointError, match=r"plugin 'bad'.*\['fn'\].*function"):
        zoo_train_step(plugins={"bad": Bad()}, run_dir=tmp_path / "run")
    assert not checkpoint.checkpoints(tmp_path / "run")


# --- finding 5: a corrupt newest checkpoint falls back; full disks leave a resumable run ------------------


@pytest.mark.parametrize("damage", ["truncate_weights", "flip_a_byte", "empty_state", "no_manifest"])
def test_corrupt_newest_checkpoint_falls_back_to_the_previous(zoo_train_step, full_run, tmp_path, capsys, damage):
    run = tmp_path / "run"
    shutil.copytree(full_run, run)
    newest = checkpoint.latest(run)
    assert newest.name == "step-000002"
    if damage == "truncate_weights":
        w = newest / "model" / "model.safetensors"
        w.write_bytes(w.read_bytes()[: w.stat().st_size // 2])
    elif damage == "flip_a_byte":  # same size: only the hash can tell
        w = newest / "model" / "model.safetensors"
        data = bytearray(w.read_bytes())
        data[-1] ^= 0xFF
        w.write_bytes(bytes(data))
    elif damage == "empty_state":
        (newest / "state.safetensors").write_bytes(b"")
    else:
        (newest / "MANIFEST.json").unlink()
    assert checkpoint.latest(run).name == "step-000001"
    if damage != "no_manifest":
        assert f"checkpoint {newest} is damaged" in capsys.readouterr().err
    _train(zoo_train_step, run, resume=True)
    assert_same_run(run, full_run)
    assert checkpoint.verify(checkpoint.latest(run)) is None


def _enospc(path="?"):
    return OSError(errno.ENOSPC, "No space left on device", str(path))


def test_disk_full_during_checkpoint_leaves_a_resumable_run(zoo_train_step, full_run, tmp_path, monkeypatch):
    run = tmp_path / "run"
    real = checkpoint.write_state

    def full_disk(folder, state):
        if state["step"] == 2:
            (folder / "state.json").write_text('{"step": 2, "optim')
            raise _enospc(folder / "state.json")
        return real(folder, state)

    monkeypatch.setattr(checkpoint, "write_state", full_disk)
    with pytest.raises(OSError, match="No space"):
        _train(zoo_train_step, run)
    monkeypatch.setattr(checkpoint, "write_state", real)
    assert checkpoint.latest(run).name == "step-000001"
    _train(zoo_train_step, run, resume=True)
    assert_same_run(run, full_run)


def test_disk_full_during_an_append_leaves_a_resumable_run(zoo_train_step, full_run, tmp_path, monkeypatch, capsys):
    run = tmp_path / "run"
    real = durable.append_lines
    calls = []

    def full_disk(path, lines):
        calls.append(path)
        if len(calls) == 5:  # step 2's metrics row: half of it reaches the disk
            with open(path, "a") as f:
                f.write(lines[0][: len(lines[0]) // 2])
            raise _enospc(path)
        return real(path, lines)

    import grpo_zoo.trainer.rundir as rundir

    monkeypatch.setattr(rundir, "append_lines", full_disk)
    with pytest.raises(OSError, match="No space"):
        _train(zoo_train_step, run)
    monkeypatch.setattr(rundir, "append_lines", real)
    assert not (run / "metrics.jsonl").read_text().endswith("\n")  # the torn line is there
    _train(zoo_train_step, run, resume=True)
    assert "dropping the torn last line" in capsys.readouterr().err
    assert_same_run(run, full_run)
