"""LoRA against full fine-tuning: peak RSS of a short training run, beta = 0 and beta > 0.

    python bench/lora_memory.py [--model smollm2-135m] [--steps 2] [--threads 1] ...

Four runs with equal settings (each its own subprocess, so each peak RSS is its own): full
fine-tuning and LoRA (``[peft]``, rank 16, all linear layers), each with beta = 0 and with
beta = 0.04 (full: a second, frozen model as the reference; LoRA: the adapter disabled, no
copy). The last line is one JSON object with the four peak RSS figures and the ratios
LoRA / full. Loads the default model: on a shared machine run it under
``flock /tmp/grpo-zoo-heavy.lock``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _runs import base_config, run  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    cfg = base_config(a.model, a.steps, a.prompts_per_step, a.group_size, a.max_new_tokens, a.threads)
    lora = ["peft.enabled=true", "peft.r=16", 'peft.target_modules="all-linear"']
    res = {}
    for beta in (0.0, 0.04):
        res[f"full_beta{beta}"] = run(cfg, [f"loss.beta={beta}"])
        res[f"lora_beta{beta}"] = run(cfg, [f"loss.beta={beta}", *lora])
    print(f"{'setup':<16}{'peak RSS MB':>14}{'s/step':>10}")
    for k, r in res.items():
        print(f"{k:<16}{r['peak_rss_mb']:>14.0f}{r['s_per_step']:>10.2f}")
    mb = {k: round(r["peak_rss_mb"]) for k, r in res.items()}
    print(json.dumps({
        "bench": "lora_memory", "model": a.model, "steps": a.steps, "threads": a.threads,
        **{f"{k}_peak_rss_mb": v for k, v in mb.items()},
        "ratio_beta0": round(mb["lora_beta0.0"] / mb["full_beta0.0"], 3),
        "ratio_beta0.04": round(mb["lora_beta0.04"] / mb["full_beta0.04"], 3),
    }))


if __name__ == "__main__":
    main()
