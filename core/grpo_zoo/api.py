"""``grpo_zoo.train``: train from Python, with TRL-style reward functions given as callables."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

# The plugin name under which ``reward_funcs`` take part in the run (listed in the manifest).
REWARD_FUNCS_PLUGIN = "reward_funcs"


def train(
    config,
    reward_funcs: list[Callable | str] | None = None,
    out: str | None = None,
    overrides: list[str] | None = None,
    resume: str | None = None,
    progress: bool = True,
    extra_plugins: dict | None = None,
) -> tuple[dict, Path]:
    """Train from a config path or dict, like ``grpo-zoo train``; returns (last metrics, run folder).

    ``reward_funcs``: TRL-style reward functions (callables, sync or async, or
    'package.module:function' strings), each a reward column named after the function, next to
    the config's own columns. A resumed run needs the same ``reward_funcs`` again.
    """
    from .reward_functions import RewardFunctions
    from .trainer.loop import train as train_loop

    extra = dict(extra_plugins or {})
    if reward_funcs:
        if REWARD_FUNCS_PLUGIN in extra:
            raise ValueError(f"extra_plugins already has a plugin named {REWARD_FUNCS_PLUGIN!r}")
        extra[REWARD_FUNCS_PLUGIN] = RewardFunctions(list(reward_funcs))
    return train_loop(config, out=out, overrides=overrides, resume=resume, progress=progress, extra_plugins=extra or None)
