"""bf16 mixed precision against fp32: seconds per training step on this CPU.

    python bench/precision.py [--model smollm2-135m] [--steps 4] [--threads 1] ...

Both runs use the same config except ``train.precision`` (fp32 masters either way; bf16
runs sampling, log-probs and the backward under autocast). Each run is its own subprocess;
the time per step is the median over the steps after the first. The last line is one JSON
object: ``fp32_s_per_step``, ``bf16_s_per_step``, ``speedup`` (fp32 / bf16), peak RSS of
each. Loads the default model: on a shared machine run it under
``flock /tmp/grpo-zoo-heavy.lock``. bf16 is only fast on CPUs with native bf16 matmuls
(AVX512-BF16 / AMX); elsewhere it can be slower than fp32.
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
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--group-size", type=int, default=4)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    cfg = base_config(a.model, a.steps, a.prompts_per_step, a.group_size, a.max_new_tokens, a.threads)
    res = {k: run(cfg, [f'train.precision="{k}"']) for k in ("fp32", "bf16")}
    print(f"{'precision':<10}{'s/step':>10}{'peak RSS MB':>14}")
    for k, r in res.items():
        print(f"{k:<10}{r['s_per_step']:>10.2f}{r['peak_rss_mb']:>14.0f}")
    print(json.dumps({
        "bench": "precision", "model": a.model, "threads": a.threads, "steps": a.steps,
        "rollouts_per_step": a.prompts_per_step * a.group_size, "max_new_tokens": a.max_new_tokens,
        "fp32_s_per_step": round(res["fp32"]["s_per_step"], 3), "bf16_s_per_step": round(res["bf16"]["s_per_step"], 3),
        "speedup": round(res["fp32"]["s_per_step"] / res["bf16"]["s_per_step"], 3),
        "fp32_peak_rss_mb": round(res["fp32"]["peak_rss_mb"]), "bf16_peak_rss_mb": round(res["bf16"]["peak_rss_mb"]),
    }))


if __name__ == "__main__":
    main()
