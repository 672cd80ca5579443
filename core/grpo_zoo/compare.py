"""``grpo-zoo compare``: several run folders side by side, one PNG of curves and a markdown table.

Runs whose configs are equal except for ``seed`` form one group (a method) and are
shown as mean ± standard deviation over their seeds.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path

from .config import ConfigError
from .evaluation import EVAL_FILE
from .trainer.rundir import read_jsonl

X_AXES = ("step", "rollouts", "tokens", "seconds")


@dataclass
class Run:
    path: Path
    config: dict
    rows: list[dict]  # rows of the metric, each with the x values step/rollouts/tokens/seconds

    def curve(self, metric: str, x: str) -> tuple[list[float], list[float]]:
        pts = [(r[x], r[metric]) for r in self.rows if metric in r]
        return [p[0] for p in pts], [p[1] for p in pts]


@dataclass
class Group:
    label: str
    config: dict
    runs: list[Run] = field(default_factory=list)


def _cumulative(metrics_rows: list[dict]) -> list[dict]:
    """Training-metric rows with running totals; a row's step counts the optimizer steps done (step index + 1)."""
    out, tot = [], {"rollouts": 0, "tokens": 0, "seconds": 0.0}
    for r in metrics_rows:
        tot["rollouts"] += int(r.get("generated", r.get("rollouts", 0)))
        tot["tokens"] += int(r.get("tokens", 0))
        tot["seconds"] += float(r.get("time/step_s", 0.0))
        out.append({**r, **tot, "step": r["step"] + 1})
    return out


def load_run(path: str | Path, metric: str) -> Run:
    path = Path(path)
    manifest = path / "manifest.json"
    if not manifest.exists():
        raise FileNotFoundError(f"{path}: no manifest.json (not a run folder?)")
    config = json.loads(manifest.read_text())["config"]
    if metric.startswith("eval/"):
        rows = read_jsonl(path / EVAL_FILE)
        # eval rows hold the spend before them; "generated" counts every completion (drafts, re-samples)
        rows = [{**r, "rollouts": r.get("generated", r.get("rollouts", 0))} for r in rows]
        if not rows:
            raise FileNotFoundError(f"{path / EVAL_FILE} is missing or empty (was [eval] size set?)")
    else:
        rows = _cumulative(read_jsonl(path / "metrics.jsonl"))
    if not any(metric in r for r in rows):
        names = sorted({k for r in rows for k in r})
        raise ConfigError(f"{path}: no {metric!r} in its rows (it has {', '.join(names[:12])}, ...)")
    return Run(path, config, rows)


