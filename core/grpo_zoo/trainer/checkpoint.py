"""Atomic checkpoints: model, optimizer, scheduler, RNG states, step and every plugin's state.

Layout: ``RUN/checkpoints/step-000123/{model/, state.pt}`` plus a ``latest``
pointer file. A checkpoint is written under a temporary name and renamed into
place only when complete, and the pointer is swung with an atomic rename, so a
crash at any moment leaves the previous checkpoint usable. Only the newest
``KEEP`` checkpoints are kept (each holds the model and the optimizer state).
"""
from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path

import torch

LATEST = "latest"
KEEP = 2
_NAME = re.compile(r"^step-(\d+)$")


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np

        state["numpy"] = np.random.get_state()
    except ImportError:  # pragma: no cover
        pass
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    if "numpy" in state:
        import numpy as np

        np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(ctx, run_dir: Path, step: int, optimizer, scheduler) -> Path:
    """Write checkpoint ``step-<step>`` completely under a temporary name, rename it, then move ``latest``."""
    ckpt_root = Path(run_dir) / "checkpoints"
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
            "rng": rng_state(),
            "info": dict(ctx.info),
            "plugins": ctx.hooks.per_plugin("zoo_state_dict", ctx=ctx),
        },
        tmp / "state.pt",
    )
    if final.exists():  # the same step saved again (a resumed run): move the old copy aside first
        old = ckpt_root / f".old-step-{step:06d}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    pointer = ckpt_root / (LATEST + ".tmp")
    pointer.write_text(final.name)
    os.replace(pointer, ckpt_root / LATEST)
    prune(ckpt_root, keep=KEEP)
    return final


def complete(path: Path) -> bool:
    model = path / "model"  # a transformers folder, or a LoRA adapter ([peft])
    return (path / "state.pt").is_file() and ((model / "config.json").is_file() or (model / "adapter_config.json").is_file())


def checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and complete(p)]
    return [p for _, p in sorted(found)]


def prune(ckpt_root: Path, keep: int) -> None:
    for path in checkpoints(ckpt_root.parent)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def latest(run_dir: Path) -> Path | None:
    """The newest complete checkpoint.

    Folders appear only complete (renamed into place), so this is the one
    ``latest`` points at, or a newer one when a crash came between the
    folder's rename and the pointer's.
    """
    found = checkpoints(run_dir)
    return found[-1] if found else None


def load_state(ctx, ckpt: Path, optimizer, scheduler) -> int:
    """Restore optimizer, scheduler, RNG, run info and plugin state; returns the number of steps done."""
    state = torch.load(ckpt / "state.pt", weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    ctx.info.update(state["info"])
    ctx.hooks.load_state_dicts(ctx, state["plugins"])
    return int(state["step"]) + 1
