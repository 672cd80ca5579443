"""The Golden Goose plugin: task source, letter reward, online difficulty filter, metrics, CLI."""
from __future__ import annotations

import random
import tempfile
from collections.abc import Sequence
from pathlib import Path

import torch
from grpo_zoo.config import ConfigError
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.segments import Groups

from .config import DEFAULT_FORMAT, GoldenGooseConfig
from .filter import stored_format
from .format import extract_letter, format_item, to_task
from .store import StoreError, load_items

NAME = "golden_goose"
REWARD_COLUMN = "goose/correct"


class TaskPool(Sequence):
    """The training tasks; items dropped by the online filter disappear from the sequence.

    The built-in curriculum draws by position from ``len(pool)``; dropped
    items are kept in ``all`` so a resumed run restores the same pool.
    """

    def __init__(self, tasks):
        self.all = list(tasks)
        self.dropped: set[str] = set()
        self._active = list(self.all)

    def drop(self, ids) -> None:
        self.dropped |= set(ids)
        self._active = [t for t in self.all if t.id not in self.dropped]

    def __len__(self) -> int:
        return len(self._active)

    def __getitem__(self, i):
        return self._active[i]


def correctness(rollouts) -> tuple[torch.Tensor, torch.Tensor]:
    """Per rollout: 1.0 iff the letter is the true one; and whether any letter was extracted."""
    ok, parsed = [], []
    for i, text in enumerate(rollouts.completion_text):
        meta = rollouts.task_of(i).metadata.get(NAME)
        got = extract_letter(text, meta["n_options"]) if meta else None
        ok.append(1.0 if meta and got == meta["letter"] else 0.0)
        parsed.append(1.0 if got is not None else 0.0)
    return torch.tensor(ok), torch.tensor(parsed)


def tasks_from_items(items: list[dict], fmt: dict, max_tasks: int | None, seed: int):
    if max_tasks and len(items) > max_tasks:
        items = random.Random(f"{seed}|max_tasks").sample(items, max_tasks)
    return [to_task(format_item(it, fmt["options"], fmt["seed"], fmt["distractor_pick"], fmt["answer_format"])) for it in items]


