"""TRL-style reward functions as reward columns.

A reward function is called the way TRL 1.16's GRPOTrainer calls it::

    fn(prompts=[...], completions=[...], completion_ids=[[...]], trainer_state=..., log_extra=..., log_metric=...,
       **dataset_columns) -> list[float | None]

one entry per rollout: ``prompts[i]`` is the task's prompt as the dataset holds it (text, or a list of
chat messages), ``completions[i]`` the completion text (or ``[{"role": "assistant", "content": text}]``
when the prompt is a chat), every column of the task is a keyword argument with one value per
rollout, and ``trainer_state.global_step`` is the step. ``async def`` functions are awaited
together. Each function becomes a reward column named after it (``fn.__name__``); ``None`` entries
become NaN in that column (what then happens is ``reward.on_nonfinite``'s business).

Functions come from ``[reward] functions = ["package.module:function", "path/to/file.py:function"]``
(importing them runs their code: a run config is as trusted as a script) or, as callables, from
``grpo_zoo.train(config, reward_funcs=[...])`` (:class:`RewardFunctions`, a plugin object).
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import hashlib
import importlib
import importlib.util
import inspect
import math
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from .hookspecs import hookimpl

# Names TRL reserves or leaves out (its _calculate_rewards drops the prompt and completion columns);
# a dataset column of one of these names does not reach the function under it.
RESERVED = ("prompt", "completion", "prompts", "completions", "completion_ids", "trainer_state", "log_extra", "log_metric")


def check_spec(spec: str) -> str:
    """``module:attribute`` (dotted module, or a ``.py`` file path), or a clear error."""
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr or not all(p.isidentifier() for p in attr.split(".")):
        raise ValueError(f"reward function {spec!r}: expected 'package.module:function' or 'path/to/file.py:function'")
    return spec


@functools.lru_cache(maxsize=None)
def _load_file(path: str):
    """A ``.py`` file as a module, once per process (its top level runs once, as an import would)."""
    # a stable, unique module name: the file's stem plus a digest of its path (str hash() is salted per process)
    name = f"grpo_zoo_rewards_{Path(path).stem}_{hashlib.sha1(path.encode()).hexdigest()[:8]}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


def resolve(spec: str) -> Callable:
    """The callable named by ``spec`` ('package.module:function' or 'path/to/file.py:function')."""
    module_name, _, attr = check_spec(spec).rpartition(":")
    try:
        if module_name.endswith(".py"):
            path = Path(module_name).expanduser().resolve()
            if not path.is_file():
                raise FileNotFoundError(f"no such file: {path}")
            obj = _load_file(str(path))
        else:
            obj = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError, FileNotFoundError) as exc:
        raise ValueError(f"reward function {spec!r} cannot be loaded: {type(exc).__name__}: {exc}") from exc
    if not callable(obj):
        raise ValueError(f"reward function {spec!r} is a {type(obj).__name__}, not a callable")
    return obj


def column_name(fn: Callable) -> str:
    """TRL's name for a reward function's column: its ``__name__`` (a partial's function's)."""
    while isinstance(fn, functools.partial):
        fn = fn.func
    return getattr(fn, "__name__", None) or type(fn).__name__


def describe(fn: Callable, spec: str | None = None) -> dict:
    """What the manifest records of a function: column, where it came from, and its source file."""
    target = fn.func if isinstance(fn, functools.partial) else fn
    module = getattr(target, "__module__", None) or type(target).__module__
    qualname = getattr(target, "__qualname__", None) or type(target).__qualname__
    try:
        source = inspect.getsourcefile(target if inspect.isroutine(target) else type(target))
    except TypeError:
        source = None
    return {"column": column_name(fn), "spec": spec, "function": f"{module}:{qualname}", "file": source}


def is_async(fn: Callable) -> bool:
    while isinstance(fn, functools.partial):
        fn = fn.func
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))


def task_columns(task) -> dict[str, Any]:
    """The dataset columns a task carries (its metadata), plus ``answer`` when the task has one
    and no column of that name (source = "file" keeps its answer column only as ``task.answer``)."""
    cols = dict(task.metadata)
    if "answer" not in cols and task.answer is not None:
        cols["answer"] = task.answer
    return cols


def trainer_state(ctx):
    """The ``trainer_state`` argument: transformers' TrainerState whose ``global_step`` is the grpo-zoo step
    (TRL counts optimizer steps; they agree at num_iterations = 1 with one generation batch per step)."""
    from transformers import TrainerState

    return TrainerState(global_step=ctx.step, max_steps=ctx.config.train.steps, epoch=float(ctx.info.get("epoch", 0)))


def trl_arguments(ctx, rollouts) -> tuple[dict[str, Any], dict[str, list[float]]]:
    """The keyword arguments TRL would pass for these rollouts, and the figures ``log_metric`` collects."""
    rows = [task_columns(t) for t in rollouts.tasks]
    keys = [k for k in rows[0] if k not in RESERVED and all(k in r for r in rows[1:])] if rows else []
    group = rollouts.group.tolist()
    prompts, completions = [], []
    for i, text in enumerate(rollouts.completion_text):
        prompt = rollouts.tasks[group[i]].prompt
        prompts.append(prompt)
        completions.append(text if isinstance(prompt, str) else [{"role": "assistant", "content": text}])
    logged: dict[str, list[float]] = {}
    extras = rollouts.extras.setdefault("reward_log_extra", {})

    def log_metric(name: str, value: float) -> None:
        logged.setdefault(name, []).append(float(value))

    def log_extra(column: str, values: list) -> None:
        extras[column] = list(values)

    kwargs = {k: [rows[g][k] for g in group] for k in keys}
    kwargs.update(
        prompts=prompts,
        completions=completions,
        completion_ids=[list(map(int, c)) for c in rollouts.completion_ids],
        trainer_state=trainer_state(ctx),
        log_extra=log_extra,
        log_metric=log_metric,
    )
    return kwargs, logged


def _as_column(name: str, values, n: int) -> torch.Tensor:
    try:
        values = list(values)
    except TypeError:
        raise ValueError(f"reward function {name!r} returned {type(values).__name__}, expected a list of floats") from None
    if len(values) != n:
        raise ValueError(f"reward function {name!r} returned {len(values)} rewards for {n} completions")
    out = []
    for k, v in enumerate(values):
        if v is None:
            out.append(math.nan)  # TRL's convention: "no reward for this completion"
            continue
        try:
            out.append(float(v))
        except (TypeError, ValueError):
            raise ValueError(f"reward function {name!r} returned {v!r} at position {k}, not a number or None") from None
    return torch.tensor(out, dtype=torch.float32)


def _run_coroutines(coros: list) -> list:
    async def gather():
        return await asyncio.gather(*coros)

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(gather())
    # called from inside a running event loop (a notebook): run ours in a thread of its own
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, gather()).result()


def score_functions(ctx, rollouts, funcs: list[Callable]) -> dict[str, torch.Tensor]:
    """One reward column per function, named after it; async functions run concurrently."""
    names = [column_name(f) for f in funcs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"two reward functions are both named {dupes[0]!r}: a column needs a unique name")
    if not funcs or len(rollouts) == 0:
        return {}
    kwargs, logged = trl_arguments(ctx, rollouts)
    results: dict[str, Any] = {}
    pending = []
    for name, fn in zip(names, funcs):
        if is_async(fn):
            pending.append(name)
        else:
            results[name] = fn(**kwargs)
    if pending:
        by_name = dict(zip(names, funcs))
        for name, out in zip(pending, _run_coroutines([by_name[n](**kwargs) for n in pending])):
            results[name] = out
    for metric, values in logged.items():
        rollouts.metrics[metric] = sum(values) / len(values)
    return {name: _as_column(name, results[name], len(rollouts)) for name in names}


def configured(ctx) -> list[tuple[str, Callable]]:
    """``[reward] functions`` resolved: (spec, callable) pairs."""
    return [(spec, resolve(spec)) for spec in ctx.config.reward.functions]


def configured_columns(ctx, rollouts, taken) -> dict[str, torch.Tensor]:
    """Columns of ``[reward] functions`` and ``[[reward.models]]`` (the built-in reward hook adds them)."""
    cfg = ctx.config.reward
    cols = score_functions(ctx, rollouts, [fn for _, fn in configured(ctx)])
    if cfg.models:
        from .reward_models import score_models

        for name, col in score_models(ctx, rollouts).items():
            if name in cols:
                raise ValueError(f"reward model column {name!r} is also a reward function's: set a name in [[reward.models]]")
            cols[name] = col
    clash = sorted(set(cols) & set(taken))
    if clash:
        raise ValueError(f"reward column {clash[0]!r} is both a built-in column and a reward function's or model's")
    return cols


class RewardFunctions:
    """A plugin object whose ``zoo_reward`` scores TRL-style reward functions given as Python
    callables (or 'module:function' strings): what ``grpo_zoo.train(config, reward_funcs=...)`` registers."""

    def __init__(self, funcs: list[Callable | str]):
        self.specs = [f if isinstance(f, str) else None for f in funcs]
        self.funcs = [resolve(f) if isinstance(f, str) else f for f in funcs]
        for f in self.funcs:
            if not callable(f):
                raise TypeError(f"reward_funcs: {f!r} is not callable")

    def describe(self) -> list[dict]:
        return [describe(f, s) for f, s in zip(self.funcs, self.specs)]

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        return score_functions(ctx, rollouts, self.funcs)


def manifest_entries(ctx) -> list[dict]:
    """Every reward function and model of the run, resolved, for the run's manifest."""
    out = [describe(fn, spec) | {"source": "reward.functions"} for spec, fn in configured(ctx)]
    for name, plugin in ctx.hooks.pm.list_name_plugin():
        if isinstance(plugin, RewardFunctions):
            out += [d | {"source": f"reward_funcs (plugin {name!r})"} for d in plugin.describe()]
    if ctx.config.reward.models:
        from .reward_models import model_column

        out += [{"column": model_column(m), "model": m.path, "source": "reward.models"} for m in ctx.config.reward.models]
    return out
