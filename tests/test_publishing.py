"""Issue 10: in a fresh virtual environment with only core installed, a scaffolded plugin and the
third-party example install with pip, pass their own tests, show up in `grpo-zoo plugins`, and
take part in a run only when named."""
import json
import shutil

import pytest

from grpo_zoo.scaffold import parse_hooks, scaffold
from grpo_zoo.trainer.rundir import read_jsonl

from .publishing_helpers import ROOT, FreshEnv

FIRST_PARTY = sorted(p.name for p in (ROOT / "plugins").iterdir() if (p / "pyproject.toml").exists())


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("publish")
    fresh = FreshEnv(base)
    before = fresh.plugins()
    assert all(row["builtin"] for row in before.values()), f"not only core: {sorted(before)}"
    made = scaffold("length_pen", base, "reward,advantage,sampling,curriculum,loss")
    fresh.pip_install(made)
    rloo = base / "rloo-src"  # a copy: building in the checkout would leave build/ behind
    shutil.copytree(ROOT / "examples" / "third_party_plugin", rloo,
                    ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    fresh.pip_install(rloo)
    return fresh, made


def test_fresh_env_has_core_and_the_two_plugins_only(env):
    fresh, _ = env
    ours = {d for d in fresh.distributions() if d.startswith("grpo-zoo")}
    assert ours == {"grpo-zoo", "grpo-zoo-length-pen", "grpo-zoo-rloo"}
    location = fresh.run(["-c", "import grpo_zoo; print(grpo_zoo.__file__)"]).stdout.strip()
    assert str(fresh.base / "venv") in location  # the pip-installed core, not this checkout


def test_both_listed_by_grpo_zoo_plugins(env):
    fresh, _ = env
    rows = fresh.plugins()
    assert rows["length_pen"]["distribution"] == "grpo-zoo-length-pen"
    assert rows["rloo"]["distribution"] == "grpo-zoo-rloo"
    assert "zoo_group_center" in rows["rloo"]["hooks"] and rows["rloo"]["builtin"] is False
    assert {"zoo_reward", "zoo_rollout", "zoo_observe"} <= set(rows["length_pen"]["hooks"])
    assert not set(FIRST_PARTY) & set(rows)  # none of the zoo's own plugins is installed here


@pytest.mark.parametrize("which", ["scaffold", "third_party"])
def test_own_tests_pass_when_installed(env, which, tmp_path):
    fresh, made = env
    src = made / "tests" if which == "scaffold" else ROOT / "examples" / "third_party_plugin" / "tests"
    tests = tmp_path / "tests"
    shutil.copytree(src, tests)  # away from the source tree: the installed copy must be what is imported
    out = fresh.run(["-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)], cwd=tmp_path, check=False)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    assert " passed" in out.stdout


def test_installed_plugin_used_in_a_run_only_when_named(env, tmp_path):
    fresh, _ = env
    config = tmp_path / "run.toml"
    config.write_text(
        'model = "tiny-random"\n'
        '[task]\nsource = "reasoning_gym"\nname = "basic_arithmetic"\nsize = 8\n'
        '[sampling]\ngroup_size = 3\nmax_new_tokens = 6\n'
        '[reward]\nbuiltin = ["correct", "length"]\nlength_target = 4\n'
        '[train]\nsteps = 1\nprompts_per_step = 2\ncheckpoint_every = 0\n'
    )
    for name, extra in (("named", ["--set", 'plugins=["rloo"]']), ("plain", [])):
        fresh.run(["-m", "grpo_zoo", "train", str(config), "--out", str(tmp_path / name), *extra],
                  cwd=tmp_path)
    named, plain = (read_jsonl(tmp_path / n / "metrics.jsonl")[-1] for n in ("named", "plain"))
    assert any(k.startswith("rloo/") for k in named)
    assert not any(k.startswith("rloo/") for k in plain)
    manifests = {n: json.loads((tmp_path / n / "manifest.json").read_text()) for n in ("named", "plain")}
    assert "rloo" in json.dumps(manifests["named"]["plugins"]) and "rloo" not in json.dumps(manifests["plain"]["plugins"])


def test_scaffold_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Bad-Name"):
        scaffold("Bad-Name", tmp_path)
    with pytest.raises(ValueError, match="'rewards'"):
        parse_hooks("rewards")
    scaffold("twice", tmp_path)
    with pytest.raises(FileExistsError):
        scaffold("twice", tmp_path)
