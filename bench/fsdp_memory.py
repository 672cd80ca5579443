"""FSDP2 against DDP on 2 CPU processes (gloo): peak RSS per rank, s/step, and how to sample when sharded.

    python bench/fsdp_memory.py [--model smollm2-135m] [--steps 3] [--processes 2] ...

Three runs with equal settings, each in fresh processes started by torch.distributed.run:
1 process (no sharding), N processes with DDP, N processes with ``train.sharding = "fsdp2"``.
Each rank reports its own peak RSS (the model is loaded whole on every rank before it is
sharded, so a rank's peak also holds that moment) and the bytes of model state it holds after
training: its weights, gradients and AdamW moments (its shards of them under fsdp2). The fsdp2 run then times sampling the same
request two ways: inside ``Engine.gathered()`` (every unit all-gathered once, what grpo-zoo does)
and with each decoder layer all-gathered again at every forward, i.e. at every generated token
(FSDP's default when the model is called directly). The last line is one JSON object.
Loads the default model and uses both cores: on a shared machine run it under
``flock /tmp/grpo-zoo-heavy.lock``.
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import base_config  # noqa: E402

CHILD = r"""
import json, resource, statistics, sys, time
from pathlib import Path
import torch
from grpo_zoo.context import make_context
from grpo_zoo.trainer.loop import Trainer
from grpo_zoo.trainer.rundir import read_jsonl
from grpo_zoo.types import RolloutRequest
cfg, overrides, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), Path(sys.argv[3])
ctx = make_context(cfg, overrides)
trainer = Trainer(ctx, out, progress=False, save_final=False)
trainer.run()
def local_bytes(t):
    t = t.to_local() if hasattr(t, "to_local") else t
    return t.numel() * t.element_size()
opt = trainer.optimizer.optimizer if hasattr(trainer.optimizer, "optimizer") else trainer.optimizer
state = sum(local_bytes(p) for p in ctx.engine.model.parameters())
state += sum(local_bytes(p.grad) for p in ctx.engine.model.parameters() if p.grad is not None)
state += sum(local_bytes(v) for s in opt.state.values() for v in s.values() if torch.is_tensor(v))
result = {"rank": ctx.rank, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
          "state_mb": state / 2**20}
if ctx.rank == 0:
    rows = read_jsonl(out / "metrics.jsonl")
    times = [r["time/step_s"] for r in rows[1:]] or [rows[0]["time/step_s"]]  # the first step warms up
    result.update({"s_per_step": statistics.median(times), "gen_s": statistics.median(r["time/generate_s"] for r in rows[1:] or rows)})
engine = ctx.engine
if engine.sharded:
    tasks = trainer.source[:2]
    request = RolloutRequest(tasks=tasks, prompts=[ctx.hooks.build_prompt(ctx, t) for t in tasks],
                             budgets=[ctx.config.sampling.group_size] * len(tasks))
    t0 = time.perf_counter()
    a = engine.generate(request, ctx.config.sampling, seed=1)
    result["gen_gathered_s"] = time.perf_counter() - t0
    root = engine.scorer
    root.unshard()  # embeddings, norm and lm_head: the sampler calls them outside the root's forward
    engine.sharded = False  # no window: each layer is all-gathered at each of its forwards
    t0 = time.perf_counter()
    b = engine.generate(request, ctx.config.sampling, seed=1)
    result["gen_per_forward_s"] = time.perf_counter() - t0
    root.reshard()
    engine.sharded = True
    result["same_completions"] = a.completion_ids == b.completion_ids
print("RESULT " + json.dumps(result), flush=True)
"""


def run(cfg: dict, overrides: list[str], processes: int, threads: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="grpo-zoo-bench-") as tmp:
        env = dict(os.environ, OMP_NUM_THREADS=str(threads), GRPO_ZOO_NO_FAN_OUT="1")
        script = Path(tmp) / "child.py"
        script.write_text(CHILD)
        cmd = [sys.executable, str(script)]
        if processes > 1:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={processes}", "--nnodes=1",
                   "--master_addr=127.0.0.1", f"--master_port={port}", str(script)]
        proc = subprocess.run([*cmd, json.dumps(cfg), json.dumps(overrides), tmp + "/run"],
                              env=env, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            raise SystemExit(f"bench run {overrides} x{processes} failed:\n{proc.stderr[-3000:]}")
        return [json.loads(x[len("RESULT "):]) for x in proc.stdout.splitlines() if x.startswith("RESULT ")]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    a = p.parse_args(argv)
    cfg = base_config(a.model, a.steps, a.prompts_per_step, a.group_size, a.max_new_tokens, a.threads)
    cfg["train"]["lr"] = 1e-5
    res = {
        "1 process": run(cfg, [], 1, a.threads),
        f"ddp x{a.processes}": run(cfg, [], a.processes, a.threads),
        f"fsdp2 x{a.processes}": run(cfg, ['train.sharding="fsdp2"'], a.processes, a.threads),
    }
    print(f"{'setup':<12}{'peak RSS MB per rank':>26}{'model state MB per rank':>26}{'s/step':>9}{'generate s/step':>17}")
    for k, ranks in res.items():
        r0 = next(r for r in ranks if r["rank"] == 0)
        ranks = sorted(ranks, key=lambda r: r["rank"])
        rss = " / ".join(f"{r['peak_rss_mb']:.0f}" for r in ranks)
        state = " / ".join(f"{r['state_mb']:.0f}" for r in ranks)
        print(f"{k:<12}{rss:>26}{state:>26}{r0['s_per_step']:>9.2f}{r0['gen_s']:>17.2f}")
    fs = next(r for r in res[f"fsdp2 x{a.processes}"] if r["rank"] == 0)
    print(f"\nsampling {a.prompts_per_step} x {a.group_size} completions under fsdp2: gathered once "
          f"{fs['gen_gathered_s']:.2f} s, all-gathered at every forward {fs['gen_per_forward_s']:.2f} s "
          f"({fs['gen_per_forward_s'] / fs['gen_gathered_s']:.2f}x); same completions: {fs['same_completions']}")
    peak = {k: max(r["peak_rss_mb"] for r in ranks) for k, ranks in res.items()}
    state = {k: max(r["state_mb"] for r in ranks) for k, ranks in res.items()}
    print(json.dumps({
        "bench": "fsdp_memory", "model": a.model, "steps": a.steps, "processes": a.processes, "threads": a.threads,
        **{f"{k.replace(' ', '_')}_peak_rss_mb": round(v) for k, v in peak.items()},
        "fsdp2_over_ddp_rss": round(peak[f"fsdp2 x{a.processes}"] / peak[f"ddp x{a.processes}"], 3),
        **{f"{k.replace(' ', '_')}_state_mb": round(v) for k, v in state.items()},
        "fsdp2_over_ddp_state": round(state[f"fsdp2 x{a.processes}"] / state[f"ddp x{a.processes}"], 3),
        **{f"{k.replace(' ', '_')}_s_per_step": round(next(r for r in v if r["rank"] == 0)["s_per_step"], 3)
           for k, v in res.items()},
        "gen_gathered_s": round(fs["gen_gathered_s"], 3), "gen_per_forward_s": round(fs["gen_per_forward_s"], 3),
        "same_completions": fs["same_completions"],
    }))


if __name__ == "__main__":
    main()
