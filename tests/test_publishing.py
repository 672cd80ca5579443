"""Issue 10: a scaffolded plugin and the third-party example install with pip, pass their own tests,
show up in `grpo-zoo plugins`, and take part in a run only when named."""
import shutil
from pathlib import Path

import pytest

from grpo_zoo.scaffold import parse_hooks, scaffold

from .publishing_helpers import listed_plugins, pip_install, run_with

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    base = tmp_path_factory.mktemp("publish")
    target = base / "site"
    made = scaffold("length_pen", base, "reward,advantage,sampling,curriculum,loss")
    pip_install(made, target)
    pip_install(ROOT / "examples" / "third_party_plugin", target)
    return base, made, target


def test_both_listed_by_grpo_zoo_plugins(installed):
    _, _, target = installed
    rows = listed_plugins(target)
    assert rows["length_pen"]["distribution"] == "grpo-zoo-length-pen"
    assert rows["rloo"]["distribution"] == "grpo-zoo-rloo"
    assert "zoo_group_center" in rows["rloo"]["hooks"] and rows["rloo"]["builtin"] is False
    assert {"zoo_reward", "zoo_rollout", "zoo_observe"} <= set(rows["length_pen"]["hooks"])


@pytest.mark.parametrize("which", ["scaffold", "third_party"])
def test_own_tests_pass_when_installed(installed, which, tmp_path):
    _, made, target = installed
    src = made / "tests" if which == "scaffold" else ROOT / "examples" / "third_party_plugin" / "tests"
    tests = tmp_path / "tests"
    shutil.copytree(src, tests)  # away from the source tree: the installed copy must be what is imported
    out = run_with(target, ["-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout


def test_installed_plugin_used_in_a_run_only_when_named(installed, monkeypatch, zoo_train_step, tmp_path):
    _, _, target = installed
    monkeypatch.syspath_prepend(str(target))
    named = zoo_train_step(plugins=["rloo"], steps=1, run_dir=tmp_path / "a")
    assert "rloo/singleton_groups" in named.last
    plain = zoo_train_step(steps=1, run_dir=tmp_path / "b")
    assert not any(k.startswith("rloo/") for k in plain.last)
    assert "rloo" not in [n for n, _ in plain.ctx.hooks.pm.list_name_plugin()]


def test_scaffold_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Bad-Name"):
        scaffold("Bad-Name", tmp_path)
    with pytest.raises(ValueError, match="'rewards'"):
        parse_hooks("rewards")
    scaffold("twice", tmp_path)
    with pytest.raises(FileExistsError):
        scaffold("twice", tmp_path)
