"""The training run: setup, the step loop with a progress bar, run folder, checkpoints and resume."""
from __future__ import annotations

import json
import math
import os
import random
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ..context import RunContext, make_context
from ..errors import RunFolderError
from ..evaluation import EvalTracker
from ..tasks import validate_task_files
from . import checkpoint, finite, lora, sharding, trackers
from .distributed import RUN_DIR_VAR, accelerate_cpu_fan_out_size, fan_out
from .durable import atomic_write_text, dumps
from .engine import CompletionLogprobs, Engine, enable_gradient_checkpointing
from .models import load_model_and_tokenizer
from .precision import make_accelerator, uses_accelerate_with_one_process
from .rundir import (append_jsonl, check_new_run_dir, clear_run_dir, new_run_dir, plot_run, read_jsonl, sample_rows,
                     truncate_metrics, write_manifest)
from .step import train_step


def lr_lambda(cfg):
    total = max(cfg.train.steps * cfg.loss.num_iterations, 1)
    warm = cfg.train.warmup_steps * cfg.loss.num_iterations

    def f(k: int) -> float:
        if warm and k < warm:
            return (k + 1) / warm
        if cfg.train.schedule == "constant":
            return 1.0
        frac = (k - warm) / max(total - warm, 1)
        if cfg.train.schedule == "linear":
            return max(0.0, 1.0 - frac)
        return 0.5 * (1 + math.cos(math.pi * min(frac, 1.0)))

    return f


def seed_all(seed: int) -> None:
    random.seed(seed)
    torch.manual_seed(seed)


