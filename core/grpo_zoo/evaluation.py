"""Held-out evaluation: the ``[eval]`` section, ``eval.jsonl`` in the run folder, and ``grpo-zoo eval``.

Evaluation is single-shot, as the papers evaluate: each held-out prompt goes once
through the run's prompt builder and generate backend (``zoo_generate``) and is
scored by the run's reward hooks and task scorers. It never enters the
``zoo_rollout`` chain, so method plugins (drafts, hints, extra budget) play no part.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from pathlib import Path

from .config import ConfigError
from .passk import pass_at_k
from .tasks import file_tasks, reasoning_gym_tasks
from .trainer.distributed import world
from .trainer.rundir import append_jsonl, keep_rows, read_jsonl
from .types import RolloutRequest, Task

EVAL_FILE = "eval.jsonl"
EVAL_SALT = 0x5EED_E7A1  # the eval generate calls draw their own random stream (ctx.sampling_seed)
DEFAULT_SEED_OFFSET = 1_000_003  # eval seed = seed + this unless eval.seed is given


def enabled(config) -> bool:
    return config.eval.size > 0


# ---------------------------------------------------------------------------------------------- the held-out set
def prompt_key(task: Task) -> str:
    """A task's prompt as comparable text (whitespace-normalized; chat prompts as JSON)."""
    text = task.prompt if isinstance(task.prompt, str) else json.dumps(task.prompt, sort_keys=True)
    return " ".join(text.split())


def check_overlap(eval_tasks: list[Task], train_tasks: list[Task]) -> None:
    """Fail, naming the overlap, when a held-out task shares an id or a prompt with a training task."""
    ids = {t.id for t in train_tasks}
    prompts = {prompt_key(t) for t in train_tasks}
    by_id = [t.id for t in eval_tasks if t.id in ids]
    by_prompt = [t for t in eval_tasks if prompt_key(t) in prompts]
    if by_id or by_prompt:
        parts = []
        if by_id:
            parts.append(f"{len(by_id)} by id ({', '.join(map(repr, by_id[:3]))}{', ...' if len(by_id) > 3 else ''})")
        if by_prompt:
            shown = ", ".join(f"{t.id!r}: {prompt_key(t)[:60]!r}" for t in by_prompt[:2])
            parts.append(f"{len(by_prompt)} by prompt text ({shown}{', ...' if len(by_prompt) > 2 else ''})")
        raise ConfigError(f"the eval set overlaps the training set: {' and '.join(parts)} of {len(eval_tasks)} "
                          "held-out task(s); held-out tasks must not be trained on")


def _generated(name: str, params: dict, seed: int, size: int, train_tasks: list[Task]) -> list[Task]:
    """``size`` distinct prompts of a generator that the training set does not hold, held out by construction.

    Small task spaces (one-digit products) repeat prompts: candidates are drawn in
    growing batches and the ones seen in training, or already taken, are skipped.
    """
    seen = {prompt_key(t) for t in train_tasks}
    out: list[Task] = []
    n = 2 * size
    for _ in range(5):
        out, taken = [], set()
        for t in reasoning_gym_tasks(name, n, seed, params):
            key = prompt_key(t)
            if key in seen or key in taken:
                continue
            taken.add(key)
            out.append(dataclasses.replace(t, id=f"eval/{t.id}"))
            if len(out) == size:
                return out
        n *= 4
    raise ConfigError(f"eval.size = {size}: only {len(out)} distinct {name} prompts (params {params}) are not in the "
                      f"training set among {n // 4} drawn; lower eval.size or task.size, or widen the generator's params")


