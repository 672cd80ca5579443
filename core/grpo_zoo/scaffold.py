"""``grpo-zoo new-plugin``: a ready-to-publish plugin package whose tests pass straight away."""
from __future__ import annotations

import inspect
import keyword
import re
import textwrap
from pathlib import Path

from . import __version__, hookspecs

FAMILIES = {
    "curriculum": ["zoo_observe"],
    "sampling": ["zoo_plan_budget", "zoo_build_prompt", "zoo_rollout", "zoo_accept_groups"],
    "reward": ["zoo_reward"],
    "advantage": ["zoo_group_center", "zoo_group_scale", "zoo_aggregate_rewards", "zoo_select_for_loss"],
    "loss": ["zoo_aggregate_loss"],
    "lifecycle": ["zoo_step_metrics", "zoo_state_dict", "zoo_load_state_dict"],
}
ALWAYS = ["zoo_config_model", "zoo_step_metrics", "zoo_state_dict", "zoo_load_state_dict"]

# Working bodies: each hook does something small and real that the generated tests check.
BODIES = {
    "zoo_config_model": "return Config",
    "zoo_observe": "self.observed += len(rollouts)",
    "zoo_rollout": "result = yield\nresult.metrics[\"{name}/rollouts\"] = len(result)\nreturn result",
    "zoo_reward": (
        "cfg = ctx.config.{name}\n"
        "lengths = rollouts.completion_lengths().float()\n"
        "return {{\"{name}/brevity\": (1.0 - lengths / cfg.max_tokens).clamp(min=0.0)}}"
    ),
    "zoo_plan_budget": (
        "# a dynamic-sampling refill passes budget_left: never plan more than it\n"
        "per_task = group_size if budget_left is None else max(1, min(group_size, budget_left // max(len(tasks), 1)))\n"
        "return [per_task] * len(tasks)"
    ),
    "zoo_build_prompt": (
        "if not isinstance(task.prompt, str):\n"
        "    return task.prompt\n"
        "return [{{\"role\": \"user\", \"content\": task.prompt}}]"
    ),
    "zoo_accept_groups": "return torch.ones(len(rollouts.tasks), dtype=torch.bool)  # keep every group; False rejects one",
    "zoo_aggregate_rewards": "return sum_then_normalize(ctx, rollouts, weights)",
    "zoo_select_for_loss": "return torch.ones(len(rollouts), dtype=torch.bool)",
    "zoo_group_center": "return segment_mean(values, groups)",
    "zoo_group_scale": "return segment_std(values, groups) + ctx.config.{name}.eps",
    "zoo_aggregate_loss": (
        "mask = inputs.mask.to(per_token.dtype)\n"
        "return (per_token.expand_as(mask) * mask).sum() / max(inputs.total_tokens, 1.0)"
    ),
    "zoo_step_metrics": "self.steps += 1\nreturn {{\"{name}/steps\": self.steps, \"{name}/observed\": self.observed}}",
    "zoo_state_dict": "return {{\"steps\": self.steps, \"observed\": self.observed}}",
    "zoo_load_state_dict": "self.steps = state[\"steps\"]\nself.observed = state[\"observed\"]",
}
WRAPPERS = {"zoo_rollout"}


def parse_hooks(spec: str | None) -> list[str]:
    hooks = list(ALWAYS)
    for item in filter(None, (s.strip() for s in (spec or "").split(","))):
        if item in FAMILIES:
            hooks += FAMILIES[item]
        elif item in BODIES:
            hooks.append(item)
        else:
            raise ValueError(
                f"--hooks: unknown family or hook {item!r}; families: {', '.join(FAMILIES)}; "
                f"hooks: {', '.join(sorted(BODIES))}"
            )
    return list(dict.fromkeys(hooks))


