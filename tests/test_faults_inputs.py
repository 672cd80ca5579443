"""Fault suite (findings 6-9): ordinary mistakes give one-line errors before the model loads; secrets stay put."""
from __future__ import annotations

import errno
import http.server
import os
import subprocess
import sys
import threading
import time

import pytest

from grpo_zoo import cli
from grpo_zoo.config import ConfigError
from grpo_zoo.context import load_config
from grpo_zoo.testing import BASE_CONFIG, merge

TOML = (
    'model = "tiny-random"\n[task]\nsource = "file"\npath = "{path}"\n[sampling]\ngroup_size = 2\nmax_new_tokens = 4\n'
    "[train]\nsteps = 1\nprompts_per_step = 2\n"
)


def one_line_error(capsys, argv) -> str:
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "%|" not in ln and ln.strip()]  # progress bars aside
    assert len(lines) == 1 and lines[0].startswith("grpo-zoo: error: "), err
    return lines[0]


def cli_subprocess(*argv, env=None):
    p = subprocess.run([sys.executable, "-m", "grpo_zoo", *argv], capture_output=True, text=True, timeout=300,
                       env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    return p


# --- finding 7: task files -----------------------------------------------------------------------------

GOOD = '{"prompt": "1+1?", "answer": "2"}\n'
TASK_CASES = {
    "missing_answer": (GOOD + '{"prompt": "2+2?"}\n', r"line 2: no 'answer' field"),
    "null_prompt": (GOOD + '{"prompt": null, "answer": "3"}\n', r"line 2: 'prompt' is null"),
    "empty_prompt": ('{"prompt": "  ", "answer": "3"}\n', r"line 1: 'prompt' is empty"),
    "empty_file": ("", r"is empty"),
    "malformed": (GOOD + GOOD + '{"prompt": "3+3?", "answer": 6,}\n', r"line 3, column \d+: malformed JSON"),
}


@pytest.mark.parametrize("case", sorted(TASK_CASES))
def test_bad_task_file_is_a_one_line_error_before_the_model_loads(case, tmp_path, capsys, monkeypatch):
    text, pattern = TASK_CASES[case]
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(text)
    cfg = tmp_path / "run.toml"
    cfg.write_text(TOML.format(path=tasks))

    import grpo_zoo.trainer.loop as loop

    def no_model(*a, **kw):
        raise AssertionError("the model was loaded before the task file was checked")

    monkeypatch.setattr(loop, "load_model_and_tokenizer", no_model)
    err = one_line_error(capsys, ["train", str(cfg), "--out", str(tmp_path / "run")])
    import re

    assert str(tasks) in err and re.search(pattern, err), err
    assert not (tmp_path / "run").exists()


def test_bad_task_file_in_a_subprocess_prints_no_traceback(tmp_path):
    tasks = tmp_path / "tasks.jsonl"
    tasks.write_text(GOOD + '{"prompt": "x", "answer": 1\n')
    cfg = tmp_path / "run.toml"
    cfg.write_text(TOML.format(path=tasks))
    p = cli_subprocess("train", str(cfg), "--out", str(tmp_path / "run"))
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.strip().splitlines()[-1].startswith(f"grpo-zoo: error: {tasks}, line 2, column")


# --- finding 6: model folders, manifests, permissions, disk full -----------------------------------------


def test_missing_model_folder_subprocess(tmp_path):
    p = cli_subprocess("train", "--set", f"model={tmp_path}/no/such/model", "--out", str(tmp_path / "run"),
                       str(_write(tmp_path / "c.toml", 'model = "tiny-random"\n[train]\nsteps = 1\n')))
    assert p.returncode == 2 and "Traceback" not in p.stderr, p.stderr[-3000:]
    (line,) = [ln for ln in p.stderr.splitlines() if ln.startswith("grpo-zoo: error:")]
    assert f"no model folder at {tmp_path}/no/such/model" in line
    assert not (tmp_path / "run").exists()
    # with GRPO_ZOO_DEBUG=1 the traceback is shown
    p = cli_subprocess("train", "--set", f"model={tmp_path}/nope", "--out", str(tmp_path / "run"),
                       str(tmp_path / "c.toml"), env={"GRPO_ZOO_DEBUG": "1"})
    assert p.returncode != 0 and "Traceback" in p.stderr and "ModelFolderError" in p.stderr


def _write(path, text):
    path.write_text(text)
    return path


def test_empty_model_folder_and_offline_hub_id(tmp_path, capsys, monkeypatch):
    cfg = _write(tmp_path / "c.toml", 'model = "tiny-random"\n[train]\nsteps = 1\n')
    empty = tmp_path / "empty"
    empty.mkdir()
    err = one_line_error(capsys, ["train", str(cfg), "--set", f"model={empty}", "--out", str(tmp_path / "r")])
    assert f"{empty} has no config.json (found: nothing)" in err
    (empty / "config.json").write_text("{}")
    err = one_line_error(capsys, ["train", str(cfg), "--set", f"model={empty}", "--out", str(tmp_path / "r")])
    assert "has no tokenizer (looked for tokenizer.json" in err
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.monotonic()
    err = one_line_error(capsys, ["train", str(cfg), "--set", "model=someorg/somemodel", "--out", str(tmp_path / "r")])
    assert "'someorg/somemodel' is not a local folder" in err and "HF_HUB_OFFLINE" in err
    assert time.monotonic() - t0 < 20  # no retries


def test_unparsable_manifest(tmp_path, capsys):
    (tmp_path / "manifest.json").write_text('{"config": {"model": "tiny-ran')
    err = one_line_error(capsys, ["train", "--resume", str(tmp_path)])
    assert f"{tmp_path / 'manifest.json'} is not a valid run manifest" in err


@pytest.mark.parametrize("code,text", [(errno.EACCES, "Permission denied"), (errno.ENOSPC, "No space left on device")])
def test_permission_denied_and_disk_full_name_the_path(tmp_path, capsys, monkeypatch, code, text):
    import grpo_zoo.trainer.rundir as rundir

    def fail(path, lines):
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(rundir, "append_lines", fail)
    cfg = _write(tmp_path / "c.toml", 'model = "tiny-random"\n[task]\nsize = 4\n[sampling]\ngroup_size = 2\n'
                 'max_new_tokens = 4\n[train]\nsteps = 1\nprompts_per_step = 2\n')
    err = one_line_error(capsys, ["train", str(cfg), "--out", str(tmp_path / "r")])
    assert f"{text}: {tmp_path / 'r' / 'metrics.jsonl'}" in err


def test_enospc_without_a_file_name_gets_the_path(tmp_path, monkeypatch):
    from grpo_zoo.trainer import durable

    def no_space(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OSError) as err:
        durable.append_lines(tmp_path / "x.jsonl", ["{}"])
    assert err.value.filename == str(tmp_path / "x.jsonl")


# --- finding 8: secrets ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name,ok", [("MY_DB_PASSWORD", False), ("HOME", False), ("OPENAI_API_KEY", True),
                                     ("HF_TOKEN", True), ("VLLM_API_KEY", True), ("API_KEY_BACKUP", False)])
