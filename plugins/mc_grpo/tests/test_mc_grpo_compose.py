"""MC-GRPO together with other plugins: per-prompt budgets from another plugin, and GDPO."""
import itertools

import pytest
import torch

from grpo_zoo import Groups, Task, hookimpl
from grpo_zoo.advantages import batch_scale
from grpo_zoo_mc_grpo import MCGRPO, mc_advantages, pivot_mask


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
    # +1, then odd budgets (even groups) rounded up to the next odd group: 2 -> 3, 4 -> 5, 3 -> 4 -> 5
    both = zoo_context(plugins={"mc_grpo": MCGRPO(), "ragged": RaggedBudgets()})
    assert both.hooks.plan_budget(both, tasks(3), 3) == [3, 5, 5]
    uniform = zoo_context(plugins=["mc_grpo"], config={"sampling": {"group_size": 2}})
    assert uniform.hooks.plan_budget(uniform, tasks(3), 2) == [3, 3, 3]


def test_even_groups_only_when_asked_and_then_warned(zoo_context):
    ctx = zoo_context(plugins={"mc_grpo": MCGRPO(), "ragged": RaggedBudgets()}, config={"mc_grpo": {"odd_groups": False}})
    with pytest.warns(UserWarning, match="even group of 4"):
        assert ctx.hooks.plan_budget(ctx, tasks(3), 3) == [3, 5, 4]


class KeepsHalf:
    """A sampling wrapper that returns only the second half of each budget (like iGRPO's refinements)."""

    @hookimpl(wrapper=True)
    def zoo_trained_rollouts(self, ctx, budget):
        n = yield
        return n - n // 2


def test_odd_rounding_counts_what_a_sampling_wrapper_returns(zoo_context):
    ctx = zoo_context(plugins={"mc_grpo": MCGRPO(), "ragged": RaggedBudgets(), "half": KeepsHalf()})
    budgets = ctx.hooks.plan_budget(ctx, tasks(3), 3)
    groups = [ctx.hooks.trained_rollouts(ctx, b) for b in budgets]
    assert all(g % 2 == 1 for g in groups), (budgets, groups)
    assert budgets == [5, 5, 5]  # 3 -> 2 returned (even) -> 4 -> 2 -> 5 -> 3


def expected_sign_excess(size: int, p: float = 0.5) -> float:
    """E[#positive - #negative advantages in the loss] of one group of binary rewards, exactly over all outcomes."""
    total = 0.0
    for bits in itertools.product([0.0, 1.0], repeat=size):
        r = torch.tensor(bits, dtype=torch.float64)
        g = Groups.from_sizes([size])
        adv = mc_advantages(r, g)
        keep = ~pivot_mask(adv, g)
        prob = p ** sum(bits) * (1 - p) ** (size - sum(bits))
        total += prob * float((adv[keep] > 0).sum() - (adv[keep] < 0).sum())
    return total


@pytest.mark.parametrize("group_size", [2, 3, 4, 5])
def test_planned_groups_balance_signs_at_p_half(zoo_context, group_size):
    ctx = zoo_context(plugins=["mc_grpo"], config={"sampling": {"group_size": group_size}})
    (size,) = ctx.hooks.plan_budget(ctx, tasks(1), group_size)
    assert size % 2 == 1
    assert expected_sign_excess(size) == pytest.approx(0.0, abs=1e-12)


def test_even_groups_favour_successes():
    # what the rounding prevents: the lower median rewards successes only in 50/50 groups
    assert expected_sign_excess(4) == pytest.approx(0.75)
    assert expected_sign_excess(6) == pytest.approx(0.9375)


def test_training_with_ragged_budgets(zoo_train_step):
    result = zoo_train_step(
        plugins={"mc_grpo": MCGRPO, "ragged": RaggedBudgets()}, config={"train": {"prompts_per_step": 3}}
    )
    m = result.last
    assert m["rollouts"] == 3 + 5 + 5  # 3 + 1 rounded up to an odd group
    assert m["rollouts_in_loss"] == 2 + 4 + 4  # at least each prompt's planned budget reaches the loss
    assert m["mc_grpo/pivots_dropped"] == 3


def test_gdpo_normalizes_each_column_with_median_and_mad(zoo_context, make_rollouts):
    pytest.importorskip("grpo_zoo_gdpo")
    ctx = zoo_context(plugins=["mc_grpo", "gdpo"])
    a, b = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.5], [0.0, 0.0, 2.0, 3.0, 0.0, 1.0, 1.0]
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0, 1, 1, 1, 1], {"a": a, "b": b}))
    groups = Groups.from_sizes([3, 4])
    per_column = mc_advantages(torch.tensor(a).double(), groups) + mc_advantages(torch.tensor(b).double(), groups)
    # the batch step only scales: no batch mean is subtracted under the median centre
    assert torch.allclose(batch.advantages.double(), batch_scale(per_column, 1e-4), atol=1e-5)
    # aggregated score S = [1000, 0, 2000 | 2000.998, -999.002, -0.998, 0]: the pivots are the
    # rollouts at each group's (lower) median of S, positions 0 and 5 (not the reward total's 0 and 4)
    assert batch.in_loss.long().tolist() == [0, 1, 1, 1, 1, 0, 1]