def _method(hook: str, name: str) -> str:
    params = ", ".join(["self", *inspect.signature(getattr(hookspecs, hook)).parameters])
    deco = "@hookimpl(wrapper=True)" if hook in WRAPPERS else "@hookimpl"
    doc = (getattr(hookspecs, hook).__doc__ or "").strip().splitlines()[0]
    body = BODIES[hook].format(name=name)
    return f"{deco}\ndef {hook}({params}):\n    \"\"\"{doc}\"\"\"\n{textwrap.indent(body, '    ')}\n"


def render(name: str, hooks: list[str]) -> dict[str, str]:
    dist = "grpo-zoo-" + name.replace("_", "-")
    pkg = "grpo_zoo_" + name
    cls = "".join(p.capitalize() for p in name.split("_")) + "Plugin"
    methods = "\n".join(textwrap.indent(_method(h, name), "    ") for h in hooks)
    plugin = f'''"""{name}: a grpo-zoo plugin."""
import torch  # noqa: F401  (used by most hook bodies)
from pydantic import Field

from grpo_zoo import hookimpl
from grpo_zoo.config import Section
from grpo_zoo.segments import segment_mean, segment_std  # noqa: F401
from grpo_zoo.advantages import sum_then_normalize  # noqa: F401


class Config(Section):
    """The [{name}] section of a run config."""

    eps: float = Field(1e-4, gt=0, description="added to the group scale")
    max_tokens: int = Field(64, ge=1, description="completion length at which the brevity reward reaches 0")


class {cls}:
    """One instance per run: state lives on self and is checkpointed."""

    def __init__(self):
        self.steps = 0
        self.observed = 0

{methods}'''
    test = f'''from grpo_zoo.testing import roundtrip_state
from {pkg}.plugin import {cls}


def test_contract(zoo_check_plugin):
    assert set(zoo_check_plugin({cls})) == set({hooks!r})


def test_training_step(zoo_train_step):
    result = zoo_train_step(plugins={{"{name}": {cls}}}, steps=2)
    assert result.last["{name}/steps"] == 2
    assert result.last["loss"] == result.last["loss"]  # not NaN


def test_state_roundtrip(zoo_context):
    ctx = zoo_context(plugins={{"{name}": {cls}}})
    assert roundtrip_state(ctx, "{name}") == {{"steps": 0, "observed": 0}}
'''
    pyproject = f'''[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{dist}"
version = "0.1.0"
description = "A grpo-zoo plugin"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["grpo-zoo>={__version__}"]

[project.optional-dependencies]
test = ["pytest>=8"]

[project.entry-points.grpo_zoo]
{name} = "{pkg}.plugin:{cls}"

[tool.setuptools.packages.find]
include = ["{pkg}*"]
'''
    readme = f"""# {dist}

A grpo-zoo plugin. Describe the method in two sentences and cite its paper (title, arXiv id).

Use it: `pip install {dist}`, then name it in a run config:

```toml
plugins = ["{name}"]

[{name}]
eps = 1e-4
max_tokens = 64
```

Hooks: {", ".join(hooks)}.

Test it: `pip install -e ".[test]" && pytest tests` (the grpo-zoo contract test kit runs a real
training step on a tiny model).
List it in the catalog: add `registry/plugins/{name}.toml` to grpo-zoo (see its README).
"""
    return {
        "pyproject.toml": pyproject,
        "README.md": readme,
        f"{pkg}/__init__.py": f'"""{name}: a grpo-zoo plugin."""\n__version__ = "0.1.0"\n',
        f"{pkg}/plugin.py": plugin,
        f"tests/test_{name}.py": test,
    }


def scaffold(name: str, dest: str | Path, hooks_spec: str | None = None) -> Path:
    if not re.fullmatch(r"[a-z][a-z0-9_]*", name) or keyword.iskeyword(name):
        raise ValueError(f"plugin name {name!r}: use lowercase letters, digits and underscores, starting with a letter")
    hooks = parse_hooks(hooks_spec)
    root = Path(dest) / ("grpo-zoo-" + name.replace("_", "-"))
    if root.exists():
        raise FileExistsError(f"{root} already exists; choose another --dir or remove it")
    for rel, text in render(name, hooks).items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root
