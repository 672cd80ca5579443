"""Atomic checkpoints: model, optimizer, scheduler, RNG states, step and every plugin's state.

Layout: ``RUN/checkpoints/step-000123/{model/, state.json, state.safetensors,
MANIFEST.json}`` plus a ``latest`` pointer file. Nothing is pickled: tensors
live in safetensors files and everything else in JSON (see
:mod:`grpo_zoo.trainer.statefile`), so loading a checkpoint never executes code.

A checkpoint is written under a temporary name, every file is fsynced, then
``MANIFEST.json`` (size and SHA-256 of every file) is written last and the
folder is renamed into place; the pointer is swung with an atomic rename. On
resume the newest checkpoint whose files match their manifest is used; a
damaged one is skipped with a warning naming it. Only the newest ``KEEP``
checkpoints are kept (each holds the model and the optimizer state).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
from pathlib import Path

import torch

from ..errors import CheckpointError
from . import statefile
from .durable import atomic_write_text, fsync_dir, fsync_file, fsync_tree, naming, warn

LATEST = "latest"
KEEP = 2
MANIFEST = "MANIFEST.json"
FORMAT = 2  # 1 was the pickled state.pt, refused since it can run code
_NAME = re.compile(r"^step-(\d+)$")
_PICKLE_SUFFIXES = {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "python": random.getstate()}
    try:
        import numpy as np

        name, keys, pos, has_gauss, cached = np.random.get_state()
        state["numpy"] = [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]
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

        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save(ctx, run_dir: Path, step: int, optimizer, scheduler) -> Path:
    """Write checkpoint ``step-<step>`` completely under a temporary name, rename it, then move ``latest``."""
    ckpt_root, final, tmp = _folders(run_dir, step)
    model = ctx.engine.model
    if ctx.accelerator is not None:
        model = ctx.accelerator.unwrap_model(model)
    check_finite_weights(model, step)
    with naming(tmp):
        write_model(model, ctx.engine.tokenizer, tmp / "model")
        write_state(tmp, _train_state(ctx, step, optimizer, scheduler))
        write_manifest(tmp)
    publish(tmp, final, ckpt_root)
    prune(ckpt_root, keep=KEEP)
    return final


def save_sharded(ctx, run_dir: Path, step: int, optimizer, scheduler) -> Path:
    """:func:`save` for ``train.sharding = "fsdp2"``, called on every rank: each writes its shards of the
    weights and optimizer state into the temporary folder; rank 0 writes the rest, then (once every rank's
    files are fsynced) the manifest, and publishes the folder as :func:`save` does."""
    import torch.distributed as dist

    from . import sharding

    rank, world = ctx.rank, ctx.world_size
    ckpt_root, final, tmp = _folders(run_dir, step, create=rank == 0)
    if rank == 0:
        (tmp / "model").mkdir()
    dist.barrier()
    model = ctx.engine.model
    check_finite_weights(model, step, ctx)
    with naming(tmp):
        mine = [sharding.write_model_shard(model, tmp / "model", rank, world)]
        name = sharding.OPTIM_FILE.format(rank=rank)
        mine += [tmp / f"{name}.json", tmp / f"{name}.safetensors"]
        statefile.save({"optimizer": sharding.optimizer_state(optimizer), "rank": rank, "world": world}, *mine[1:])
        if rank == 0:
            model.config.save_pretrained(tmp / "model")
            if getattr(model, "generation_config", None) is not None:
                model.generation_config.save_pretrained(tmp / "model")
            ctx.engine.tokenizer.save_pretrained(tmp / "model")
            state = _train_state(ctx, step, None, scheduler)
            state["sharding"] = {"kind": "fsdp2", "world": world}
            write_state(tmp, state)
        for path in mine:  # this rank's files reach the disk before rank 0 hashes them (and fsyncs the rest)
            fsync_file(path)
    dist.barrier()
    try:
        if rank == 0:
            with naming(tmp):
                write_manifest(tmp)
            publish(tmp, final, ckpt_root)
            prune(ckpt_root, keep=KEEP)
    finally:
        dist.barrier()
    return final


def _folders(run_dir: Path, step: int, create: bool = True) -> tuple[Path, Path, Path]:
    """The checkpoints folder, checkpoint ``step``'s final folder and its temporary one (made empty when ``create``)."""
    ckpt_root = Path(run_dir) / "checkpoints"
    final, tmp = ckpt_root / f"step-{step:06d}", ckpt_root / f".tmp-step-{step:06d}"
    if create:
        ckpt_root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    return ckpt_root, final, tmp