def test_api_key_env_must_name_a_key_variable(name, ok):
    raw = merge(BASE_CONFIG, {"sampling": {"endpoint": {"api_key_env": name}}})
    if ok:
        load_config(raw)
    else:
        with pytest.raises(ConfigError, match=r"sampling\.endpoint\.api_key_env: .*API_KEY or TOKEN"):
            load_config(raw)


def test_endpoint_error_bodies_are_cut_and_redact_the_key():
    from grpo_zoo.trainer.openai_backend import Client, EndpointError

    key = "sk-very-secret-123"

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # an endpoint that echoes the request headers in its error page
            body = ("bad request; you sent " + self.headers.get("Authorization", "") + " " + "x" * 2000).encode()
            self.send_response(400)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        with pytest.raises(EndpointError) as err:
            Client(f"http://127.0.0.1:{server.server_port}/v1", 10, key).get("models")
    finally:
        server.shutdown()
    msg = str(err.value)
    assert key not in msg and "[REDACTED]" in msg and "HTTP 400" in msg
    assert len(msg) < 400


# --- finding 9: config-time validation ------------------------------------------------------------------


def test_invalid_regex_fails_at_config_time_naming_the_key(tmp_path, capsys):
    cfg = _write(tmp_path / "c.toml", 'model = "tiny-random"\n[reward]\nformat_regex = "(<answer>"\n')
    assert cli.main(["config", "show", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert "reward.format_regex" in err and "not a valid regular expression" in err


def test_file_source_without_path_fails_at_config_time():
    with pytest.raises(ConfigError, match="task.path is required"):
        load_config(merge(BASE_CONFIG, {"task": {"source": "file"}}))
