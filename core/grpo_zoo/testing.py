"""Contract test kit for plugin authors (a pytest plugin, loaded automatically with grpo-zoo).

Fixtures:
- ``zoo_context(plugins=..., config=...)``: a RunContext with the given plugin
  objects (or installed plugin names) active, no model loaded.
- ``zoo_train_step(plugins=..., config=..., steps=1)``: runs real training steps
  on a tiny random-weight model through every hook; returns a :class:`StepResult`.
- ``zoo_check_plugin(plugin)``: asserts the plugin's hook implementations
  match the specs and its config model and state dict behave.
- ``zoo_fake_endpoint(reply)``: a local OpenAI-compatible server whose answer
  text is ``reply(request_body)`` (see :mod:`grpo_zoo.fake_endpoint`); closed
  after the test.

A kit reward column ``kit/even_tokens`` (share of even token ids) gives random
models rewards with spread, so advantages and the loss are non-zero.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from .context import make_context
from .hookspecs import hookimpl
from .contract import check_plugin
from .fake_endpoint import FakeEndpoint
from .trainer.rundir import read_jsonl


class KitReward:
    """A reward that a random-weight model earns unevenly, so groups have mixed rewards."""

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        vals = [sum(1 for t in c if t % 2 == 0) / max(len(c), 1) for c in rollouts.completion_ids]
        return {"kit/even_tokens": torch.tensor(vals)}


BASE_CONFIG = {
    "model": "tiny-random",
    "seed": 0,
    "task": {"source": "reasoning_gym", "name": "basic_arithmetic", "size": 16},
    "sampling": {"group_size": 3, "max_new_tokens": 8, "temperature": 1.0},
    "train": {"steps": 1, "prompts_per_step": 2, "micro_batch_size": 4, "lr": 1e-3, "samples_per_step": 1},
}


def merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def _split(plugins) -> tuple[list[str], dict]:
    """Names and objects: ``{"name": obj_or_class}`` registers the object; ``{"name": "name"}`` (or a list
    entry) names an installed plugin, loaded from its entry point."""
    from .plugins import implemented_hooks

    if not isinstance(plugins, dict):
        return list(plugins or []), {}
    objects = {}
    for name, obj in plugins.items():
        if isinstance(obj, str):
            if obj != name:
                raise ValueError(
                    f"plugins={{{name!r}: {obj!r}}}: a string names an installed plugin and must equal its key "
                    f"(or pass the list [{obj!r}])"
                )
            continue
        if not implemented_hooks(obj):
            raise ValueError(f"plugins[{name!r}] = {obj!r} implements no grpo-zoo hook (a plugin object or class expected)")
        objects[name] = obj
    return list(plugins), objects


@dataclass
class StepResult:
    metrics: list[dict]
    run_dir: Path
    ctx: object

    @property
    def last(self) -> dict:
        return self.metrics[-1]


@pytest.fixture
def zoo_context():
    def make(plugins=None, config=None, **kwargs):
        names, objects = _split(plugins)
        raw = merge(BASE_CONFIG, config or {})
        raw["plugins"] = names + [n for n in raw.get("plugins", []) if n not in names]
        return make_context(raw, extra_plugins=objects, **kwargs)

    return make


@pytest.fixture
def zoo_train_step(tmp_path):
    from .trainer.loop import Trainer

    def run(plugins=None, config=None, steps: int = 1, kit_reward: bool = True, run_dir=None, resume=False):
        names, objects = _split(plugins)
        if kit_reward:
            objects.setdefault("kit_reward", KitReward())
            names.append("kit_reward")
        raw = merge(BASE_CONFIG, config or {})
        raw.setdefault("train", {})["steps"] = steps
        raw["plugins"] = names + [n for n in raw.get("plugins", []) if n not in names]
        ctx = make_context(raw, extra_plugins=objects)
        out = Path(run_dir) if run_dir else tmp_path / "run"
        n = 1
        while run_dir is None and out.exists():  # another call in the same test: a fresh folder, never a mixed run
            n += 1
            out = tmp_path / f"run-{n}"
        Trainer(ctx, out, resume=resume, progress=False).run()
        return StepResult(read_jsonl(out / "metrics.jsonl"), out, ctx)

    return run


@pytest.fixture
def zoo_check_plugin():
    return check_plugin


@pytest.fixture
def zoo_fake_endpoint():
    servers = []

    def start(reply) -> FakeEndpoint:
        servers.append(FakeEndpoint(reply))
        return servers[-1]

    yield start
    for s in servers:
        s.close()


def roundtrip_state(ctx, plugin_name: str):
    """The plugin's state after a round trip through the checkpoint format (JSON + safetensors, no
    pickle), loaded back into ``ctx``; a state outside the contract raises CheckpointError."""
    import tempfile

    from .trainer import statefile

    states = ctx.hooks.per_plugin("zoo_state_dict", ctx=ctx)
    assert plugin_name in states, f"{plugin_name} returned no state"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        statefile.save({"plugins": {plugin_name: states[plugin_name]}}, tmp / "s.json", tmp / "s.safetensors")
        restored = statefile.load(tmp / "s.json", tmp / "s.safetensors")["plugins"][plugin_name]
    ctx.hooks.load_state_dicts(ctx, {plugin_name: restored})
    return restored
