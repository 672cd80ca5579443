"""Two CPU processes under `accelerate launch` (gloo): both ranks end with the same, updated weights."""
from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from grpo_zoo.trainer.rundir import read_jsonl

from .subprocess_plugins import plugin_env

# A plugin found through a real entry point: a throw-away dist-info folder on PYTHONPATH.
PLUGIN = textwrap.dedent(
    '''
    import hashlib, json
    import torch
    from grpo_zoo import hookimpl, __version__


    def weights_hash(model):
        h = hashlib.sha256()
        for name, t in sorted(model.state_dict().items()):
            h.update(name.encode())
            h.update(t.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()


    class WeightProbe:
        """Dumps a hash of each rank's weights at the start and end of the run, and gives a mixed reward."""

        def _dump(self, ctx, when):
            rank = ctx.accelerator.process_index if ctx.accelerator is not None else 0
            world = ctx.accelerator.num_processes if ctx.accelerator is not None else 1
            path = ctx.run_dir / f"weights-{when}-rank{rank}.json"
            path.write_text(json.dumps({"hash": weights_hash(ctx.engine.model), "world": world}))

        @hookimpl
        def zoo_run_start(self, ctx):
            self._dump(ctx, "start")

        @hookimpl
        def zoo_run_end(self, ctx, metrics):
            self._dump(ctx, "end")

        @hookimpl
        def zoo_reward(self, ctx, rollouts):
            vals = [sum(1 for t in c if t % 2 == 0) / max(len(c), 1) for c in rollouts.completion_ids]
            return {"probe/even_tokens": torch.tensor(vals)}
    '''
)

CONFIG = """
model = "tiny-random"
seed = 0
plugins = ["zoo_weight_probe"]
[task]
size = 16
[sampling]
group_size = 3
max_new_tokens = 8
[reward]
builtin = ["correct"]
[train]
steps = 2
prompts_per_step = 3
micro_batch_size = 2
lr = 1e-2
"""


def test_two_process_ddp_ranks_agree(tmp_path):
    accelerate = shutil.which("accelerate", path=str(Path(sys.executable).parent)) or "accelerate"
    cfg = tmp_path / "run.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "run"
    env = plugin_env(tmp_path, "zoo_weight_probe", "WeightProbe", PLUGIN)
    cmd = [accelerate, "launch", "--cpu", "--num_processes", "2",
           "-m", "grpo_zoo", "train", str(cfg), "--out", str(out)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=110)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]

    dumps = {(w, r): json.loads((out / f"weights-{w}-rank{r}.json").read_text()) for w in ("start", "end") for r in (0, 1)}
    assert all(d["world"] == 2 for d in dumps.values())
    assert dumps["start", 0]["hash"] == dumps["start", 1]["hash"]
    assert dumps["end", 0]["hash"] == dumps["end", 1]["hash"], "ranks diverged: gradients were not synchronized"
    assert dumps["end", 0]["hash"] != dumps["start", 0]["hash"], "the weights never changed"

    rows = read_jsonl(out / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1]
    assert all(r["rollouts"] == 9 for r in rows)  # 3 prompts x 3 samples, gathered from both ranks
    assert any(r["grad_norm"] > 0 for r in rows)
    manifest = json.loads((out / "manifest.json").read_text())
    assert {"name": "zoo_weight_probe", "version": "0.0.1", "builtin": False} in manifest["plugins"]
    assert (out / "checkpoints" / "step-000001" / "model" / "model.safetensors").exists()
    assert (out / "plots" / "reward.png").exists()
