"""train.sharding = "fsdp2" on 2 CPU processes (gloo): the same update as 1 process, sharded checkpoints
that resume bitwise, and the combinations it refuses."""
from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from grpo_zoo.config import ConfigError
from grpo_zoo.context import make_context
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.trainer.rundir import read_jsonl
from .test_data_parallel_metrics import CONFIG, _env  # the fixed-completion probe plugin: 1 and 2 ranks see the same rollouts

SHARDED = CONFIG.replace("[train]", '[train]\nsharding = "fsdp2"\ncheckpoint_every = 1')


def _accelerate():
    return shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"


def _train(tmp_path, config: str, out: Path, processes: int, *extra: str):
    cfg = tmp_path / f"run-{out.name}.toml"
    cfg.write_text(config)
    if processes == 1:
        cmd = [sys.executable, "-m", "grpo_zoo", "train", str(cfg), "--out", str(out), *extra]
    else:
        cmd = [_accelerate(), "launch", "--cpu", "--num_processes", str(processes), "-m", "grpo_zoo", "train",
               str(cfg), "--out", str(out), *extra]
    proc = subprocess.run(cmd, env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def _params(folder) -> dict[str, torch.Tensor]:
    model, _ = load_model_and_tokenizer(str(folder))
    return {n: p.detach() for n, p in model.named_parameters()}


def test_two_sharded_processes_make_the_one_process_update(tmp_path):
    # lr 1e-3: Adam divides by sqrt(v), so where a gradient is ~0 the two float summation orders
    # (all-reduce vs one process) differ by up to ~lr per step; at 3e-2 that alone is 5e-5
    one, two = tmp_path / "one", tmp_path / "two"
    _train(tmp_path, CONFIG.replace("lr = 3e-2", "lr = 1e-3"), one, 1)
    _train(tmp_path, SHARDED.replace("lr = 3e-2", "lr = 1e-3"), two, 2)
    ckpt = two / "checkpoints" / "step-000001"
    names = sorted(p.name for p in ckpt.rglob("*") if p.is_file())
    assert {"shard-00000-of-00002.safetensors", "shard-00001-of-00002.safetensors", "optimizer-00000.safetensors",
            "optimizer-00001.safetensors", "MANIFEST.json", "config.json"} <= set(names)
    assert not (ckpt / "model" / "model.safetensors").exists()  # no rank gathered the whole model to save it
    # each rank's file holds half of a weight and of its Adam moments
    with safe_open(str(ckpt / "model" / "shard-00000-of-00002.safetensors"), "pt") as f:
        shapes = json.loads(f.metadata()["grpo_zoo_fsdp2"])["shapes"]
        embed = f.get_tensor("model.embed_tokens.weight")
    assert embed.shape[0] * 2 == shapes["model.embed_tokens.weight"][0]
    state = json.loads((ckpt / "optimizer-00001.json").read_text())
    assert state["world"] == 2 and state["rank"] == 1

    rows1, rows2 = read_jsonl(one / "metrics.jsonl"), read_jsonl(two / "metrics.jsonl")
    for r1, r2 in zip(rows1, rows2):
        for key in ("loss", "kl", "clip_frac", "grad_norm", "probe/rollout_count", "probe/loss_len_max"):
            assert math.isclose(r1[key], r2[key], rel_tol=1e-4, abs_tol=1e-7), (r1["step"], key, r1[key], r2[key])
    assert rows2[1]["kl"] > 0 and rows2[1]["grad_norm"] > 0
    # both ranks end with one model (the probe hashes the full weights), equal to 1 process' to 1e-5
    assert (two / "hash-rank0.txt").read_text() == (two / "hash-rank1.txt").read_text()
    plain = _params(one / "checkpoints" / "step-000001" / "model")
    sharded = _params(ckpt / "model")
    assert plain.keys() == sharded.keys()
    for name in plain:
        assert torch.allclose(plain[name], sharded[name], rtol=0, atol=1e-5), (name, (plain[name] - sharded[name]).abs().max())
    base = _params("tiny-random")
    assert max(float((base[n] - sharded[n]).abs().max()) for n in base) > 5e-4  # it trained


SAMPLED = """
model = "tiny-random"
seed = 0
[task]
size = 16
[sampling]
group_size = 4
max_new_tokens = 32
[reward]
builtin = ["correct", "format"]
format_regex = "^ "  # starts with a space: random tiny-model text varies within a group
[loss]
beta = 0.04
[train]
steps = 2
prompts_per_step = 2
micro_batch_size = 8
lr = 1e-2
gradient_checkpointing = true
[eval]
size = 6
max_new_tokens = 5
"""


def test_sharded_runs_sample_and_evaluate_from_the_gathered_weights(tmp_path):
    """The real sampler and evaluation under fsdp2 (with gradient checkpointing): greedy eval before training
    equals one process' on the same weights, and `grpo-zoo eval` of the sharded checkpoint (rebuilt from its
    shards in one process) reproduces the run's own final evaluation."""
    from grpo_zoo.evaluation import eval_target

    one, two = tmp_path / "one", tmp_path / "two"
    _train(tmp_path, SAMPLED, one, 1)
    _train(tmp_path, SAMPLED.replace("[train]", '[train]\nsharding = "fsdp2"'), two, 2)
    ev1, ev2 = read_jsonl(one / "eval.jsonl"), read_jsonl(two / "eval.jsonl")
    assert [r["step"] for r in ev2] == [0, 2]
    for key in ("eval/completion_len", "eval/reward/format", "eval/pass@1"):
        assert ev1[0][key] == ev2[0][key], key
    assert any(r["grad_norm"] > 0 for r in read_jsonl(two / "metrics.jsonl"))  # it trained
    again = eval_target(str(two))
    for key in ("eval/completion_len", "eval/reward/format", "eval/tasks"):
        assert again[key] == ev2[-1][key], key


def test_sharded_checkpoint_resumes_bitwise(tmp_path):
    full, cut = tmp_path / "full", tmp_path / "cut"
    # bf16 autocast over fp32 shards: resume stays bitwise
    _train(tmp_path, SHARDED.replace("steps = 2", "steps = 3").replace("[train]", '[train]\nprecision = "bf16"'), full, 2)
    shutil.copytree(full, cut)
    # as if killed during step 2: its checkpoint and metrics rows are not there
    shutil.rmtree(cut / "checkpoints" / "step-000002")
    (cut / "checkpoints" / "latest").write_text("step-000001")
    proc = subprocess.run([_accelerate(), "launch", "--cpu", "--num_processes", "2", "-m", "grpo_zoo", "train",
                           "--resume", str(cut)], env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    a = json.loads((full / "checkpoints" / "step-000002" / "MANIFEST.json").read_text())["files"]
    b = json.loads((cut / "checkpoints" / "step-000002" / "MANIFEST.json").read_text())["files"]
    for name in ("model/shard-00000-of-00002.safetensors", "model/shard-00001-of-00002.safetensors",
                 "optimizer-00000.safetensors", "optimizer-00001.safetensors"):
        assert a[name]["sha256"] == b[name]["sha256"], name
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]  # noqa: E731
    assert strip(read_jsonl(full / "metrics.jsonl")) == strip(read_jsonl(cut / "metrics.jsonl"))


def test_a_sharded_checkpoint_refuses_another_world_size(tmp_path):
    run = tmp_path / "run"
    _train(tmp_path, SHARDED, run, 2)
    cfg = tmp_path / "again.toml"
    cfg.write_text(SHARDED)
    proc = subprocess.run([sys.executable, "-m", "grpo_zoo", "train", "--resume", str(run)], env=_env(tmp_path),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "saved sharded over 2 processes; resume it with 2 (this run has 1)" in proc.stderr


@pytest.mark.parametrize("section,clash", [
    ({"peft": {"enabled": True}}, "peft.enabled"),
    ({"train": {"sharding": "fsdp2", "precision": "fp16"}}, "train.precision = 'fp16'"),
    ({"sampling": {"backend": "openai", "endpoint": {"url": "http://x", "sync": "disk"}}}, "sampling.endpoint.sync = 'disk'"),
])
def test_sharding_refuses_what_it_does_not_support(section, clash):
    raw = {"model": "tiny-random", "train": {"sharding": "fsdp2"}}
    for k, v in section.items():
        raw[k] = {**raw.get(k, {}), **v}
    with pytest.raises(ConfigError, match=f"train.sharding = 'fsdp2' does not support {clash}"):
        make_context(raw)


def test_an_accelerate_fsdp2_launch_turns_sharding_on(monkeypatch):
    """`accelerate launch --config_file examples/accelerate/fsdp2.yaml` sets these variables; grpo-zoo takes them
    as train.sharding = "fsdp2" and switches accelerate's own FSDP plugin off (it would wrap a second time)."""
    import yaml

    from grpo_zoo.trainer.precision import take_accelerate_fsdp

    example = yaml.safe_load((Path(__file__).parents[1] / "examples" / "accelerate" / "fsdp2.yaml").read_text())
    assert example["distributed_type"] == "FSDP" and example["fsdp_config"]["fsdp_version"] == 2
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "2")
    monkeypatch.setenv("FSDP_AUTO_WRAP_POLICY", "TRANSFORMER_BASED_WRAP")
    cfg = make_context({"model": "tiny-random"}).config
    take_accelerate_fsdp(cfg)
    assert cfg.train.sharding == "fsdp2"
    assert not {"ACCELERATE_USE_FSDP", "FSDP_VERSION", "FSDP_AUTO_WRAP_POLICY"} & set(__import__("os").environ)

    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    monkeypatch.setenv("FSDP_VERSION", "1")
    with pytest.raises(ConfigError, match="fsdp_version = 1; grpo-zoo supports FSDP2 only"):
        take_accelerate_fsdp(make_context({"model": "tiny-random"}).config)
    monkeypatch.setenv("FSDP_VERSION", "2")
    with pytest.raises(ConfigError, match="does not support peft.enabled"):
        take_accelerate_fsdp(make_context({"model": "tiny-random", "peft": {"enabled": True}}).config)
