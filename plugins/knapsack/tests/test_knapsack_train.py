"""Real training steps on the tiny model: ragged budgets reach the advantage and loss plugins."""
import math
import shutil

import pytest
import torch
from grpo_zoo import hookimpl
from grpo_zoo.plugins import installed_entry_points

from grpo_zoo_knapsack.plugin import KnapsackPlugin

# Four tasks, every one seen once per step (task.size = prompts_per_step = 4), so from
# step 1 on every task has an estimate from the previous epoch.
POOL = {
    "task": {"size": 4},
    "train": {"prompts_per_step": 4, "micro_batch_size": 8},
    "sampling": {"group_size": 4, "max_new_tokens": 6},
}
SUCCESS = {0: 0.0, 1: 0.25, 2: 0.5, 3: 1.0}  # task index -> share of its group that succeeds


class ScriptedSuccess:
    """Reward column ``test/success``: the first round(share * size) rollouts of each group succeed."""

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        sizes = rollouts.groups.counts.tolist()
        seen = [0] * len(rollouts.tasks)
        out = []
        for g in rollouts.group.tolist():
            share = SUCCESS[int(rollouts.tasks[g].id.rsplit("/", 1)[1])]
            out.append(1.0 if seen[g] < math.floor(share * sizes[g] + 0.5) else 0.0)
            seen[g] += 1
        return {"test/success": torch.tensor(out)}


def knapsack_rows(result):
    return [{k: v for k, v in m.items() if k.startswith("knapsack/")} for m in result.metrics]


def test_knapsack_alone_multi_step_and_resume(zoo_train_step, tmp_path):
    cfg = {**POOL, "train": {**POOL["train"], "checkpoint_every": 1}}
    res = zoo_train_step(["knapsack"], cfg, steps=3, run_dir=tmp_path / "full")
    first, later = res.metrics[0], res.metrics[1:]
    assert first["knapsack/estimated_frac"] == 0.0
    assert first["knapsack/budget_min"] == first["knapsack/budget_max"] == 4  # uniform in epoch 0
    for m in later:
        assert m["knapsack/estimated_frac"] == 1.0
        assert m["knapsack/budget_total"] <= 16
        assert m["rollouts"] == m["knapsack/budget_total"]
        assert m["knapsack/value"] >= m["knapsack/value_uniform"] - 1e-12
        assert 0.0 <= m["frac_zero_std"] <= 1.0
        assert math.isfinite(m["loss"])
    assert len(res.ctx.hooks.pm.get_plugin("knapsack").table) == 4  # statistics kept across epochs

    # resume from the checkpoint after step 1 (a copy of the run with its `latest` pointer moved back)
    cut = tmp_path / "cut"
    shutil.copytree(res.run_dir, cut)
    (cut / "checkpoints" / "latest").write_text("step-000001")
    resumed = zoo_train_step(["knapsack"], cfg, steps=3, run_dir=cut, resume=True)
    # step 2's budgets come from the table of steps 0-1: only a restored table reproduces them
    assert len(resumed.metrics) == 3
    assert knapsack_rows(resumed)[2] == knapsack_rows(res)[2]
    assert resumed.metrics[2]["knapsack/estimated_frac"] == 1.0


def test_ragged_budgets_with_scripted_rewards(zoo_train_step):
    cfg = {**POOL, "knapsack": {"reward_column": "test/success"}}
    res = zoo_train_step({"knapsack": KnapsackPlugin, "scripted": ScriptedSuccess()}, cfg, steps=2)
    for m in res.metrics[1:]:
        # p = 0 and p = 1 get N_low = 2; the two mixed tasks share the other 12 unevenly
        assert m["knapsack/budget_min"] == 2 and m["knapsack/budget_max"] > 4
        assert m["knapsack/tasks_p0"] == 1 and m["knapsack/tasks_p1"] == 1
        assert m["rollouts"] == 16 and m["knapsack/budget_gini"] > 0


class Recorder:
    """Keeps each step's groups, advantages, loss selection and the knapsack plan behind them."""

    def __init__(self):
        self.steps = []

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        plan = ctx.hooks.pm.get_plugin("knapsack").plan
        self.steps.append(
            {
                "sizes": rollouts.groups.counts.tolist(),
                "group": rollouts.group.clone(),
                "adv": rollouts.advantages.double().clone(),
                "in_loss": rollouts.in_loss.clone(),
                "success": rollouts.rewards["test/success"].clone(),
                "planned": plan.budgets.tolist(),
            }
        )
        return {}


def test_with_mc_grpo_and_gdpo(zoo_train_step):
    pytest.importorskip("grpo_zoo_mc_grpo")
    pytest.importorskip("grpo_zoo_gdpo")
    cfg = {**POOL, "knapsack": {"reward_column": "test/success"}}
    eps = installed_entry_points()
    plugins = {name: eps[name].load() for name in ("knapsack", "mc_grpo", "gdpo")}
    rec = Recorder()
    # only the scripted column, so that "flat" and "all-incorrect" are known exactly
    res = zoo_train_step({**plugins, "scripted": ScriptedSuccess(), "recorder": rec}, cfg, steps=3, kit_reward=False)
    assert {"knapsack", "mc_grpo", "gdpo"} <= set(res.ctx.plugin_names)
    first = res.metrics[0]
    assert first["knapsack/budget_min"] == first["knapsack/budget_max"] == 4
    assert first["rollouts"] == 4 * (4 + 1)  # MC-GRPO's wrapper adds one rollout per planned group (5: odd)
    for m, s in zip(res.metrics[1:], rec.steps[1:]):
        assert m["knapsack/budget_min"] == 2 and m["knapsack/budget_max"] > 4  # ragged groups downstream
        # every planned budget b reaches sampling as b + 1, or b + 2 where b + 1 would be even
        assert s["sizes"] == [b + 1 if b % 2 == 0 else b + 2 for b in s["planned"]]
        assert m["rollouts"] == sum(s["sizes"])
        for g, size in enumerate(s["sizes"]):
            mask = s["group"] == g
            assert int(s["in_loss"][mask].sum()) == size - 1  # one pivot per group
            wins = s["success"][mask]
            if bool((wins == wins[0]).all()):  # p = 0 and p = 1 tasks: a flat group gets exactly 0
                assert bool((s["adv"][mask] == 0).all())
            if bool((wins == 0).all()):  # all-incorrect: never a positive advantage
                assert bool((s["adv"][mask] <= 0).all())
        assert math.isfinite(m["loss"])
