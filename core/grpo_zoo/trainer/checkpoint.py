"""Atomic checkpoints: model, optimizer, scheduler, RNG states, step and every plugin's state."""
from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

import torch

LATEST = "latest"


def save(ctx, run_dir: Path, step: int, optimizer, scheduler) -> Path:
    """Write checkpoint-<step> beside a temporary name, then swing the ``latest`` pointer to it.

    A crash mid-write leaves a ``.tmp`` folder and the previous ``latest`` intact.
    """
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:06d}"
    tmp = ckpt_root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    model = ctx.engine.model
    if ctx.accelerator is not None:
        model = ctx.accelerator.unwrap_model(model)
    model.save_pretrained(tmp / "model", safe_serialization=True)
    ctx.engine.tokenizer.save_pretrained(tmp / "model")
    torch.save(
        {
            "step": step,
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": {"torch": torch.get_rng_state(), "python": random.getstate()},
            "info": dict(ctx.info),
            "plugins": ctx.hooks.per_plugin("zoo_state_dict", ctx=ctx),
        },
        tmp / "state.pt",
    )
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    pointer = ckpt_root / (LATEST + ".tmp")
    pointer.write_text(final.name)
    os.replace(pointer, ckpt_root / LATEST)
    return final


def latest(run_dir: Path) -> Path | None:
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    return path if (path / "state.pt").exists() else None


def load_state(ctx, ckpt: Path, optimizer, scheduler) -> int:
    """Restore optimizer, scheduler, RNG and plugin state; returns the number of steps done."""
    state = torch.load(ckpt / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"]["torch"])
    random.setstate(state["rng"]["python"])
    ctx.info.update(state["info"])
    ctx.hooks.load_state_dicts(ctx, state["plugins"])
    return int(state["step"]) + 1
