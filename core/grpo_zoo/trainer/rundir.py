"""The run folder: manifest, metrics.jsonl, samples.jsonl and plots."""
from __future__ import annotations

import platform
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..errors import RunFolderError
from ..plugins import plugin_version
from .durable import append_lines, atomic_write_text, dumps, warn
from .durable import read_jsonl as _read_jsonl
from ..reward_functions import manifest_entries


def new_run_dir(root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{stamp}-{n}"
    return path


def library_versions() -> dict:
    """Versions of the libraries whose APIs core reaches into (a run is only as reproducible as these)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("torch", "transformers", "accelerate", "trl"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    return out


def write_manifest(ctx, path: Path) -> None:
    pm = ctx.hooks.pm
    plugins = [
        {"name": name, "version": plugin_version(pm, name), "builtin": name.startswith("builtin.")}
        for name, _ in pm.list_name_plugin()
    ]
    manifest = {
        "core_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(),
        "seed": ctx.config.seed,
        "config": ctx.config.model_dump(mode="json"),
        "plugins": plugins,
        "python": platform.python_version(),
        "versions": library_versions(),
        "reward_functions": manifest_entries(ctx),  # resolved: a config can import code, say which
    }
    engine = getattr(ctx, "engine", None)
    if engine is not None and hasattr(engine, "paths"):
        manifest["engine"] = engine.paths()
    atomic_write_text(path / "manifest.json", dumps(manifest, indent=2))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    """Append rows durably; NaN/inf numbers are written as null so every line is valid JSON."""
    append_lines(path, [dumps(row) for row in rows])


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a run's JSONL file; a torn last line is dropped with a warning, any other bad line is an error."""
    return _read_jsonl(path)


def truncate_metrics(path: Path, steps_done: int) -> None:
    """Keep only the metric rows of steps before ``steps_done`` (rows after a checkpoint are replayed on resume).

    The kept rows replace the file atomically: a crash here leaves the old file whole.
    """
    for name in ("metrics.jsonl", "samples.jsonl"):
        keep_rows(path / name, lambda r: r.get("step", -1) < steps_done)


def keep_rows(path: Path, keep) -> None:
    """Keep the rows of a run's JSONL file for which ``keep(row)`` holds, replacing the file atomically."""
    if not path.exists():
        return
    rows = [r for r in read_jsonl(path) if keep(r)]
    atomic_write_text(path, "".join(dumps(r) + "\n" for r in rows))


RUN_MARKERS = ("manifest.json", "metrics.jsonl", "checkpoints")


def holds_run(path: Path) -> bool:
    return any((Path(path) / m).exists() for m in RUN_MARKERS)


def check_new_run_dir(path: Path, overwrite: bool) -> None:
    """Refuse to start a new run in a folder that holds one (it would be mixed with the new run).

    With ``overwrite`` a run folder (or an empty one) is allowed; :func:`clear_run_dir` empties it once
    the new run has started up. A folder holding anything else is never cleared.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise RunFolderError(f"--out {path}: a file of that name exists")
    if not path.is_dir() or not any(path.iterdir()):
        return
    if holds_run(path):
        if overwrite:
            return
        raise RunFolderError(
            f"--out {path} already holds a run; continue it with `grpo-zoo train --resume {path}`, "
            f"or pass --overwrite to delete it and start over"
        )
    if overwrite:
        raise RunFolderError(f"--out {path} is not empty and holds no run; --overwrite clears only run folders")
    raise RunFolderError(f"--out {path} is not empty and holds no run; choose an empty or new folder")


def clear_run_dir(path: Path) -> None:
    """Delete the run held in ``path`` (``--overwrite``), keeping the folder itself."""
    import shutil

    path = Path(path)
    if not path.is_dir():
        return
    if not holds_run(path) and any(path.iterdir()):  # never reached through the CLI: check_new_run_dir refuses
        raise RunFolderError(f"{path} holds no run; refusing to clear it")
    warn(f"--overwrite: deleting the run in {path}")
    for child in path.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()


def sample_rows(rollouts, step: int, count: int) -> list[dict]:
    rows = []
    for i in range(min(count, len(rollouts))):
        rows.append(
            {
                "step": step,
                "task": rollouts.task_of(i).id,
                "prompt": rollouts.prompt_text[i],
                "completion": rollouts.completion_text[i],
                "rewards": {k: float(v[i]) for k, v in rollouts.rewards.items()},
                "advantage": float(rollouts.advantages[i]) if rollouts.advantages is not None else None,
            }
        )
    return rows


def plot_run(run_dir: str | Path) -> list[Path]:
    """PNG curves of reward and loss (and every reward column) from metrics.jsonl."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    rows = read_jsonl(run_dir / "metrics.jsonl")
    if not rows:
        raise FileNotFoundError(f"{run_dir / 'metrics.jsonl'} is missing or empty")
    out_dir = run_dir / "plots"
    out_dir.mkdir(exist_ok=True)
    steps = [r["step"] for r in rows]
    written = []
    groups = {
        "reward": sorted({k for r in rows for k in r if k.startswith("reward/") and k.endswith("mean")}),
        "loss": ["loss"],
    }
    for name, keys in groups.items():
        fig, ax = plt.subplots(figsize=(6, 3.5))
        for k in keys:
            ys = [r.get(k) for r in rows]  # null (a non-finite number) and missing both plot as gaps
            ax.plot(steps, [float("nan") if y is None else y for y in ys], marker="o", ms=3, label=k)
        ax.set_xlabel("step")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = out_dir / f"{name}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
