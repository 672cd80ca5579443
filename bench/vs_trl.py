"""grpo-zoo against TRL's GRPOTrainer: same model, task, reward, group size, lengths, loss and steps.

    python bench/vs_trl.py [--model smollm2-135m] [--steps 4] [--group-size 4] ...

Each framework runs in its own subprocess (so each peak RSS is its own); the
parent prints a table and, as its last line, one JSON object with
``trl_s_per_step``, ``zoo_s_per_step``, ``speedup`` (TRL time per step / ours),
``trl_peak_rss_mb``, ``zoo_peak_rss_mb``, completions/s and completion tokens/s.
The time per step is the median over the steps after the first (warm-up); model
loading and checkpoint writing are outside it. Both runs use ``--threads`` torch threads,
float32, no gradient checkpointing (TRL's default turns it on, which would slow TRL down
further). Loads the real default model: on a shared machine run it under
``flock /tmp/grpo-zoo-heavy.lock``.

Where grpo-zoo's time goes, and what makes it faster than TRL here (measured on 2 CPU
cores, 1 thread, SmolLM2-135M, 2 prompts x 8 samples):
- sampling (``trainer/sampler.py``, ~1.5x faster than ``model.generate`` with the same
  settings): a token is drawn by inverse-CDF sampling with one uniform number per row
  (``torch.multinomial`` over the 49k vocabulary costs ~45 ms a call on this CPU, a
  quarter of a decode step); each prompt is prefilled once and its KV cache copied to its
  G samples (TRL prefills every sample); no per-token logits-processor and
  stopping-criteria machinery; finished rows leave the batch; the KV cache grows in place.
- the update (``trainer/engine.py``, ~2x faster forward+backward on the same batch): each
  distinct prompt of a micro-batch runs once and its KV cache, with gradients, is shared
  by its completions; completions run in length buckets (little padding) and only
  completion positions reach the vocabulary projection; rollouts whose advantage is
  exactly 0 (groups with equal rewards) are not forwarded at all, which leaves the
  gradient unchanged for the built-in losses with step-wide normalizers.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SYSTEM_PROMPT = (
    "Solve the problem. Think briefly, then give the final answer as a number inside <answer></answer>, "
    "for example <answer>42</answer>."
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m", help="grpo-zoo model name, local folder or hub id")
    p.add_argument("--task", default="basic_arithmetic", help="reasoning-gym generator")
    p.add_argument("--params", default='{"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 2}',
                   help="generator parameters (JSON)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--prompts-per-step", type=int, default=2)
    p.add_argument("--group-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--loss-type", default="grpo", choices=["grpo", "dapo", "dr_grpo", "bnpo"])
    p.add_argument("--lr", type=float, default=1e-6)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads for both runs (0: torch's default). 1 by default: on a shared machine two "
                        "OpenMP threads on two busy cores stall each other and the timings become noise")
    p.add_argument("--only", choices=["trl", "zoo"], help="run one framework only")
    p.add_argument("--worker", choices=["trl", "zoo"], help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def tasks_for(args):
    from grpo_zoo.tasks import reasoning_gym_tasks

    return reasoning_gym_tasks(args.task, 256, args.seed, json.loads(args.params))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def summarize(step_s: list[float], completions: list[int], tokens: list[int], **extra) -> dict:
    timed = slice(1, None) if len(step_s) > 1 else slice(None)  # the first step warms up
    t = sum(step_s[timed])
    return {
        "s_per_step": statistics.median(step_s[timed]),
        "mean_s_per_step": t / len(step_s[timed]),
        "completions_per_s": sum(completions[timed]) / t,
        "tokens_per_s": sum(tokens[timed]) / t,
        "mean_completion_len": sum(tokens) / max(sum(completions), 1),
        "step_s": step_s,
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }


# ---------------------------------------------------------------- grpo-zoo
def run_zoo(args) -> dict:
    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.loop import Trainer
    from grpo_zoo.trainer.rundir import read_jsonl

    config = {
        "model": args.model,
        "seed": args.seed,
        "task": {"name": args.task, "params": json.loads(args.params), "size": 256, "system_prompt": SYSTEM_PROMPT},
        "sampling": {"group_size": args.group_size, "max_new_tokens": args.max_new_tokens,
                     "temperature": 1.0, "top_p": 1.0, "top_k": 0},
        "reward": {"builtin": ["correct"]},
        "loss": {"type": args.loss_type, "beta": 0.0, "num_iterations": 1},
        "train": {"steps": args.steps, "prompts_per_step": args.prompts_per_step, "lr": args.lr,
                  "micro_batch_size": args.prompts_per_step * args.group_size, "samples_per_step": 0,
                  "threads": args.threads, "checkpoint_every": 0},
    }
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(config)
        Trainer(ctx, Path(tmp) / "run", progress=False, save_final=False).run()
        rows = read_jsonl(Path(tmp) / "run" / "metrics.jsonl")
    return summarize(
        [r["time/step_s"] for r in rows],
        [r["rollouts"] for r in rows],
        [r["tokens"] for r in rows],
        generate_s=[round(r["time/generate_s"], 2) for r in rows],
        train_s=[round(r["time/train_s"], 2) for r in rows],
    )


# ---------------------------------------------------------------- TRL
def run_trl(args) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    from grpo_zoo.trainer.models import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = tasks_for(args)
    path = resolve_model_path(args.model)
    data = Dataset.from_list(
        [
            {"prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": t.prompt}], "idx": i}
            for i, t in enumerate(tasks)
        ]
    )
    counts = {"completions": [], "tokens": []}

    def correct(completions, completion_ids, idx, **kwargs):
        counts["completions"].append(len(completion_ids))
        counts["tokens"].append(sum(len(c) for c in completion_ids))
        return [float(tasks[i].score(c[0]["content"])) for c, i in zip(completions, idx)]

    class Timer(TrainerCallback):
        def __init__(self):
            self.step_s, self._t = [], 0.0

        def on_step_begin(self, a, state, control, **kw):
            self._t = time.perf_counter()

        def on_step_end(self, a, state, control, **kw):
            self.step_s.append(time.perf_counter() - self._t)

    timer = Timer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = GRPOConfig(
            output_dir=tmp,
            use_cpu=True,
            bf16=False,
            seed=args.seed,
            max_steps=args.steps,
            learning_rate=args.lr,
            per_device_train_batch_size=args.prompts_per_step * args.group_size,
            gradient_accumulation_steps=1,
            num_generations=args.group_size,
            max_completion_length=args.max_new_tokens,
            temperature=1.0,
            top_p=1.0,
            top_k=0,
            beta=0.0,
            num_iterations=1,
            loss_type=args.loss_type,
            scale_rewards="group",
            gradient_checkpointing=False,  # TRL's default is True (slower); grpo-zoo does not checkpoint either
            logging_steps=1,
            report_to="none",
            save_strategy="no",
            disable_tqdm=True,
            dataloader_num_workers=0,
            model_init_kwargs={"dtype": torch.float32},
        )
        tok = AutoTokenizer.from_pretrained(path)
        trainer = GRPOTrainer(
            model=path, reward_funcs=correct, args=cfg, train_dataset=data, processing_class=tok, callbacks=[timer]
        )
        trainer.train()
    return summarize(timer.step_s, counts["completions"], counts["tokens"])


# ---------------------------------------------------------------- parent
def spawn(name: str, argv: list[str]) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        cmd = [sys.executable, __file__, *argv, "--worker", name, "--result", out]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if os.environ.get("BENCH_QUIET") else None)
        if proc.returncode != 0:
            raise SystemExit(f"bench: the {name} run failed (exit {proc.returncode})")
        res = json.loads(Path(out).read_text())
        res["wall_s"] = time.perf_counter() - t0
        return res
    finally:
        Path(out).unlink(missing_ok=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        res = (run_trl if args.worker == "trl" else run_zoo)(args)
        Path(args.result).write_text(json.dumps(res))
        return 0
    argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    names = [args.only] if args.only else ["trl", "zoo"]
    res = {n: spawn(n, argv) for n in names}
    print(f"\nmodel={args.model} task={args.task} steps={args.steps} prompts/step={args.prompts_per_step} "
          f"G={args.group_size} max_new_tokens={args.max_new_tokens} loss={args.loss_type}")
    print(f"{'':5} {'s/step':>8} {'compl/s':>8} {'tok/s':>8} {'len':>6} {'peak MB':>8} {'wall s':>7}")
    for n, r in res.items():
        print(f"{n:5} {r['s_per_step']:8.2f} {r['completions_per_s']:8.2f} {r['tokens_per_s']:8.1f} "
              f"{r['mean_completion_len']:6.1f} {r['peak_rss_mb']:8.0f} {r['wall_s']:7.1f}")
    for n, r in res.items():
        split = f"  generate {r['generate_s']}  train {r['train_s']}" if "generate_s" in r else ""
        print(f"{n} seconds per step: {[round(x, 2) for x in r['step_s']]}{split}")
    out = {"model": args.model, "task": args.task, "steps": args.steps, "group_size": args.group_size,
           "prompts_per_step": args.prompts_per_step, "max_new_tokens": args.max_new_tokens,
           "loss_type": args.loss_type, "threads": args.threads}
    for n, r in res.items():
        out.update({
            f"{n}_s_per_step": round(r["s_per_step"], 3),
            f"{n}_completions_per_s": round(r["completions_per_s"], 3),
            f"{n}_tokens_per_s": round(r["tokens_per_s"], 1),
            f"{n}_mean_completion_len": round(r["mean_completion_len"], 1),
            f"{n}_peak_rss_mb": round(r["peak_rss_mb"], 1),
        })
    if len(res) == 2:
        out["speedup"] = round(res["trl"]["s_per_step"] / res["zoo"]["s_per_step"], 3)
        out["token_throughput_ratio"] = round(res["zoo"]["tokens_per_s"] / res["trl"]["tokens_per_s"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
