"""Gradient checkpointing: peak memory of one forward + backward on 512-token completions, on vs off.

    python bench/checkpointing_memory.py [--model smollm2-135m] [--completions 4] [--length 512]

Each measurement is its own subprocess: load the model, score ``--completions`` completions of
``--length`` tokens (one shared prompt) with the training log-prob path, backpropagate, and
report the peak RSS above the RSS after loading (the activation memory, mostly). Both log-prob
layouts are measured (packed rows; shared prompt with its KV cache). The last line is one JSON
object. Loads the default model: on a shared machine run it under
``flock /tmp/grpo-zoo-heavy.lock``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

CHILD = r"""
import json, resource, sys, time
import torch
from grpo_zoo.trainer.engine import Engine, enable_gradient_checkpointing
from grpo_zoo.trainer.models import load_model_and_tokenizer
model_name, n, length, checkpointing, share = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4] == "1", sys.argv[5] == "1"
model, tok = load_model_and_tokenizer(model_name)
model.train()
if checkpointing:
    enable_gradient_checkpointing(model)
engine = Engine(model, tok)
g = torch.Generator().manual_seed(0)
prompt = torch.randint(100, 20000, (48,), generator=g).tolist()
comps = [torch.randint(100, 20000, (length,), generator=g).tolist() for _ in range(n)]
def rss_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
base = rss_mb()
t = time.perf_counter()
logp, mask = engine.logprobs([prompt] * n, comps, share_prompts=share)
(logp * mask).sum().backward()
print("RESULT " + json.dumps({"after_load_mb": base, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                              "s": time.perf_counter() - t}))
"""


def measure(model, n, length, checkpointing, share, threads):
    env = dict(os.environ, OMP_NUM_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", CHILD, model, str(n), str(length), str(int(checkpointing)), str(int(share))],
                         env=env, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise SystemExit(out.stderr[-3000:])
    r = json.loads([x for x in out.stdout.splitlines() if x.startswith("RESULT ")][-1][7:])
    r["activation_mb"] = r["peak_mb"] - r["after_load_mb"]
    return r


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--completions", type=int, default=4)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    res = {}
    for layout, share in (("packed", False), ("shared", True)):
        for ckpt in (False, True):
            res[f"{layout}_{'on' if ckpt else 'off'}"] = measure(a.model, a.completions, a.length, ckpt, share, a.threads)
    print(f"{'layout/ckpt':<14}{'peak RSS MB':>12}{'above load MB':>15}{'fwd+bwd s':>11}")
    for k, r in res.items():
        print(f"{k:<14}{r['peak_mb']:>12.0f}{r['activation_mb']:>15.0f}{r['s']:>11.2f}")
    print(json.dumps({
        "bench": "checkpointing_memory", "model": a.model, "completions": a.completions, "length": a.length,
        **{f"{k}_peak_rss_mb": round(r["peak_mb"]) for k, r in res.items()},
        **{f"{k}_above_load_mb": round(r["activation_mb"]) for k, r in res.items()},
        **{f"{k}_s": round(r["s"], 2) for k, r in res.items()},
    }))


if __name__ == "__main__":
    main()
