"""grpo-zoo against TRL's GRPOTrainer, like for like, in three phases.

    python bench/vs_trl.py [--model smollm2-135m] [--steps 4] [--group-size 8] ...

1. ``gen``: generation throughput at equal work. Both generate the same prompts x G samples
   at the same temperature, with EOS suppressed so every completion is exactly
   ``--max-new-tokens`` long (TRL through its own ``_generate_single_turn``, grpo-zoo through
   ``Engine.generate``); completion tokens per second, median over ``--reps`` repetitions
   after a warm-up.
2. ``update``: the same completions through both updates. One batch is sampled once (by
   grpo-zoo's sampler, real EOS) and saved; each framework replays it through its own
   loss, backward and AdamW step (TRL: ``GRPOTrainer.compute_loss``; grpo-zoo:
   ``policy_update``), with the same advantages (standard normal, so every rollout carries
   gradient and grpo-zoo cannot skip any). Seconds per update, median over ``--reps``
   after a warm-up; the two first-update losses are printed side by side (same numbers).
3. ``e2e``: the whole training loop, same model, task, reward, group size, lengths, loss and
   steps; the time per step is the median over the steps that ran an update (a grpo-zoo
   step whose groups all have equal rewards skips its forward and backward, which would
   flatter it), first step left out as warm-up.

Each phase of each framework runs in its own subprocess (each peak RSS is its own); the
parent prints a table per phase and, as its last line, one JSON object with each phase's
figures and ratios (``gen_ratio``, ``update_ratio``, ``e2e_speedup``: TRL time / ours).
Both use ``--threads`` torch threads, float32, no gradient checkpointing (TRL's default
turns it on, which would slow TRL down). Loads the real default model: on a shared machine
run it under ``flock /tmp/grpo-zoo-heavy.lock``.

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
    p.add_argument("--reps", type=int, default=3, help="timed repetitions of the gen and update phases")
    p.add_argument("--phases", default="gen,update,e2e", help="comma-separated subset of gen,update,e2e")
    p.add_argument("--only", choices=["trl", "zoo"], help="run one framework only")
    p.add_argument("--worker", choices=["trl", "zoo"], help=argparse.SUPPRESS)
    p.add_argument("--phase", choices=["gen", "update", "e2e", "sample"], default="e2e", help=argparse.SUPPRESS)
    p.add_argument("--batch", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def tasks_for(args):
    from grpo_zoo.tasks import reasoning_gym_tasks

    return reasoning_gym_tasks(args.task, 256, args.seed, json.loads(args.params))


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def summarize(step_s: list[float], completions: list[int], tokens: list[int], trained=None, **extra) -> dict:
    """Per-step figures over the steps after the first (warm-up) that ran an update (``trained``)."""
    trained = trained or [True] * len(step_s)
    timed = [i for i in range(len(step_s)) if trained[i] and (i > 0 or len(step_s) == 1)]
    if not timed:
        raise SystemExit("bench: no step after the first ran an update; raise --steps")
    t = sum(step_s[i] for i in timed)
    return {
        "s_per_step": statistics.median(step_s[i] for i in timed),
        "mean_s_per_step": t / len(timed),
        "timed_steps": timed,
        "completions_per_s": sum(completions[i] for i in timed) / t,
        "tokens_per_s": sum(tokens[i] for i in timed) / t,
        "mean_completion_len": sum(tokens) / max(sum(completions), 1),
        "step_s": step_s,
        "peak_rss_mb": peak_rss_mb(),
        **extra,
    }


# ---------------------------------------------------------------- grpo-zoo
def zoo_config(args) -> dict:
    return {
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
def run_zoo(args) -> dict:
    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.loop import Trainer
    from grpo_zoo.trainer.rundir import read_jsonl

    config = zoo_config(args)
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(config)
        Trainer(ctx, Path(tmp) / "run", progress=False, save_final=False).run()
        rows = read_jsonl(Path(tmp) / "run" / "metrics.jsonl")
    return summarize(
        [r["time/step_s"] for r in rows],
        [r["rollouts"] for r in rows],
        [r["tokens"] for r in rows],
        trained=[r["rollouts_in_loss"] > 0 and r.get("advantage/abs_mean", 0) > 0 for r in rows],
        generate_s=[round(r["time/generate_s"], 2) for r in rows],
        train_s=[round(r["time/train_s"], 2) for r in rows],
    )


# ---------------------------------------------------------------- phases 1 and 2 (equal work)
def chat(args) -> list[list[dict]]:
    return [[{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": t.prompt}]
            for t in tasks_for(args)[: args.prompts_per_step]]


def timed_reps(fn, reps: int) -> tuple[list[float], list]:
    """``reps`` + 1 calls of ``fn``; the first warms up and is not timed."""
    times, outs = [], []
    for r in range(reps + 1):
        t0 = time.perf_counter()
        outs.append(fn(r))
        times.append(time.perf_counter() - t0)
    return times[1:], outs


def zoo_trainer(args, tmp):
    import torch

    from grpo_zoo.context import make_context
    from grpo_zoo.trainer.loop import Trainer

    if args.threads:
        torch.set_num_threads(args.threads)
    return Trainer(make_context(zoo_config(args)), Path(tmp) / "run", progress=False, save_final=False)


def zoo_request(args):
    from grpo_zoo.types import RolloutRequest, Task

    prompts = chat(args)
    tasks = [Task(id=str(i), prompt=p[-1]["content"]) for i, p in enumerate(prompts)]
    return RolloutRequest(tasks=tasks, prompts=prompts, budgets=[args.group_size] * len(prompts))


def zoo_gen(args) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = zoo_trainer(args, tmp)
        engine, sampling = trainer.ctx.engine, trainer.ctx.config.sampling
        engine._eos_ids = lambda: []  # equal length: EOS never ends a completion (TRL: min_new_tokens)
        request = zoo_request(args)
        times, outs = timed_reps(lambda r: engine.generate(request, sampling, seed=args.seed + r), args.reps)
    tokens = sum(len(c) for c in outs[-1].completion_ids)
    return {"s": statistics.median(times), "tokens": tokens, "tokens_per_s": tokens / statistics.median(times),
            "times": times, "peak_rss_mb": peak_rss_mb()}


def zoo_sample(args) -> dict:
    """Sample the update phase's batch once (real EOS) with standard-normal advantages."""
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        trainer = zoo_trainer(args, tmp)
        out = trainer.ctx.engine.generate(zoo_request(args), trainer.ctx.config.sampling, seed=args.seed)
    adv = torch.randn(len(out.completion_ids), generator=torch.Generator().manual_seed(args.seed))
    return {"group": out.group.tolist(), "prompt_ids": out.prompt_ids, "completion_ids": out.completion_ids,
            "advantages": adv.tolist()}


