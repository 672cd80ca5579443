"""`grpo-zoo new-plugin`: whole hook families, and a "next:" line whose commands work."""
import importlib
import sys

from grpo_zoo import cli, hookspecs
from grpo_zoo.plugins import _first_hooks
from grpo_zoo.scaffold import FAMILIES, parse_hooks, scaffold


def test_families_cover_their_hooks():
    # before the fix: sampling was only zoo_rollout, advantage only centre and scale
    assert {"zoo_plan_budget", "zoo_build_prompt", "zoo_rollout", "zoo_accept_groups"} <= set(parse_hooks("sampling"))
    assert {"zoo_group_center", "zoo_group_scale", "zoo_aggregate_rewards", "zoo_select_for_loss"} <= set(
        parse_hooks("advantage"))
    assert all(h in dir(hookspecs) for fam in FAMILIES.values() for h in fam)


def test_next_line_installs_the_test_extra(tmp_path, capsys):
    assert cli.main(["new-plugin", "demo_ds", "--dir", str(tmp_path), "--hooks", "sampling"]) == 0
    out = capsys.readouterr().out
    root = tmp_path / "grpo-zoo-demo-ds"
    assert f'next: pip install -e "{root}[test]" && pytest {root / "tests"}' in out
    assert 'test = ["pytest>=8"]' in (root / "pyproject.toml").read_text()


def test_generated_sampling_and_advantage_plugin_trains(tmp_path, zoo_check_plugin, zoo_train_step):
    root = scaffold("demo_full", tmp_path, "sampling,advantage")
    sys.path.insert(0, str(root))
    try:
        mod = importlib.import_module("grpo_zoo_demo_full.plugin")
        cls = mod.DemoFullPlugin
        hooks = set(zoo_check_plugin(cls))
        assert {"zoo_plan_budget", "zoo_accept_groups", "zoo_aggregate_rewards", "zoo_select_for_loss"} <= hooks
        owners = {h.removeprefix("zoo_"): "demo_full" for h in hooks if h in _first_hooks() and h != "zoo_rollout"}
        res = zoo_train_step(plugins={"demo_full": cls}, config={"run": {"hook_owners": owners}}, steps=1)
        assert res.last["rollouts"] == 6 and res.last["demo_full/rollouts"] == 6
    finally:
        sys.path.remove(str(root))
        for name in [m for m in sys.modules if m.startswith("grpo_zoo_demo_full")]:
            del sys.modules[name]