def check_finite_weights(model, step: int, ctx=None) -> None:
    """Never save a broken policy: a NaN/inf weight would make every resume fail.

    With ``ctx`` (sharded weights) each rank checks its shards and the ranks agree, so all of them
    raise alike (otherwise the others would wait at the next barrier)."""
    from .sharding import local

    bad = next((name for name, p in model.named_parameters() if not torch.isfinite(local(p.detach())).all()), None)
    if ctx is not None and ctx.all_reduce(float(bad is not None), "max") > 0 and bad is None:
        bad = "(one held by another rank)"
    if bad is not None:
        raise CheckpointError(f"step {step}: parameter {bad} has NaN/inf values; not writing a checkpoint")


def write_model(model, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder, safe_serialization=True)
    tokenizer.save_pretrained(folder)


def _train_state(ctx, step: int, optimizer, scheduler) -> dict:
    return {
        "step": step,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,  # sharded: one file per rank
        "scheduler": scheduler.state_dict(),
        "rng": rng_state(),
        "info": dict(ctx.info),
        "plugins": ctx.hooks.per_plugin("zoo_state_dict", ctx=ctx),
    }


def write_state(folder: Path, state: dict) -> None:
    statefile.save(state, folder / "state.json", folder / "state.safetensors")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(folder: Path) -> None:
    """Size and hash of every file, written last: a checkpoint without it is incomplete."""
    files = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        files[path.relative_to(folder).as_posix()] = {"size": path.stat().st_size, "sha256": _sha256(path)}
    fsync_tree(folder)
    atomic_write_text(folder / MANIFEST, json.dumps({"format": FORMAT, "files": files}, indent=1))


def publish(tmp: Path, final: Path, ckpt_root: Path) -> None:
    """Rename the complete folder into place, then swing ``latest``; each rename made durable."""
    if final.exists():  # the same step saved again (a resumed run): move the old copy aside first
        old = ckpt_root / f".old-{final.name}"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    fsync_dir(ckpt_root)
    pointer = ckpt_root / (LATEST + ".tmp")
    pointer.write_text(final.name)
    os.replace(pointer, ckpt_root / LATEST)
    fsync_dir(ckpt_root)


def complete(path: Path) -> bool:
    """Cheap test (no hashing): the manifest, written last, is there."""
    return (path / MANIFEST).is_file()


def checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints of a run whose manifest was written, oldest first (not yet verified)."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := _NAME.match(p.name)) and complete(p)]
    return [p for _, p in sorted(found)]


def prune(ckpt_root: Path, keep: int) -> None:
    for path in checkpoints(ckpt_root.parent)[:-keep]:
        shutil.rmtree(path, ignore_errors=True)


def refuse_pickled(path: Path) -> None:
    """Old checkpoints (``state.pt``) and pickled weights are refused: unpickling can run any code."""
    if (path / "state.pt").exists() and not (path / MANIFEST).exists():
        raise CheckpointError(
            f"{path} is an old-format checkpoint (state.pt, a pickle); grpo-zoo no longer loads pickles because "
            "loading one can run arbitrary code. Start a new run, or re-train to this step with this version"
        )
    pickled = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.suffix in _PICKLE_SUFFIXES)
    if pickled:
        raise CheckpointError(f"{path} holds pickled file(s) {pickled}; refusing to load it (pickles can run code)")