def eval_tasks(ctx, train_tasks: list[Task]) -> list[Task]:
    """The held-out tasks of ``[eval]``, checked against ``train_tasks`` (id and prompt text)."""
    cfg, task = ctx.config.eval, ctx.config.task
    if cfg.size == 0:
        raise ConfigError("eval.size = 0: evaluation is off; set eval.size (e.g. --set eval.size=64)")
    if cfg.source == "file":
        try:
            tasks = file_tasks(cfg.path, cfg.prompt_column, cfg.answer_column, cfg.split)[: cfg.size]
        except ValueError as exc:
            raise ConfigError(f"eval.path: {exc}") from None
    else:
        if cfg.source == "task" and task.source != "reasoning_gym":
            raise ConfigError(f"eval.source = 'task' needs task.source = 'reasoning_gym' (got {task.source!r}); "
                              "give held-out rows with eval.source = 'file' and eval.path")
        name = cfg.name or task.name
        params = task.params if cfg.params is None else cfg.params
        seed = ctx.config.seed + DEFAULT_SEED_OFFSET if cfg.seed is None else cfg.seed
        tasks = _generated(name, params, seed, cfg.size, train_tasks)
    check_overlap(tasks, train_tasks)
    return tasks


# -------------------------------------------------------------------------------------------------- one evaluation
def eval_sampling(config):
    """The run's sampling section with the eval decoding: greedy is top-k = 1 (the backends' own sampler)."""
    e, s = config.eval, config.sampling
    greedy = e.temperature == 0
    return s.model_copy(update={
        "temperature": 1.0 if greedy else e.temperature,
        "top_k": 1 if greedy else 0,
        "top_p": 1.0,
        "max_new_tokens": e.max_new_tokens or s.max_new_tokens,
    })


def _local_stats(ctx, tasks: list[Task], index: list[int]) -> list[dict]:
    """Per-task counts of this rank's share: samples, correct, reward sums per column, completion tokens."""
    from .builtins.rewards import correctness

    if not index:
        return []
    cfg = ctx.config.eval
    mine = [tasks[i] for i in index]
    request = RolloutRequest(tasks=mine, prompts=[ctx.hooks.build_prompt(ctx, t) for t in mine],
                             budgets=[cfg.samples] * len(mine), extras={"eval": True, "seed_salt": EVAL_SALT})
    run_sampling = ctx.config.sampling
    ctx.config.sampling = eval_sampling(ctx.config)  # the backend reads its settings from the config
    try:
        rollouts = ctx.hooks.generate(ctx, request)
    finally:
        ctx.config.sampling = run_sampling
    rewards = ctx.hooks.rewards(ctx, rollouts)
    lengths = rollouts.completion_lengths()
    stats = [{"task": i, "n": 0, "c": 0, "len": 0, "rewards": {k: 0.0 for k in rewards}} for i in index]
    for r in range(len(rollouts)):
        s = stats[int(rollouts.group[r])]
        s["n"] += 1
        s["c"] += int(correctness(rollouts.task_of(r), rollouts.completion_text[r]) >= cfg.correct_threshold)
        s["len"] += int(lengths[r])
        for k, v in rewards.items():
            s["rewards"][k] += float(v[r])
    short = [(tasks[s["task"]].id, s["n"]) for s in stats if s["n"] != cfg.samples]
    if short:  # pass@k assumes n samples of every task; a backend that returns fewer would bias it
        raise RuntimeError(f"eval: the backend returned {short[0][1]} completion(s) for task {short[0][0]!r} "
                           f"instead of eval.samples = {cfg.samples}")
    return stats


def evaluate(ctx, tasks: list[Task]) -> dict:
    """Evaluate the current policy on ``tasks``; every rank takes a strided share and gets the whole result."""
    cfg = ctx.config.eval
    t0 = time.perf_counter()
    rank, size = world(ctx)
    window = ctx.engine.gathered() if hasattr(ctx.engine, "gathered") else contextlib.nullcontext()
    with window:  # sharded (fsdp2): every rank enters, whatever its share of the tasks
        stats = _local_stats(ctx, tasks, list(range(rank, len(tasks), size)))
    if size > 1:
        from accelerate.utils import gather_object

        stats = gather_object(stats)
    stats.sort(key=lambda s: s["task"])
    n = [s["n"] for s in stats]
    c = [s["c"] for s in stats]
    total = max(sum(n), 1)
    m = {"eval/pass@1": pass_at_k(n, c, 1)}
    for k in sorted(set(cfg.k or [cfg.samples]) - {1}):
        m[f"eval/pass@{k}"] = pass_at_k(n, c, k)
    weights = ctx.config.reward.weights
    columns = sorted({k for s in stats for k in s["rewards"]})
    for k in columns:
        m[f"eval/reward/{k}"] = sum(s["rewards"][k] for s in stats) / total
    m["eval/reward/mean"] = sum(weights.get(k, 1.0) * m[f"eval/reward/{k}"] for k in columns)
    m["eval/completion_len"] = sum(s["len"] for s in stats) / total
    m["eval/tasks"] = len(stats)
    m["eval/samples"] = cfg.samples
    m["eval/seconds"] = time.perf_counter() - t0
    return m