def zoo_update(args) -> dict:
    import torch

    from grpo_zoo.trainer.step import policy_update
    from grpo_zoo.types import Rollouts, Task

    batch = json.loads(Path(args.batch).read_text())
    n = len(batch["completion_ids"])
    with tempfile.TemporaryDirectory() as tmp:
        trainer = zoo_trainer(args, tmp)
        rollouts = Rollouts(
            tasks=[Task(id=str(g), prompt="") for g in range(max(batch["group"]) + 1)],
            group=torch.tensor(batch["group"]), prompt_text=[""] * n, prompt_ids=batch["prompt_ids"],
            completion_ids=batch["completion_ids"], completion_text=[""] * n,
        )
        rollouts.advantages = torch.tensor(batch["advantages"])
        rollouts.in_loss = torch.ones(n, dtype=torch.bool)
        times, stats = timed_reps(
            lambda r: policy_update(trainer.ctx, rollouts, trainer.optimizer, trainer.scheduler), args.reps)
    return {"s": statistics.median(times), "times": times, "first_loss": stats[0]["loss"],
            "tokens": sum(map(len, batch["completion_ids"])), "peak_rss_mb": peak_rss_mb()}


def trl_trainer(args, tmp, tasks=None):
    """A GRPOTrainer with the same settings as grpo-zoo's run (see run_trl)."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from grpo_zoo.trainer.models import resolve_model_path

    if args.threads:
        torch.set_num_threads(args.threads)
    tasks = tasks or tasks_for(args)
    path = resolve_model_path(args.model)
    data = Dataset.from_list(
        [
            {"prompt": [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": t.prompt}], "idx": i}
            for i, t in enumerate(tasks)
        ]
    )
    cfg = GRPOConfig(
        output_dir=tmp, use_cpu=True, bf16=False, seed=args.seed, max_steps=args.steps, learning_rate=args.lr,
        per_device_train_batch_size=args.prompts_per_step * args.group_size, gradient_accumulation_steps=1,
        num_generations=args.group_size, max_completion_length=args.max_new_tokens, temperature=1.0, top_p=1.0,
        top_k=0, beta=0.0, num_iterations=1, loss_type=args.loss_type, scale_rewards="group",
        gradient_checkpointing=False,  # TRL's default is True (slower); grpo-zoo does not checkpoint either
        logging_steps=1, report_to="none", save_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
        model_init_kwargs={"dtype": torch.float32},
    )
    tok = AutoTokenizer.from_pretrained(path)
    return GRPOTrainer(model=path, reward_funcs=args.reward_fn, args=cfg, train_dataset=data, processing_class=tok,
                       callbacks=args.callbacks), tok


def _unit_reward(completions, **kwargs):
    return [0.0] * len(completions)


def trl_gen(args) -> dict:
    args.reward_fn, args.callbacks = _unit_reward, []
    with tempfile.TemporaryDirectory() as tmp:
        trainer, tok = trl_trainer(args, tmp)
        trainer.generation_config.min_new_tokens = args.max_new_tokens  # equal length: no early EOS
        ids = [tok(tok.apply_chat_template(p, tokenize=False, add_generation_prompt=True),
                   add_special_tokens=False)["input_ids"] for p in chat(args)]
        rows = [p for p in ids for _ in range(args.group_size)]  # TRL's sampler repeats each prompt G times
        times, outs = timed_reps(lambda r: trainer._generate_single_turn(rows, None, {}, args.group_size), args.reps)
    tokens = sum(len(c) for c in outs[-1][0])
    return {"s": statistics.median(times), "tokens": tokens, "tokens_per_s": tokens / statistics.median(times),
            "times": times, "peak_rss_mb": peak_rss_mb()}


def trl_update(args) -> dict:
    import torch

    args.reward_fn, args.callbacks = _unit_reward, []
    batch = json.loads(Path(args.batch).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        trainer, tok = trl_trainer(args, tmp)
        model = trainer.model
        model.train()
        trainer.current_gradient_accumulation_steps = 1
        pad = tok.pad_token_id
        P = max(map(len, batch["prompt_ids"]))
        C = max(map(len, batch["completion_ids"]))
        prompt_ids = torch.tensor([[pad] * (P - len(p)) + p for p in batch["prompt_ids"]])
        prompt_mask = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in batch["prompt_ids"]])
        completion_ids = torch.tensor([c + [pad] * (C - len(c)) for c in batch["completion_ids"]])
        completion_mask = torch.tensor([[1] * len(c) + [0] * (C - len(c)) for c in batch["completion_ids"]])
        inputs = {"prompt_ids": prompt_ids, "prompt_mask": prompt_mask, "completion_ids": completion_ids,
                  "completion_mask": completion_mask, "advantages": torch.tensor(batch["advantages"]),
                  "num_items_in_batch": completion_mask.sum().float()}
        params = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)  # the Trainer's defaults

        def update(r):
            loss = trainer.compute_loss(model, inputs)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)  # max_grad_norm = 1.0, as grpo-zoo's grad_clip
            opt.step()
            opt.zero_grad(set_to_none=True)
            return float(loss.detach())

        times, losses = timed_reps(update, args.reps)
    return {"s": statistics.median(times), "times": times, "first_loss": losses[0],
            "tokens": int(completion_mask.sum()), "peak_rss_mb": peak_rss_mb()}


# ---------------------------------------------------------------- TRL
def run_trl(args) -> dict:
    from transformers import TrainerCallback

    tasks = tasks_for(args)
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
    args.reward_fn, args.callbacks = correct, [timer]
    with tempfile.TemporaryDirectory() as tmp:
        trainer, _ = trl_trainer(args, tmp, tasks)
        trainer.train()
    return summarize(timer.step_s, counts["completions"], counts["tokens"])


# ---------------------------------------------------------------- parent
WORKERS = {
    ("zoo", "e2e"): run_zoo, ("trl", "e2e"): run_trl, ("zoo", "gen"): zoo_gen, ("trl", "gen"): trl_gen,
    ("zoo", "update"): zoo_update, ("trl", "update"): trl_update, ("zoo", "sample"): zoo_sample,
}


def spawn(name: str, argv: list[str], phase: str, batch: str | None = None) -> dict:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    try:
        cmd = [sys.executable, __file__, *argv, "--worker", name, "--phase", phase, "--result", out]
        if batch:
            cmd += ["--batch", batch]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, stdout=subprocess.DEVNULL if os.environ.get("BENCH_QUIET") else None)
        if proc.returncode != 0:
            raise SystemExit(f"bench: the {name} {phase} run failed (exit {proc.returncode})")
        res = json.loads(Path(out).read_text())
        res["wall_s"] = time.perf_counter() - t0
        return res
    finally:
        Path(out).unlink(missing_ok=True)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        res = WORKERS[(args.worker, args.phase)](args)
        Path(args.result).write_text(json.dumps(res))
        return 0
    argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    names = [args.only] if args.only else ["trl", "zoo"]
    phases = [p for p in args.phases.split(",") if p]
    bad = set(phases) - {"gen", "update", "e2e"}
    if bad:
        raise SystemExit(f"bench: unknown phase(s) {sorted(bad)}; choose from gen, update, e2e")
    print(f"\nmodel={args.model} task={args.task} steps={args.steps} prompts/step={args.prompts_per_step} "
          f"G={args.group_size} max_new_tokens={args.max_new_tokens} loss={args.loss_type} threads={args.threads}")
    out = {"model": args.model, "task": args.task, "steps": args.steps, "group_size": args.group_size,
           "prompts_per_step": args.prompts_per_step, "max_new_tokens": args.max_new_tokens,
           "loss_type": args.loss_type, "threads": args.threads, "reps": args.reps}
    import transformers

    out["transformers"] = transformers.__version__
    if "gen" in phases:
        res = {n: spawn(n, argv, "gen") for n in names}
        print(f"\n[gen] {args.prompts_per_step} prompts x {args.group_size} samples x {args.max_new_tokens} tokens "
              f"(EOS suppressed), median of {args.reps}")
        for n, r in res.items():
            print(f"{n:5} {r['s']:8.2f} s  {r['tokens_per_s']:8.1f} tok/s  ({r['tokens']} tokens)  times {[round(x, 2) for x in r['times']]}")
            out.update({f"{n}_gen_s": round(r["s"], 3), f"{n}_gen_tokens_per_s": round(r["tokens_per_s"], 1)})
        if len(res) == 2:
            out["gen_ratio"] = round(res["trl"]["s"] / res["zoo"]["s"], 3)
    if "update" in phases:
        with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
            batch = f.name
        try:
            Path(batch).write_text(json.dumps({k: v for k, v in spawn("zoo", argv, "sample").items() if k != "wall_s"}))
            res = {n: spawn(n, argv, "update", batch) for n in names}
        finally:
            Path(batch).unlink(missing_ok=True)
        first = next(iter(res.values()))
        print(f"\n[update] the same {first['tokens']} completion tokens through loss + backward + AdamW, median of {args.reps}")
        for n, r in res.items():
            print(f"{n:5} {r['s']:8.2f} s  first loss {r['first_loss']:+.6f}  peak {r['peak_rss_mb']:.0f} MB  "
                  f"times {[round(x, 2) for x in r['times']]}")
            out.update({f"{n}_update_s": round(r["s"], 3), f"{n}_update_first_loss": round(r["first_loss"], 6),
                        f"{n}_update_peak_rss_mb": round(r["peak_rss_mb"], 1)})
        if len(res) == 2:
            out["update_ratio"] = round(res["trl"]["s"] / res["zoo"]["s"], 3)
    if "e2e" in phases:
        res = {n: spawn(n, argv, "e2e") for n in names}
        print("\n[e2e] whole training steps; median over steps after the first that ran an update")
        print(f"{'':5} {'s/step':>8} {'compl/s':>8} {'tok/s':>8} {'len':>6} {'peak MB':>8} {'wall s':>7}")
        for n, r in res.items():
            print(f"{n:5} {r['s_per_step']:8.2f} {r['completions_per_s']:8.2f} {r['tokens_per_s']:8.1f} "
                  f"{r['mean_completion_len']:6.1f} {r['peak_rss_mb']:8.0f} {r['wall_s']:7.1f}")
        for n, r in res.items():
            split = f"  generate {r['generate_s']}  train {r['train_s']}" if "generate_s" in r else ""
            print(f"{n} seconds per step: {[round(x, 2) for x in r['step_s']]} timed {r['timed_steps']}{split}")
            out.update({
                f"{n}_s_per_step": round(r["s_per_step"], 3),
                f"{n}_timed_steps": r["timed_steps"],
                f"{n}_tokens_per_s": round(r["tokens_per_s"], 1),
                f"{n}_mean_completion_len": round(r["mean_completion_len"], 1),
                f"{n}_peak_rss_mb": round(r["peak_rss_mb"], 1),
            })
        if len(res) == 2:
            out["e2e_speedup"] = round(res["trl"]["s_per_step"] / res["zoo"]["s_per_step"], 3)
            out["e2e_token_throughput_ratio"] = round(res["zoo"]["tokens_per_s"] / res["trl"]["tokens_per_s"], 3)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
