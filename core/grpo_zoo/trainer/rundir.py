"""The run folder: manifest, metrics.jsonl, samples.jsonl and plots."""
from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from .. import __version__
from ..plugins import plugin_version
from ..reward_functions import manifest_entries


def new_run_dir(root: str | Path = "runs") -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    path = Path(root) / stamp
    n = 1
    while path.exists():
        n += 1
        path = Path(root) / f"{stamp}-{n}"
    return path


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
        "reward_functions": manifest_entries(ctx),  # resolved: a config can import code, say which
    }
    (path / "manifest.json").write_text(json.dumps(manifest, indent=2))


def append_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "a") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, steps_done: int) -> None:
    """Keep only the metric rows of steps before ``steps_done`` (rows after a checkpoint are replayed on resume)."""
    for name in ("metrics.jsonl", "samples.jsonl"):
        rows = [r for r in read_jsonl(path / name) if r.get("step", -1) < steps_done]
        (path / name).write_text("".join(json.dumps(r) + "\n" for r in rows))


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
            ax.plot(steps, [r.get(k, float("nan")) for r in rows], marker="o", ms=3, label=k)
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