def _flatten(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = json.dumps(v, sort_keys=True)
    return out


def group_runs(runs: list[Run]) -> list[Group]:
    """Runs with equal configs except ``seed`` share a group; labels name the plugins (or "grpo")
    plus the keys that tell apart groups that would otherwise share a label."""
    groups: dict[str, Group] = {}
    for run in runs:
        key = json.dumps({k: v for k, v in run.config.items() if k != "seed"}, sort_keys=True)
        groups.setdefault(key, Group("", json.loads(key))).runs.append(run)
    out = list(groups.values())
    base = ["+".join(g.config.get("plugins") or []) or "grpo" for g in out]
    flat = [_flatten(g.config) for g in out]
    for i, g in enumerate(out):
        twins = [j for j in range(len(out)) if j != i and base[j] == base[i]]
        keys = sorted({k for j in twins for k in set(flat[i]) | set(flat[j]) if flat[i].get(k) != flat[j].get(k)})
        shown = ", ".join(f"{k}={json.loads(flat[i][k]) if k in flat[i] else '-'}" for k in keys[:3])
        g.label = f"{base[i]} ({shown})" if twins else base[i]
    return out


def _mean_std(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _fmt(values: list[float], digits: int = 3) -> str:
    m, s = _mean_std(values)
    return f"{m:.{digits}f}" if len(values) == 1 else f"{m:.{digits}f} ± {s:.{digits}f}"


def summarize(groups: list[Group], metric: str) -> list[dict]:
    """Per group: start, best and final of the metric, and the spend (x totals at the last row), over seeds."""
    out = []
    for g in groups:
        ys = [r.curve(metric, "step")[1] for r in g.runs]
        last = [next(row for row in reversed(r.rows) if metric in row) for r in g.runs]
        out.append({
            "method": g.label,
            "seeds": sorted(r.config.get("seed") for r in g.runs),
            "start": [y[0] for y in ys],
            "best": [max(y) for y in ys],
            "final": [y[-1] for y in ys],
            "steps": [row["step"] for row in last],
            "rollouts": [row.get("rollouts", 0) for row in last],
            "seconds": [_seconds(r) for r in g.runs],
            "runs": [str(r.path) for r in g.runs],
        })
    return out


def _seconds(run: Run) -> float:
    """Wall time of a run: its training steps plus its evaluations."""
    train = sum(float(r.get("time/step_s", 0.0)) for r in read_jsonl(run.path / "metrics.jsonl"))
    evals = sum(float(r.get("eval/seconds", 0.0)) for r in read_jsonl(run.path / EVAL_FILE))
    return train + evals


def markdown_table(summary: list[dict], metric: str) -> str:
    lines = [
        f"| method | seeds | {metric} start | best | final | steps | rollouts | wall s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in summary:
        lines.append(
            f"| {s['method']} | {len(s['seeds'])} | {_fmt(s['start'])} | {_fmt(s['best'])} | {_fmt(s['final'])} | "
            f"{_fmt(s['steps'], 0)} | {_fmt(s['rollouts'], 0)} | {_fmt(s['seconds'], 0)} |"
        )
    return "\n".join(lines)


def plot(groups: list[Group], metric: str, x: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for i, g in enumerate(groups):
        color = f"C{i % 10}"
        curves = [r.curve(metric, x) for r in g.runs]
        for xs, ys in curves:  # each seed thin, the group mean thick when the seeds share their x points
            ax.plot(xs, ys, color=color, alpha=0.3, lw=1)
        if len(curves) > 1 and all(c[0] == curves[0][0] for c in curves):
            mean = [statistics.fmean(v) for v in zip(*(c[1] for c in curves))]
            ax.plot(curves[0][0], mean, color=color, lw=2, marker="o", ms=3, label=f"{g.label} (n={len(curves)})")
        else:
            ax.plot([], [], color=color, label=f"{g.label} (n={len(curves)})")
    ax.set_xlabel({"rollouts": "generated completions", "seconds": "training seconds"}.get(x, x))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def compare(run_dirs: list[str], metric: str = "eval/pass@1", x: str = "step", out: str | Path = "compare") -> dict:
    if x not in X_AXES:
        raise ConfigError(f"--x {x!r}: expected one of {', '.join(X_AXES)}")
    runs = [load_run(p, metric) for p in run_dirs]
    groups = group_runs(runs)
    summary = summarize(groups, metric)
    table = markdown_table(summary, metric)
    out = Path(out)
    png = plot(groups, metric, x, out / "compare.png")
    (out / "compare.md").write_text(table + "\n")
    return {"metric": metric, "x": x, "png": str(png), "table": table, "groups": summary}


def cmd_compare(args) -> int:
    result = compare(args.runs, args.metric, args.x, args.out)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "table"}))
        return 0
    print(result["table"])
    print(f"\nplot: {result['png']}  table: {Path(result['png']).with_name('compare.md')}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("compare", help="several runs side by side: curves (PNG) and a table, seeds grouped")
    p.add_argument("runs", nargs="+", metavar="RUN")
    p.add_argument("--metric", default="eval/pass@1", help="an eval.jsonl or metrics.jsonl key (default eval/pass@1)")
    p.add_argument("--x", default="step", choices=X_AXES, help="x axis; rollouts = generated completions")
    p.add_argument("--out", default="compare", help="folder for compare.png and compare.md")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON line")
    p.set_defaults(func=cmd_compare)