MIX_GDPO = {
    "gdpo": {
        "weights": {"correct": 1.0, "format": 0.5},
        "conditions": [{"column": "format", "on": "correct", "threshold": 1.0}],
    }
}


def test_issue_hand_example_flat_groups_get_zero(zoo_context, make_rollouts):
    """G + 1 = 3; correct = (1,0,0 | 0,0,0 | 1,1,1 | 1,0,0), format = (1,1,0 | 1,1,1 | 1,1,1 | 1,1,1)."""
    pytest.importorskip("grpo_zoo_gdpo")
    correct = [1, 0, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0]
    fmt = [1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1]
    for rescale in ("none", "max_abs"):
        ctx = zoo_context(plugins=["mc_grpo", "gdpo"], config={**MIX_GDPO, "mc_grpo": {"rescale": rescale}})
        batch = ctx.compute_advantages(
            make_rollouts([0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3], {"correct": correct, "format": fmt})
        )
        # per group: correct (1,0,0) -> (1000, 0, 0); gated format (1,0,0) -> 0.5 * (1000, 0, 0); flat -> 0
        s = torch.tensor([1500.0, 0, 0, 0, 0, 0, 0, 0, 0, 1500, 0, 0], dtype=torch.float64)
        want = s / (s.std() + 1e-4)
        if rescale == "max_abs":
            want = (s > 0).double()
        assert torch.allclose(batch.advantages.double(), want, atol=1e-6), (rescale, batch.advantages)
        assert torch.equal(batch.advantages[3:9], torch.zeros(6))  # all-wrong and all-correct groups: exactly 0


@pytest.mark.parametrize("centre", ["mc_grpo", "mean"])
@pytest.mark.parametrize("rescale", ["none", "clip", "max_abs"])
def test_flat_and_all_incorrect_groups_on_random_ragged_batches(zoo_context, make_rollouts, centre, rescale):
    pytest.importorskip("grpo_zoo_gdpo")
    plugins = ["mc_grpo", "gdpo"] if centre == "mc_grpo" else ["gdpo"]
    if centre == "mean" and rescale != "none":
        pytest.skip("rescale is an mc_grpo option")
    config = {**MIX_GDPO, "mc_grpo": {"rescale": rescale}} if centre == "mc_grpo" else MIX_GDPO
    ctx = zoo_context(plugins=plugins, config=config)
    gen = torch.Generator().manual_seed(0)
    checked_flat = checked_wrong = 0
    for _ in range(200):
        sizes = torch.randint(1, 7, (int(torch.randint(2, 9, (1,), generator=gen)),), generator=gen).tolist()
        index = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
        p = torch.rand(len(sizes), generator=gen)[index]  # per-group success rates, some near 0 or 1
        correct = (torch.rand(index.numel(), generator=gen) < p.round()).float()
        correct = torch.where(torch.rand(index.numel(), generator=gen) < 0.3, 1 - correct, correct)
        fmt = (torch.rand(index.numel(), generator=gen) < 0.6).float()
        batch = ctx.compute_advantages(make_rollouts(index, {"correct": correct, "format": fmt}))
        adv = batch.advantages.double()
        for g in range(len(sizes)):
            m = index == g
            if bool((correct[m] == correct[m][0]).all() & (fmt[m] == fmt[m][0]).all()):
                assert bool((adv[m] == 0).all()), (sizes, g, adv[m])
                checked_flat += 1
            if bool((correct[m] == 0).all()):
                assert bool((adv[m] <= 0).all()), (sizes, g, adv[m])
                checked_wrong += 1
    assert checked_flat > 100 and checked_wrong > 100


def test_pivot_is_the_median_of_the_aggregated_score(zoo_context, make_rollouts):
    pytest.importorskip("grpo_zoo_gdpo")
    ctx = zoo_context(plugins=["mc_grpo", "gdpo"], config=MIX_GDPO)
    gen = torch.Generator().manual_seed(1)
    for _ in range(100):
        sizes = torch.randint(1, 6, (5,), generator=gen).tolist()
        index = torch.repeat_interleave(torch.arange(5), torch.tensor(sizes))
        cols = {k: torch.randint(0, 2, (index.numel(),), generator=gen).float() for k in ("correct", "format")}
        batch = ctx.compute_advantages(make_rollouts(index, cols))
        groups = Groups.from_sizes(sizes)
        gated = cols["format"] * (cols["correct"] >= 1)
        score = mc_advantages(cols["correct"].double(), groups) + 0.5 * mc_advantages(gated.double(), groups)
        for g in range(5):
            m = torch.nonzero(index == g).flatten()
            dropped = m[~batch.in_loss[m]]
            assert dropped.numel() == 1
            lower_median = score[m].sort().values[(m.numel() - 1) // 2]
            assert score[dropped].item() == pytest.approx(lower_median.item())


def test_training_with_gdpo(zoo_train_step):
    pytest.importorskip("grpo_zoo_gdpo")
    result = zoo_train_step(plugins=["mc_grpo", "gdpo"], config={"reward": {"builtin": ["correct", "format"]}})
    m = result.last
    G, P = 3, 2  # G + 1 = 4 is even, so each group is rounded up to 5 and 4 reach the loss
    assert m["rollouts"] == (G + 2) * P and m["rollouts_in_loss"] == (G + 1) * P
    assert m["mc_grpo/pivots_dropped"] == P
    assert any(k.startswith("gdpo/") for k in m)