# ------------------------------------------------------------------------------------------ during a training run
def truncate_eval(run_dir: Path, steps_done: int) -> None:
    """Keep the eval rows of evaluations up to ``steps_done`` optimizer steps (later ones are replayed on resume)."""
    keep_rows(Path(run_dir) / EVAL_FILE, lambda r: r.get("step", -1) <= steps_done)


class EvalTracker:
    """Runs the evaluations a training run is due and keeps its spend counters.

    An ``eval.jsonl`` row's ``step`` is the number of optimizer steps taken before it
    (0: the initial policy). The trainer evaluates after a step and before that step's
    checkpoint, so a checkpoint at step s implies the eval row at s + 1 when one was
    due; on resume from it, rows past s + 1 (written after that checkpoint) are dropped
    and their evaluations replayed: no row is lost or duplicated.
    """

    def __init__(self, ctx, run_dir: Path, train_tasks: list[Task], start_step: int, is_main: bool):
        self.ctx, self.run_dir, self.is_main = ctx, Path(run_dir), is_main
        self.active = enabled(ctx.config)
        self.start_step = start_step
        self.generated_seen = int(ctx.info.get("generated", 0))
        self.totals = {"rollouts": 0, "generated": 0, "tokens": 0, "seconds": 0.0}
        if is_main and start_step > 0:
            for r in read_jsonl(self.run_dir / "metrics.jsonl"):
                if r.get("step", -1) < start_step:
                    self._add(r)
        if not self.active:
            return
        self.tasks = eval_tasks(ctx, train_tasks)
        if is_main:  # a resume replays what came after its checkpoint; with none (step 0), every row
            truncate_eval(self.run_dir, start_step if start_step > 0 else -1)

    def _add(self, metrics: dict) -> None:
        self.totals["rollouts"] += int(metrics.get("rollouts", 0))
        self.totals["generated"] += int(metrics.get("generated", metrics.get("rollouts", 0)))
        self.totals["tokens"] += int(metrics.get("tokens", 0))
        self.totals["seconds"] += float(metrics.get("time/step_s", 0.0))

    def evaluate_now(self, steps_done: int) -> dict:
        """Evaluate now and append the row (``steps_done`` optimizer steps taken)."""
        row = {"step": steps_done, **evaluate(self.ctx, self.tasks), **self.totals}
        if self.is_main:
            append_jsonl(self.run_dir / EVAL_FILE, [row])
        return row

    def before_training(self) -> dict | None:
        cfg = self.ctx.config.eval
        if self.active and cfg.before_training and self.start_step == 0:
            return self.evaluate_now(0)
        return None

    def after_step(self, step: int, metrics: dict) -> dict | None:
        """Add the step's generated-completion count to ``metrics``; evaluate when due."""
        count = int(self.ctx.info.get("generated", 0))
        generated = count - self.generated_seen
        self.generated_seen = count
        acc = self.ctx.accelerator
        if acc is not None:  # each rank counts its own generate calls
            import torch

            generated = int(acc.reduce(torch.tensor(generated, device=acc.device), reduction="sum"))
        metrics["generated"] = generated
        self._add(metrics)
        if not self.active:
            return None
        cfg, done = self.ctx.config.eval, step + 1
        if done == self.ctx.config.train.steps or (cfg.every and done % cfg.every == 0):
            return self.evaluate_now(done)
        return None

    def plot(self) -> list[Path]:
        return plot_eval(self.run_dir) if self.active and self.is_main else []


