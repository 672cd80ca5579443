"""The run context every hook receives: config, hooks, policy engine and shared helpers."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from . import config as cfg
from .config_check import check_whole_config
from .hooks import Hooks
from .plugins import build_manager
from .segments import Groups
from .types import RolloutRequest, Rollouts


_RANK_SALT = 0x52414E4B  # marks the rank in sampling seeds, apart from request salts


@dataclass
class RunContext:
    config: cfg.CoreConfig
    hooks: Hooks
    engine: Any = None  # grpo_zoo.trainer.engine.Engine once the trainer has loaded a model
    accelerator: Any = None
    run_dir: Path | None = None
    step: int = 0
    info: dict[str, Any] = field(default_factory=dict)
    source: Any = None  # the run's task source (zoo_task_source's answer) once the trainer has loaded it
    sample_round: int = 0  # which sampling batch of the step (0 = the first; refills count up)

    @property
    def plugin_names(self) -> list[str]:
        return [n for n, _ in self.hooks.pm.list_name_plugin()]

    def plugin_config(self, name: str):
        return getattr(self.config, name)

    def generator(self, *salt: int) -> torch.Generator:
        """A torch RNG seeded by the run seed, the step and ``salt``: reproducible on resume."""
        g = torch.Generator()
        # A refill batch (sample_round > 0) gets streams of its own; round 0 keeps the original formula.
        # (hash(-1) == hash(-2) in CPython, so the round goes in as a nested tuple of non-negative ints)
        key = (self.config.seed, self.step) if not self.sample_round else (self.config.seed, self.step, (0x5A3D, self.sample_round))
        g.manual_seed(hash(key + tuple(salt)) & 0x7FFFFFFFFFFFFFFF)
        return g

    @staticmethod
    def salt(namespace: str, k: int = 0) -> int:
        """A seed salt owned by ``namespace`` (use your plugin name): ``ctx.salt("dapo", 1)``.

        Stable across processes and Python runs (a hash of the text, not ``hash()``),
        so two plugins that pick the same small ``k`` still get different streams.
        """
        import hashlib

        if not isinstance(namespace, str) or not namespace:
            raise ValueError(f"salt namespace must be a non-empty string, got {namespace!r}")
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"salt k must be an int, got {k!r}")
        digest = hashlib.blake2b(f"{namespace}\0{k}".encode(), digest_size=7).digest()
        return int.from_bytes(digest, "big")

    def sampling_seed(self, request: RolloutRequest) -> int:
        """The seed of one generate call: run seed, step and ``request.extras["seed_salt"]``.

        Without a salt every generate call of a step draws the same random stream,
        so a plugin that samples twice in a step (drafts, then refinements; hinted
        re-samples) gives its extra request a salt of its own.
        """
        salt = request.extras.get("seed_salt")
        # Under data parallelism each rank draws its own stream (rank 0 keeps the single-process seed).
        by_rank = (_RANK_SALT, self.rank) if self.rank else ()
        if salt is None:
            return self.generator(1, *by_rank).initial_seed()
        if isinstance(salt, bool) or not isinstance(salt, int):
            raise TypeError(f'request.extras["seed_salt"] must be an int, got {salt!r}')
        return self.generator(1, salt, *by_rank).initial_seed()

    # data parallelism: which process this is, and a collective for plugin figures
    @property
    def rank(self) -> int:
        """This process's index (0 with one process)."""
        return self.accelerator.process_index if self.accelerator is not None else 0

    @property
    def world_size(self) -> int:
        """The number of training processes (1 without data parallelism)."""
        return self.accelerator.num_processes if self.accelerator is not None else 1

    def all_reduce(self, value, op: str = "mean"):
        """``value`` (number or tensor) combined over every rank: op = sum, mean, max or min.

        A collective: every rank must call it, in the same order. With one
        process it returns the value (a number as a float).
        """
        from .trainer.reduce import all_reduce

        return all_reduce(self, value, op)

    # sampling helpers for wrappers: the inner path, without re-entering zoo_rollout
    def score(self, rollouts: Rollouts) -> Rollouts:
        rollouts.rewards = self.hooks.rewards(self, rollouts)
        return rollouts

    def sample(self, request: RolloutRequest) -> Rollouts:
        return self.score(self.hooks.generate(self, request))

    # advantage helpers
    def normalize(self, values: torch.Tensor, groups: Groups) -> torch.Tensor:
        """(values - centre) / scale with the active centre and scale hooks."""
        center = self.hooks.group_center(self, values, groups)
        return (values - center) / self.hooks.group_scale(self, values, groups, center)

    def reward_weights(self, rollouts: Rollouts) -> dict[str, float]:
        given = self.config.reward.weights
        missing = sorted(set(given) - set(rollouts.rewards))
        if missing:
            raise cfg.ConfigError(
                f"reward.weights names column(s) {missing} that no reward hook produced "
                f"(columns: {sorted(rollouts.rewards)})"
            )
        return {k: float(given.get(k, 1.0)) for k in rollouts.rewards}

    def compute_advantages(self, rollouts: Rollouts) -> Rollouts:
        if not rollouts.rewards:
            raise cfg.ConfigError("no reward columns: enable reward.builtin or a reward plugin")
        rollouts.advantages = self.hooks.aggregate_rewards(self, rollouts, self.reward_weights(rollouts)).float()
        rollouts.in_loss = self.hooks.select_for_loss(self, rollouts).bool()
        return rollouts


def load_config(source: str | Path | dict, overrides: list[str] | None = None, extra_plugins: dict | None = None):
    """Read and validate a run config; returns (config, plugin manager).

    ``extra_plugins`` maps names to plugin objects to register without an
    entry point (tests, notebooks); they are active like named plugins.
    """
    raw = cfg.read_toml(source) if not isinstance(source, dict) else source
    raw = cfg.apply_overrides(raw, overrides or [])
    names = raw.get("plugins", [])
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise cfg.ConfigError(f"plugins: expected a list of plugin names, got {names!r}")
    owners = (raw.get("run") or {}).get("hook_owners") or {}
    pm = build_manager(names, owners, extra_plugins)
    sections = Hooks(pm).per_plugin("zoo_config_model")
    for name, model in (extra_plugins or {}).items():
        if name not in sections and name in raw:
            raise cfg.ConfigError(f"section [{name}] is given but plugin {name!r} declares no config model")
    config = cfg.validate(raw, sections)
    check_whole_config(config, pm)
    return config, pm


def make_context(source, overrides=None, extra_plugins=None, **kwargs) -> RunContext:
    config, pm = load_config(source, overrides, extra_plugins)
    return RunContext(config=config, hooks=Hooks(pm), **kwargs)
