"""Fault suite (findings 3, 4, 5): run folders are never overwritten or mixed, files survive crashes."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from grpo_zoo import cli
from grpo_zoo.trainer import durable, rundir
from grpo_zoo.trainer.rundir import read_jsonl, truncate_metrics

TOML = (
    'model = "tiny-random"\nseed = 3\n[task]\nsize = 6\n[sampling]\ngroup_size = 2\nmax_new_tokens = 4\n'
    "[train]\nsteps = 1\nprompts_per_step = 2\nlr = 1e-2\n"
)


@pytest.fixture
def cfg(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text(TOML)
    return path


def test_out_onto_an_existing_run_refuses_and_overwrite_replaces_it(cfg, tmp_path, capsys):
    out = tmp_path / "a"
    assert cli.main(["train", str(cfg), "--out", str(out)]) == 0
    manifest = (out / "manifest.json").read_text()
    capsys.readouterr()
    assert cli.main(["train", str(cfg), "--out", str(out), "--set", "seed=4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"--out {out} already holds a run" in err
    assert "--resume" in err and "--overwrite" in err
    assert (out / "manifest.json").read_text() == manifest  # untouched
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [0]
    # --overwrite clears it first: one run, the new seed
    assert cli.main(["train", str(cfg), "--out", str(out), "--set", "seed=4", "--overwrite"]) == 0
    assert json.loads((out / "manifest.json").read_text())["seed"] == 4
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [0]
    assert [p.name for p in (out / "checkpoints").glob("step-*")] == ["step-000000"]


def test_overwrite_never_clears_a_folder_that_is_not_a_run(cfg, tmp_path, capsys):
    out = tmp_path / "precious"
    out.mkdir()
    (out / "thesis.tex").write_text("years of work")
    assert cli.main(["train", str(cfg), "--out", str(out), "--overwrite"]) == 2
    assert "holds no run" in capsys.readouterr().err
    assert (out / "thesis.tex").read_text() == "years of work"


def test_a_failed_start_leaves_no_run_folder(cfg, tmp_path, capsys):
    out = tmp_path / "new"
    assert cli.main(["train", str(cfg), "--out", str(out), "--set", f"model={tmp_path / 'nope'}"]) == 2
    assert not out.exists()


def test_truncate_metrics_is_atomic(tmp_path, monkeypatch):
    """Finding 4: a crash while resume rewrites metrics.jsonl must not lose the history."""
    rows = [{"step": i, "loss": 0.5} for i in range(6)]
    for name in ("metrics.jsonl", "samples.jsonl"):
        (tmp_path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))

    class Crash(Exception):
        pass

    def killed_write_text(self, *a, **kw):  # an in-place rewrite killed right after opening the file
        open(self, "w").close()
        raise Crash

    def killed_fsync(fd):
        raise Crash

    monkeypatch.setattr(Path, "write_text", killed_write_text)
    monkeypatch.setattr(os, "fsync", killed_fsync)
    with pytest.raises(Crash):
        truncate_metrics(tmp_path, 4)
    monkeypatch.undo()
    assert read_jsonl(tmp_path / "metrics.jsonl") == rows
    truncate_metrics(tmp_path, 4)
    assert [r["step"] for r in read_jsonl(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3]
    assert not list(tmp_path.glob(".*.tmp"))


def test_torn_lines(tmp_path, capsys):
    """Finding 5: a torn last line is dropped with a warning; one elsewhere names file and line."""
    path = tmp_path / "samples.jsonl"
    path.write_text('{"step": 0}\n{"step": 1}\n{"step": 2, "compl')
    assert read_jsonl(path) == [{"step": 0}, {"step": 1}]
    assert "dropping the torn last line 3" in capsys.readouterr().err
    path.write_text('{"step": 0}\n{"step": 1, "x\n{"step": 2}\n')
    with pytest.raises(ValueError, match=rf"{path}, line 2, column \d+"):
        read_jsonl(path)


def test_torn_samples_line_in_a_run_is_a_one_line_cli_error(cfg, tmp_path, capsys):
    out = tmp_path / "a"
    assert cli.main(["train", str(cfg), "--out", str(out)]) == 0
    text = (out / "samples.jsonl").read_text()
    (out / "samples.jsonl").write_text('{"step": 0, "pro\n' + text)
    capsys.readouterr()
    assert cli.main(["train", "--resume", str(out)]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("grpo-zoo: error:") and "samples.jsonl, line 1, column" in last


def test_metrics_and_manifest_are_valid_json_with_nonfinite_numbers(tmp_path):
    rundir.append_jsonl(tmp_path / "m.jsonl", [{"step": 0, "loss": float("nan"), "x": [float("inf")]}])
    line = (tmp_path / "m.jsonl").read_text()
    assert json.loads(line, parse_constant=lambda t: 1 / 0) == {"step": 0, "loss": None, "x": [None]}


def test_appends_are_fsynced(tmp_path, monkeypatch):
    synced = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd)))
    durable.append_lines(tmp_path / "m.jsonl", ["{}"])
    assert synced