def summary_line(run_dir: str | Path) -> str | None:
    """``eval/pass@1: A at step 0 -> B at step N`` from eval.jsonl, or None without evaluations."""
    rows = read_jsonl(Path(run_dir) / EVAL_FILE)
    if not rows:
        return None
    a, b = rows[0], rows[-1]
    return (f"eval/pass@1: {a['eval/pass@1']:.4f} at step {a['step']} -> {b['eval/pass@1']:.4f} at step {b['step']} "
            f"({b['eval/tasks']} held-out tasks)")


def plot_eval(run_dir: str | Path) -> list[Path]:
    """``plots/eval.png``: every eval/pass@k and eval/reward/mean against optimizer steps."""
    rows = read_jsonl(Path(run_dir) / EVAL_FILE)
    if not rows:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for r in rows for k in r if k.startswith("eval/pass@")}, key=lambda k: int(k.split("@")[1]))
    keys.append("eval/reward/mean")
    fig, ax = plt.subplots(figsize=(6, 3.5))
    steps = [r["step"] for r in rows]
    for k in keys:
        ax.plot(steps, [r.get(k, float("nan")) for r in rows], marker="o", ms=3, label=k)
    ax.set_xlabel("optimizer steps")
    ax.set_title(f"held-out eval ({rows[-1].get('eval/tasks', '?')} tasks)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(run_dir) / "plots"
    out.mkdir(exist_ok=True)
    path = out / "eval.png"
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return [path]


# ------------------------------------------------------------------------------------------------- `grpo-zoo eval`
def resolve_target(target: str) -> tuple[str, dict | None]:
    """(model folder or name, the run's config or None) for a run folder, a checkpoint, or a model."""
    from .trainer import checkpoint

    path = Path(target)
    if (path / "manifest.json").exists():  # a run folder: its latest checkpoint
        ckpt = checkpoint.latest(path)
        if ckpt is None:
            raise FileNotFoundError(f"{target}: a run folder without a usable checkpoint")
        return str(ckpt / "model"), json.loads((path / "manifest.json").read_text())["config"]
    if (path / "model" / "config.json").exists():  # a checkpoint folder RUN/checkpoints/step-N
        manifest = path.parent.parent / "manifest.json"
        return str(path / "model"), json.loads(manifest.read_text())["config"] if manifest.exists() else None
    return target, None  # a base model: a local model folder or a model name


def eval_target(target: str, config=None, overrides: list[str] | None = None) -> dict:
    """Evaluate a run's latest checkpoint, a checkpoint or a base model with the ``[eval]`` semantics of
    ``config`` (a path or dict), else the run's own config, else the defaults."""
    from .config import read_toml
    from .context import make_context
    from .trainer.engine import Engine
    from .trainer.models import load_model_and_tokenizer

    model_path, run_config = resolve_target(target)
    raw = read_toml(config) if isinstance(config, (str, Path)) else dict(config or run_config or {})
    raw["model"] = model_path
    ctx = make_context(raw, overrides)
    if not enabled(ctx.config):
        raise ConfigError("eval.size = 0: evaluation is off; set [eval] size in the config or --set eval.size=64")
    model, tok = load_model_and_tokenizer(model_path, ctx.config.train.dtype)
    model.eval()
    ctx.engine = Engine(model, tok, temperature=ctx.config.sampling.temperature)
    tasks = eval_tasks(ctx, ctx.hooks.task_source(ctx))
    return {"target": target, "model": model_path, **evaluate(ctx, tasks)}


def cmd_eval(args) -> int:
    result = eval_target(args.target, args.config, args.set)
    if args.json:
        print(json.dumps(result))
        return 0
    for k, v in result.items():
        print(f"{k:<22} {v:.4f}" if isinstance(v, float) else f"{k:<22} {v}")
    return 0


def register(sub) -> None:
    p = sub.add_parser("eval", help="held-out pass@1/pass@k of a run, a checkpoint or a base model")
    p.add_argument("target", help="run folder (latest checkpoint), checkpoint folder, model folder or model name")
    p.add_argument("--config", help="a run config whose [eval] (and task, reward) to use; default: the run's own")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--json", action="store_true", help="print the metrics as one JSON line")
    p.set_defaults(func=cmd_eval)