def verify(path: Path) -> str | None:
    """Why checkpoint ``path`` cannot be used (a damaged or missing file), or None when it is intact."""
    refuse_pickled(path)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
        files = manifest["files"]
    except FileNotFoundError:
        return f"no {MANIFEST} (the write did not finish)"
    except (ValueError, KeyError, TypeError) as exc:
        return f"{MANIFEST} is unreadable ({exc})"
    if manifest.get("format") != FORMAT:
        return f"unknown checkpoint format {manifest.get('format')!r}"
    for name in ("state.json", "state.safetensors"):
        if name not in files:
            return f"{MANIFEST} does not list {name}"
    # the model: a transformers folder, or a LoRA adapter ([peft]) over the run's base model
    if "model/config.json" not in files and "model/adapter_config.json" not in files:
        return f"{MANIFEST} lists neither model/config.json nor model/adapter_config.json"
    for name, meta in files.items():
        p = path / name
        if ".." in Path(name).parts or not p.is_file():
            return f"{name} is missing"
        if p.stat().st_size != meta["size"]:
            return f"{name} has {p.stat().st_size} bytes, {meta['size']} expected"
        if _sha256(p) != meta["sha256"]:
            return f"{name} does not match its SHA-256"
    return None


def latest(run_dir: Path) -> Path | None:
    """The newest checkpoint that passes :func:`verify`.

    Folders appear only complete (renamed into place), so this is normally the
    one ``latest`` points at, or a newer one when a crash came between the
    folder's rename and the pointer's. A damaged one (a disk error, a truncated
    copy) is skipped with a warning, and the previous one is used.
    """
    root = Path(run_dir) / "checkpoints"
    for path in sorted(root.glob("step-*")) if root.is_dir() else []:
        refuse_pickled(path)  # an old-format run must not silently restart from step 0
    for path in reversed(checkpoints(run_dir)):
        reason = verify(path)
        if reason is None:
            return path
        warn(f"checkpoint {path} is damaged ({reason}); falling back to the previous one")
    return None


def set_aside_newer(run_dir: Path, ckpt: Path | None) -> None:
    """On resume, rename checkpoints newer than the one resumed from (damaged ones) and half-written
    temporaries out of the way, so the new run's checkpoints are never pruned in their favour."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return
    start = int(_NAME.match(ckpt.name).group(1)) if ckpt is not None else -1
    for p in root.iterdir():
        if p.name.startswith((".tmp-step-", ".old-step-")):
            shutil.rmtree(p, ignore_errors=True)
        elif (m := _NAME.match(p.name)) and int(m.group(1)) > start:
            target = root / f"damaged-{p.name}"
            shutil.rmtree(target, ignore_errors=True)
            os.replace(p, target)
            warn(f"moved {p} aside to {target}: it is newer than the checkpoint resumed from")


def read_state(ckpt: Path) -> dict:
    """The training state of checkpoint ``ckpt``: step, optimizer, scheduler, rng, info, plugins."""
    refuse_pickled(ckpt)
    try:
        return statefile.load(ckpt / "state.json", ckpt / "state.safetensors")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: cannot read the training state ({exc})") from None


def load_state(ctx, ckpt: Path, optimizer, scheduler) -> int:
    """Restore optimizer, scheduler, RNG, run info and plugin state; returns the number of steps done."""
    state = read_state(ckpt)
    if "sharding" in state:
        _load_sharded_optimizer(ctx, ckpt, state["sharding"], optimizer)
    else:
        optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    ctx.info.update(state["info"])
    ctx.hooks.load_state_dicts(ctx, state["plugins"])
    return int(state["step"]) + 1


def _load_sharded_optimizer(ctx, ckpt: Path, meta: dict, optimizer) -> None:
    """This rank's optimizer shard of a ``train.sharding = "fsdp2"`` checkpoint (same world size only)."""
    from . import sharding

    rank, world = ctx.rank, ctx.world_size
    if world != meta["world"]:
        raise CheckpointError(f"{ckpt} was saved sharded over {meta['world']} processes; resume it with "
                              f"{meta['world']} (this run has {world})")
    name = sharding.OPTIM_FILE.format(rank=rank)
    try:
        saved = statefile.load(ckpt / f"{name}.json", ckpt / f"{name}.safetensors")
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{ckpt}: cannot read rank {rank}'s optimizer shard ({exc})") from None
    sharding.load_optimizer_state(optimizer, saved["optimizer"])