class GoldenGoose:
    """Golden Goose (arXiv 2601.22975): multiple-choice fill-in-the-middle tasks from unverifiable text."""

    def __init__(self):
        self.pool: TaskPool | None = None
        self.window: dict[str, list[int]] = {}
        self.pending_drop: set[str] = set()
        self.last: dict[str, float] = {}
        self.synthesis: dict = {}

    # --- config and command line -------------------------------------------------------------------
    @staticmethod
    @hookimpl
    def zoo_config_model():
        return GoldenGooseConfig

    @staticmethod
    @hookimpl
    def zoo_register_commands(subparsers):
        from .cli import register

        register(subparsers)

    # --- curriculum ----------------------------------------------------------------------------------
    @staticmethod
    def _format(ctx, cfg: GoldenGooseConfig, stored: dict | None) -> dict:
        """Format settings: the config's where set, else the data set's (``dataset``), else the defaults.

        Unset keys are None in the config, so a resumed run (config from its manifest) formats alike.
        """
        fmt = {**DEFAULT_FORMAT, "seed": ctx.config.seed, **(stored or {})}
        for key in ("options", "distractor_pick", "answer_format", "seed"):
            if getattr(cfg, key) is not None:
                fmt[key] = getattr(cfg, key)
        return fmt

    def _synthesize(self, ctx, cfg: GoldenGooseConfig) -> Path:
        from .synthesize import SynthesisConfig, synthesize

        if cfg.synth_dir:
            out = Path(cfg.synth_dir)
        elif ctx.run_dir is not None:
            out = Path(ctx.run_dir) / NAME
        else:
            out = Path(tempfile.mkdtemp(prefix="golden-goose-"))
        fmt = self._format(ctx, cfg, None)
        sc = SynthesisConfig(
            input=cfg.source, out=str(out), domain=cfg.domain, generator=cfg.generator, model=cfg.generator_model,
            endpoint=cfg.endpoint, endpoint_model=cfg.endpoint_model, limit=cfg.limit, per_source=cfg.per_source,
            seed=fmt["seed"], options=fmt["options"], distractors=cfg.distractors,
            distractor_pick=fmt["distractor_pick"], answer_format=fmt["answer_format"], min_units=cfg.min_units,
            max_units=cfg.max_units, min_chars=cfg.min_chars, max_chars=cfg.max_chars, context_chars=cfg.context_chars,
            min_length_ratio=cfg.min_length_ratio, max_length_ratio=cfg.max_length_ratio,
            same_document_only=cfg.same_document_only,
        )
        self.synthesis = synthesize(sc, progress=True)
        return out

    @hookimpl
    def zoo_task_source(self, ctx):
        cfg: GoldenGooseConfig = ctx.config.golden_goose
        if not cfg.dataset and not cfg.source:
            raise ConfigError("golden_goose needs golden_goose.dataset (a synthesized folder) or golden_goose.source")
        try:
            path = Path(cfg.dataset).expanduser() if cfg.dataset else self._synthesize(ctx, cfg)
            stored = stored_format(path) if cfg.dataset and (path / "summary.json").is_file() else None
            items = load_items(path)
        except (StoreError, ValueError) as exc:
            key = "golden_goose.dataset" if cfg.dataset else "golden_goose.source"
            raise ConfigError(f"{key}: {exc}") from exc
        fmt = self._format(ctx, cfg, stored)
        try:
            tasks = tasks_from_items(items, fmt, cfg.max_tasks, fmt["seed"])
        except ValueError as exc:  # e.g. more options than an item has distractors for
            raise ConfigError(f"golden_goose.options = {fmt['options']}: {exc}") from exc
        if not tasks:
            raise ConfigError(f"golden_goose: {path} holds no tasks")
        self.pool = TaskPool(tasks)
        if self.pending_drop:
            self.pool.drop(self.pending_drop)
        return self.pool

    # --- reward --------------------------------------------------------------------------------------
    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        if not ctx.config.golden_goose.reward:
            return None
        ok, _ = correctness(rollouts)
        return {REWARD_COLUMN: ok}

    # --- difficulty filter and statistics ----------------------------------------------------------------
    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        cfg: GoldenGooseConfig = ctx.config.golden_goose
        ok, parsed = correctness(rollouts)
        groups: Groups = rollouts.groups
        solved = torch.zeros(groups.num_groups).index_add_(0, groups.index, ok)
        counts = groups.counts.float()
        present = counts > 0
        mixed = present & (solved > 0) & (solved < counts)
        n = max(int(present.sum()), 1)
        self.last = {
            f"{NAME}/effective_frac": float(mixed.sum()) / n,
            f"{NAME}/solved_all_frac": float((present & (solved == counts)).sum()) / n,
            f"{NAME}/solved_none_frac": float((present & (solved == 0)).sum()) / n,
            f"{NAME}/accuracy": float(ok.mean()) if len(ok) else 0.0,
            f"{NAME}/letter_rate": float(parsed.mean()) if len(parsed) else 0.0,
        }
        if not cfg.filter_online or self.pool is None:
            return
        k = cfg.filter_k
        newly = []
        for g, task in enumerate(rollouts.tasks):
            outcomes = ok[groups.index == g].int().tolist()
            if not outcomes:
                continue
            win = (self.window.get(task.id, []) + outcomes)[-k:]
            self.window[task.id] = win
            if len(win) == k and all(win) and task.id not in self.pool.dropped:
                newly.append(task.id)
        floor = cfg.min_pool or ctx.config.train.prompts_per_step
        room = max(len(self.pool) - floor, 0)
        if newly and room:
            self.pool.drop(newly[:room])

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        out = dict(self.last)
        if self.pool is not None:
            out[f"{NAME}/pool_size"] = len(self.pool)
            out[f"{NAME}/dropped"] = len(self.pool.dropped)
        return out

    @hookimpl
    def zoo_run_end(self, ctx, metrics):
        if self.pool is not None:
            metrics[f"{NAME}/tasks"] = len(self.pool.all)
            metrics[f"{NAME}/dropped_total"] = len(self.pool.dropped)

    # --- state -------------------------------------------------------------------------------------------
    @hookimpl
    def zoo_state_dict(self, ctx):
        dropped = sorted(self.pool.dropped) if self.pool is not None else sorted(self.pending_drop)
        return {"window": {k: list(v) for k, v in self.window.items()}, "dropped": dropped}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.window = {k: list(v) for k, v in state.get("window", {}).items()}
        self.pending_drop = set(state.get("dropped", []))
        if self.pool is not None:
            self.pool.drop(self.pending_drop)