class Trainer:
    """Owns one run. ``ctx`` carries the config and hooks; ``run()`` trains and returns the last metrics.

    ``save_final=False`` skips the checkpoint after the last step (benchmarks).
    """

    def __init__(
        self,
        ctx: RunContext,
        run_dir: str | Path | None = None,
        resume: bool = False,
        progress: bool = True,
        save_final: bool = True,
        overwrite: bool = False,
    ):
        self.ctx = ctx
        self.progress = progress
        self.save_final = save_final
        cfg = ctx.config
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.acc = make_accelerator(cfg)
        # One process needs accelerate only for mixed precision (autocast, fp16 grad scaling).
        ctx.accelerator = self.acc if self.acc.num_processes > 1 or uses_accelerate_with_one_process(cfg) else None
        if self.acc.num_processes == 1 and os.environ.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in os.environ:
            print("grpo-zoo: warning: accelerate launch --cpu started a single process (multi-process CPU runs "
                  "need mpirun, or go through `grpo-zoo train`); training on 1 process", file=sys.stderr)
        seed_all(cfg.seed)
        self.run_dir = self._agree_on_run_dir(run_dir)
        ctx.run_dir = self.run_dir
        # The folder is created only once start-up succeeded (in run()): a failed start leaves nothing behind.
        if self.is_main and not resume:
            check_new_run_dir(self.run_dir, overwrite)
            if overwrite:
                clear_run_dir(self.run_dir)
        validate_task_files(cfg)  # before the model loads: a bad task file fails in a second, not a minute
        self.start_step = 0
        ckpt = checkpoint.latest(self.run_dir) if resume else None
        if resume and ckpt is None:
            if checkpoint.checkpoints(self.run_dir):
                raise RunFolderError(
                    f"--resume {self.run_dir}: every checkpoint under {self.run_dir / 'checkpoints'} is damaged "
                    "(see the warnings); pass --overwrite with --out to start over"
                )
            checkpoint.warn(f"--resume {self.run_dir}: no checkpoint yet (killed before the first); starting from step 0")
        # On resume the policy comes from the checkpoint; the reference (beta > 0) is always the initial model.
        # With LoRA the checkpoint holds the adapter only: the base model is loaded and the adapter attached.
        from_ckpt = ckpt is not None and not cfg.peft.enabled
        model, tok = load_model_and_tokenizer(str(ckpt / "model") if from_ckpt else cfg.model, cfg.train.dtype)
        if cfg.peft.enabled:
            model = lora.attach(model, cfg.peft, adapter_dir=ckpt / "model" if ckpt else None)
        model.to(self.acc.device)
        model.train()
        if cfg.train.gradient_checkpointing:
            enable_gradient_checkpointing(model)
        engine = Engine(model, tok, temperature=cfg.sampling.temperature)
        engine.autocast = self.acc.autocast  # sampling, reference and probes run under the run's precision too
        # FSDP2 (sharding.py): shard before the optimizer exists, so its state is per-shard too. One process
        # has nothing to shard over and trains as it would without the key.
        engine.sharded = cfg.train.sharding == "fsdp2" and self.acc.num_processes > 1
        if engine.sharded:
            sharding.shard(engine.scorer, model)
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.train.lr, weight_decay=cfg.train.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda(cfg))
        if ctx.accelerator is not None and not engine.sharded:
            engine.scorer, self.optimizer = self.acc.prepare(engine.scorer, self.optimizer)
        if cfg.loss.beta > 0 and cfg.peft.enabled:  # the reference: the same model, adapter off
            engine.ref_scorer = lora.AdapterOffLogprobs(model, cfg.sampling.temperature)
        elif cfg.loss.beta > 0:  # the frozen reference exists only when the KL term is on
            ref, _ = load_model_and_tokenizer(cfg.model, cfg.train.dtype)
            ref.to(self.acc.device).eval().requires_grad_(False)
            engine.ref_scorer = CompletionLogprobs(ref, cfg.sampling.temperature)
            if engine.sharded:  # sharded like the policy: called through its root's forward only
                sharding.shard(engine.ref_scorer, ref)
        ctx.engine = engine
        self.source = ctx.hooks.task_source(ctx)
        ctx.source = self.source
        if ckpt is not None:
            self.start_step = checkpoint.load_state(ctx, ckpt, self.optimizer, self.scheduler)
            if self.is_main:
                truncate_metrics(self.run_dir, self.start_step)
        if resume and self.is_main:
            checkpoint.set_aside_newer(self.run_dir, ckpt)
            if ckpt is None:
                truncate_metrics(self.run_dir, 0)
        self.evals = EvalTracker(ctx, self.run_dir, self.source, self.start_step, self.is_main)

    def _agree_on_run_dir(self, run_dir) -> Path:
        """Every rank must write to one folder; rank 0 picks the timestamped default."""
        run_dir = run_dir or os.environ.get(RUN_DIR_VAR)
        if run_dir:
            return Path(run_dir)
        path = [str(new_run_dir())] if self.acc.is_main_process else [None]
        if self.acc.num_processes > 1:
            from accelerate.utils import broadcast_object_list

            broadcast_object_list(path)
        return Path(path[0])

    @property
    def is_main(self) -> bool:
        return self.acc.is_main_process

    def run(self) -> dict:
        ctx, cfg = self.ctx, self.ctx.config
        if self.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            write_manifest(ctx, self.run_dir)
            trackers.start(self.acc, ctx, self.run_dir)
        self.acc.wait_for_everyone()  # the folder exists before any rank's plugins write into it
        ctx.hooks.run_start(ctx)
        self.evals.before_training()
        metrics: dict = {}
        bar = tqdm(
            range(self.start_step, cfg.train.steps),
            initial=self.start_step,
            total=cfg.train.steps,
            desc="grpo",
            disable=not (self.progress and self.is_main),
            unit="step",
            dynamic_ncols=True,
        )
        for step in bar:
            seed_all(hash((cfg.seed, step)) & 0x7FFFFFFF)
            metrics, rollouts = train_step(ctx, self.source, step, self.optimizer, self.scheduler)
            self.evals.after_step(step, metrics)  # before the checkpoint: see EvalTracker
            if self.is_main:
                append_jsonl(self.run_dir / "metrics.jsonl", [metrics])
                trackers.log(self.acc, metrics, step)
                append_jsonl(self.run_dir / "samples.jsonl", sample_rows(rollouts, step, cfg.train.samples_per_step))
            finite.after_step(ctx, metrics)
            bar.set_postfix(reward=f"{metrics['reward/mean']:.3f}", s_step=f"{metrics['time/step_s']:.1f}")
            last = step == cfg.train.steps - 1
            every = cfg.train.checkpoint_every
            if (last and self.save_final) or (every and (step + 1) % every == 0):
                self.acc.wait_for_everyone()
                if ctx.engine.sharded:  # every rank writes its shards
                    checkpoint.save_sharded(ctx, self.run_dir, step, self.optimizer, self.scheduler)
                elif self.is_main:
                    checkpoint.save(ctx, self.run_dir, step, self.optimizer, self.scheduler)
                self.acc.wait_for_everyone()
        bar.close()
        if not metrics and self.is_main:  # resumed a run that had already finished
            rows = read_jsonl(self.run_dir / "metrics.jsonl")
            metrics = rows[-1] if rows else {}
        ctx.hooks.run_end(ctx, metrics)
        if self.is_main and cfg.peft.enabled and cfg.peft.save_merged:
            lora.save_merged(ctx.engine.model, ctx.engine.tokenizer, self.run_dir / lora.MERGED_DIR)
        if self.is_main:
            atomic_write_text(self.run_dir / "summary.json", dumps(metrics, indent=2))
            if metrics:
                plot_run(self.run_dir)
            self.evals.plot()
            trackers.finish(self.acc)
        return metrics


def train(config, out: str | None = None, overrides: list[str] | None = None, resume: str | None = None, progress=True, extra_plugins=None, overwrite: bool = False) -> tuple[dict, Path]:
    """Train from a config path (or dict); with ``resume`` the run folder's own manifest config is used.

    Under ``accelerate launch --cpu --num_processes N`` without MPI (one
    process started), the N ranks are started here and this process exits
    with their exit code once they finish.
    """
    n = accelerate_cpu_fan_out_size()
    if n:
        run_dir = Path(resume or out or new_run_dir())
        raise SystemExit(fan_out(n, run_dir))
    if resume:
        manifest_path = Path(resume) / "manifest.json"
        if not manifest_path.exists():
            raise FileNotFoundError(f"--resume {resume}: no manifest.json there (not a run folder?)")
        try:
            manifest = json.loads(manifest_path.read_text())
            raw = manifest["config"]
        except (ValueError, KeyError, TypeError) as exc:
            raise RunFolderError(f"--resume {resume}: {manifest_path} is not a valid run manifest ({exc})") from None
        ctx = make_context(raw, overrides, extra_plugins)
        trainer = Trainer(ctx, resume, resume=True, progress=progress)
    else:
        ctx = make_context(config, overrides, extra_plugins)
        trainer = Trainer(ctx, out, progress=progress, overwrite=overwrite)
    return trainer.run(), trainer.run_dir
