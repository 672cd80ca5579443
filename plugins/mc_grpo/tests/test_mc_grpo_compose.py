"""MC-GRPO together with other plugins: per-prompt budgets from another plugin, and GDPO."""
import pytest
import torch

from grpo_zoo import Groups, Task, hookimpl
from grpo_zoo.advantages import standardize
from grpo_zoo_mc_grpo import MCGRPO, mc_advantages


class RaggedBudgets:
    """A stand-in for a budget planner (knapsack): the first tasks get 2, 4 and 3 rollouts."""

    @hookimpl
    def zoo_plan_budget(self, ctx, tasks, group_size):
        return [2, 4, 3][: len(tasks)]


def tasks(n):
    return [Task(id=f"t{k}", prompt="1+1=?", answer="2") for k in range(n)]


def test_plus_one_applies_to_every_planned_budget(zoo_context):
    alone = zoo_context(plugins={"ragged": RaggedBudgets()})
    assert alone.hooks.plan_budget(alone, tasks(3), 3) == [2, 4, 3]
    both = zoo_context(plugins={"mc_grpo": MCGRPO(), "ragged": RaggedBudgets()})
    assert both.hooks.plan_budget(both, tasks(3), 3) == [3, 5, 4]
    uniform = zoo_context(plugins=["mc_grpo"], config={"sampling": {"group_size": 2}})
    assert uniform.hooks.plan_budget(uniform, tasks(3), 2) == [3, 3, 3]


def test_training_with_ragged_budgets(zoo_train_step):
    result = zoo_train_step(
        plugins={"mc_grpo": MCGRPO, "ragged": RaggedBudgets()}, config={"train": {"prompts_per_step": 3}}
    )
    m = result.last
    assert m["rollouts"] == 3 + 5 + 4
    assert m["rollouts_in_loss"] == 2 + 4 + 3  # each prompt's planned budget reaches the loss
    assert m["mc_grpo/pivots_dropped"] == 3


def test_gdpo_normalizes_each_column_with_median_and_mad(zoo_context, make_rollouts):
    pytest.importorskip("grpo_zoo_gdpo")
    ctx = zoo_context(plugins=["mc_grpo", "gdpo"])
    a, b = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5], [0.0, 0.0, 2.0, 3.0, 0.0, 1.0, 1.0]
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0, 1, 1, 1, 1], {"a": a, "b": b}))
    groups = Groups.from_sizes([3, 4])
    per_column = mc_advantages(torch.tensor(a).double(), groups) + mc_advantages(torch.tensor(b).double(), groups)
    assert torch.allclose(batch.advantages.double(), standardize(per_column, 1e-4), atol=1e-5)
    # total a + b = [1, 0, 2 | 4, 1, 1, 1.5]: pivots at 0 (median 1) and 4 (lower middle 1, first)
    assert batch.in_loss.long().tolist() == [0, 1, 1, 1, 0, 1, 1]


def test_training_with_gdpo(zoo_train_step):
    pytest.importorskip("grpo_zoo_gdpo")
    result = zoo_train_step(plugins=["mc_grpo", "gdpo"], config={"reward": {"builtin": ["correct", "format"]}})
    m = result.last
    G, P = 3, 2
    assert m["rollouts"] == (G + 1) * P and m["rollouts_in_loss"] == G * P
    assert {"mc_grpo/pivots_dropped", "mc_grpo/sign_flip_rate"} <= set(m)
    assert any(k.startswith("gdpo/") for k in m)
