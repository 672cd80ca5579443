"""examples/mix.toml: hooks from five papers in one run; every plugin's metrics show it at work."""
from pathlib import Path

import pytest

from grpo_zoo import hookimpl
from grpo_zoo.config import read_toml
from grpo_zoo.testing import merge

MIX = Path(__file__).resolve().parents[1] / "examples" / "mix.toml"
PLUGINS = ["knapsack", "mc_grpo", "gdpo", "igrpo", "hints"]

for name in PLUGINS:
    pytest.importorskip(f"grpo_zoo_{name}")


def tiny(raw: dict) -> dict:
    # The tiny random model never answers correctly: every group is "hard" for hints, and the
    # kit's even-token reward gives GDPO a column with spread.
    return merge(
        raw,
        {
            "model": "tiny-random",
            "task": {"size": 4},  # step 1 revisits step 0's tasks: knapsack has estimates
            "sampling": {"max_new_tokens": 8},
            "train": {"threads": 0},
        },
    )


class Recorder:
    """Keeps the groups that reached the advantage step, with their rewards and advantages."""

    def __init__(self):
        self.steps = []

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        plan = ctx.hooks.pm.get_plugin("knapsack").plan
        self.steps.append((rollouts.groups, dict(rollouts.rewards), rollouts.advantages.double(), plan))
        return {}


def test_mix_two_steps_every_plugin_at_work(zoo_train_step):
    raw = tiny(read_toml(MIX))
    assert raw["plugins"] == PLUGINS
    rec = Recorder()
    result = zoo_train_step(plugins={"recorder": rec}, config=raw, steps=2)
    first, last = result.metrics
    for prefix in ("knapsack/", "mc_grpo/", "gdpo/", "igrpo/", "hint/"):
        assert any(k.startswith(prefix) for k in last), f"no {prefix} metrics in {sorted(last)}"
    # knapsack: uniform at step 0, then budgets from estimates (ragged within [2, 12])
    assert 2 <= last["knapsack/budget_min"] <= last["knapsack/budget_max"] <= 12
    # mc_grpo: one pivot per group leaves the loss
    assert last["rollouts"] - last["rollouts_in_loss"] == last["mc_grpo/pivots_dropped"] == 4
    # igrpo: drafts were scored and only refinements were trained on
    assert "igrpo/draft_reward" in last and "igrpo/refine_reward" in last
    # hints: every group of a random model is all-incorrect
    assert last["hint/hard_prompts"] >= 1
    # gdpo ran its aggregation on both reward columns (+ the kit column)
    assert "gdpo/distinct_adv_per_group" in last
    for row in result.metrics:
        assert row["loss"] == row["loss"]  # not NaN
    # every group the median centres is odd (MC-GRPO rounds the budget so iGRPO's refinements are),
    # and a group whose reward vectors are all equal gets exactly 0 (GDPO's batch step only scales)
    for groups, rewards, adv, plan in rec.steps:
        assert all(int(c) % 2 == 1 for c in groups.counts if int(c) > 0), groups.counts
        for g in range(groups.num_groups):
            m = groups.index == g
            if all(bool((v[m] == v[m][0]).all()) for v in rewards.values()):
                assert bool((adv[m] == 0).all())
        # knapsack valued each budget by the refinements iGRPO trains of it, not by the whole budget
        assert plan.trained is not None and plan.trained(6) == result.ctx.hooks.trained_rollouts(result.ctx, 6) < 6
    names = [n for n, _ in result.ctx.hooks.pm.list_name_plugin()]
    assert set(PLUGINS) <= set(names)
    manifest = (result.run_dir / "manifest.json").read_text()
    for name in PLUGINS:
        assert f'"name": "{name}"' in manifest
