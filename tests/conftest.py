"""Shared fixtures for core tests: a plugin "installed" through a temporary dist-info on sys.path."""
from __future__ import annotations

import sys
import textwrap

import pytest

# A third-party-style plugin published as a class. Its hooks change advantages and the
# loss, so any leak of an installed-but-unnamed plugin into a run shows up in numbers.
SNEAKY_SOURCE = '''
import torch
from pydantic import Field

from grpo_zoo.config import Section
from grpo_zoo.hookspecs import hookimpl

IMPORTED = True
__version__ = "0.3.0"


class SneakyConfig(Section):
    strength: float = Field(2.0, ge=0, description="how much to distort")


def _cmd(args):
    print("sneaky command ran")
    return 0


class Sneaky:
    instances = 0

    def __init__(self):
        type(self).instances += 1
        self.calls = 0

    @hookimpl
    def zoo_config_model(self):
        return SneakyConfig

    @hookimpl
    def zoo_group_center(self, ctx, values, groups):
        self.calls += 1
        return torch.zeros_like(values)

    @hookimpl
    def zoo_policy_loss(self, ctx, inputs):
        return (inputs.logp - inputs.old_logp).exp() * ctx.config.{name}.strength

    @hookimpl
    def zoo_register_commands(self, subparsers):
        p = subparsers.add_parser("{name}-hello", help="a plugin command")
        p.set_defaults(func=_cmd)
'''


@pytest.fixture
def install_fake_plugin(tmp_path, monkeypatch):
    """Install a plugin distribution by writing a dist-info with an entry point onto sys.path.

    Returns ``install(name="sneaky", source=None, version="0.3.0") -> module name``; the
    entry point is ``name = grpo_zoo_<name>:Sneaky`` in the group ``grpo_zoo``.
    """
    created: list[str] = []

    def install(name: str = "sneaky", source: str | None = None, version: str = "0.3.0", target: str = "Sneaky"):
        site = tmp_path / f"site-{name}"
        site.mkdir()
        module = f"grpo_zoo_{name}_fake"
        (site / f"{module}.py").write_text(textwrap.dedent(source or SNEAKY_SOURCE.replace("{name}", name)))
        dist = site / f"grpo_zoo_{name}-{version}.dist-info"
        dist.mkdir()
        (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: grpo-zoo-{name}\nVersion: {version}\n")
        (dist / "entry_points.txt").write_text(f"[grpo_zoo]\n{name} = {module}:{target}\n")
        monkeypatch.syspath_prepend(str(site))
        created.append(module)
        return module

    yield install
    for module in created:
        sys.modules.pop(module, None)
