"""Checklist item 1: every first-party plugin installs alone into an environment that has only core
(`pip install plugins/<name>`) and then shows up in `grpo-zoo plugins`."""
import re
import shutil
import tomllib

import pytest

from .publishing_helpers import ROOT, FreshEnv

PLUGINS = sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return FreshEnv(tmp_path_factory.mktemp("alone"))


@pytest.mark.parametrize("folder", PLUGINS, ids=lambda p: p.name)
def test_installs_alone_and_is_listed(env, folder, tmp_path):
    meta = tomllib.loads((folder / "pyproject.toml").read_text())["project"]
    dist, entry_points = meta["name"], meta["entry-points"]["grpo_zoo"]
    assert dist == "grpo-zoo-" + folder.name.replace("_", "-")
    assert any(re.match(r"grpo-zoo\b", d) for d in meta["dependencies"])
    src = tmp_path / folder.name  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(folder, src, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "tests"))
    env.pip_install(src)
    try:
        rows = env.plugins()
        listed = {name for name, row in rows.items() if not row["builtin"]}
        assert listed == set(entry_points), f"{dist} alone lists {sorted(listed)}"
        for name in entry_points:
            assert rows[name]["distribution"] == dist and rows[name]["hooks"]
    finally:
        env.run(["-m", "pip", "uninstall", "-y", "-q", dist])
