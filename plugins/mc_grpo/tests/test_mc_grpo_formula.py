"""MC-GRPO formula on hand-made groups: median centre, MAD + eps scale, pivot exclusion, rescaling."""
import pytest
import torch

from grpo_zoo import Groups
from grpo_zoo.advantages import batch_scale
from grpo_zoo_mc_grpo import MCGRPO, mc_advantages, pivot_index, pivot_mask, rescale
from grpo_zoo_mc_grpo.median import mean_baseline_advantages, sign_disagrees, sign_reversed

D = torch.float64

# sizes [3, 5, 1, 2]; see the expectations below for the hand computation
RAGGED_SIZES = [3, 5, 1, 2]
RAGGED_R = [0.0, 1.0, 1.0, 3.0, 1.0, 2.0, 2.0, 5.0, 7.0, 1.0, 4.0]
# g0 [0,1,1]: m=1, |r-m|=[1,0,0], MAD=0 -> /1e-3
# g1 [3,1,2,2,5]: m=2, |r-m|=[1,1,0,0,3], MAD=1 -> /1.001
# g2 [7]: a group of one -> 0
# g3 [1,4]: lower middle m=1, |r-m|=[0,3], MAD (lower middle)=0 -> /1e-3
RAGGED_A = [-1000.0, 0.0, 0.0, 1 / 1.001, -1 / 1.001, 0.0, 0.0, 3 / 1.001, 0.0, 0.0, 3000.0]
RAGGED_PIVOTS = [1, 5, 8, 9]


def ctx_with(zoo_context, **mc):
    return zoo_context(plugins={"mc_grpo": MCGRPO()}, config={"mc_grpo": mc} if mc else None)


def test_binary_example_from_the_spec(zoo_context, make_rollouts):
    # G+1 = 3, r = [1, 0, 0]: m = 0, MAD = 0 -> A = [1000, 0, 0]
    r = torch.tensor([1.0, 0.0, 0.0], dtype=D)
    assert torch.allclose(mc_advantages(r, Groups.from_sizes([3])), torch.tensor([1000.0, 0.0, 0.0], dtype=D))
    ctx = ctx_with(zoo_context)
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0], {"correct": [1.0, 0.0, 0.0]}))
    assert torch.allclose(batch.advantages, torch.tensor([1000.0, 0.0, 0.0]))
    # the first of the two tied zeros is the pivot; the other tie stays in the loss with A = 0
    assert batch.in_loss.tolist() == [True, False, True]


def test_ragged_groups_by_hand(zoo_context):
    r = torch.tensor(RAGGED_R, dtype=D)
    groups = Groups.from_sizes(RAGGED_SIZES)
    assert torch.allclose(mc_advantages(r, groups), torch.tensor(RAGGED_A, dtype=D))
    assert pivot_index(r, groups).tolist() == RAGGED_PIVOTS
    ctx = ctx_with(zoo_context)
    # ctx.normalize goes through the active centre/scale hooks
    assert torch.allclose(ctx.normalize(r, groups), torch.tensor(RAGGED_A, dtype=D))


def test_matches_a_loop_over_groups_on_random_rewards():
    g = torch.Generator().manual_seed(0)
    sizes = [1, 2, 3, 4, 5, 7, 9]
    r = torch.randint(0, 4, (sum(sizes),), generator=g).double() / 3
    groups = Groups.from_sizes(sizes)
    adv = mc_advantages(r, groups, eps=1e-3)
    start = 0
    for n in sizes:
        x = r[start : start + n]
        m = x.median()  # torch's median: lower middle value, like the plugin
        mad = (x - m).abs().median()
        assert torch.allclose(adv[start : start + n], (x - m) / (mad + 1e-3))
        start += n


def test_pivot_exclusion_per_group(zoo_context, make_rollouts, sizes_to_index):
    ctx = ctx_with(zoo_context)
    batch = ctx.compute_advantages(make_rollouts(sizes_to_index(RAGGED_SIZES), {"correct": RAGGED_R}))
    assert torch.allclose(batch.advantages, torch.tensor(RAGGED_A))
    kept = torch.zeros(len(RAGGED_SIZES), dtype=torch.long).index_add_(0, batch.group, batch.in_loss.long())
    # exactly one rollout per group leaves the loss; the group of one loses its only rollout
    assert kept.tolist() == [n - 1 for n in RAGGED_SIZES] == [2, 4, 0, 1]
    assert not batch.in_loss[RAGGED_PIVOTS].any()


def test_ties_and_interleaved_groups(zoo_context, make_rollouts):
    ctx = ctx_with(zoo_context)
    # groups need not be contiguous: group 0 at positions 1, 3, 5 and group 1 at 0, 2, 4
    batch = ctx.compute_advantages(make_rollouts([1, 0, 1, 0, 1, 0], {"correct": [0.0, 2.0, 0.0, 2.0, 1.0, 5.0]}))
    assert torch.allclose(batch.advantages, torch.tensor([0.0, 0.0, 0.0, 0.0, 1000.0, 3000.0]))
    assert batch.in_loss.tolist() == [False, False, True, True, True, True]
    # all equal: every advantage 0, the first rollout is the pivot
    r = torch.tensor([0.5, 0.5, 0.5], dtype=D)
    assert torch.equal(mc_advantages(r, Groups.from_sizes([3])), torch.zeros(3, dtype=D))
    assert pivot_mask(r, Groups.from_sizes([3])).tolist() == [True, False, False]


def test_eps_is_configurable(zoo_context, make_rollouts):
    ctx = ctx_with(zoo_context, eps=0.5)
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0], {"correct": [1.0, 0.0, 0.0]}))
    assert torch.allclose(batch.advantages, torch.tensor([2.0, 0.0, 0.0]))


def test_rescale_modes():
    adv = torch.tensor(RAGGED_A, dtype=D)
    groups = Groups.from_sizes(RAGGED_SIZES)
    assert torch.equal(rescale(adv, groups, "none"), adv)
    clipped = rescale(adv, groups, "clip", 2.5)
    assert torch.allclose(clipped, torch.tensor([-2.5, 0, 0, 1 / 1.001, -1 / 1.001, 0, 0, 2.5, 0, 0, 2.5], dtype=D))
    scaled = rescale(adv, groups, "max_abs")
    assert torch.allclose(scaled, torch.tensor([-1.0, 0, 0, 1 / 3, -1 / 3, 0, 0, 1.0, 0, 0, 1.0], dtype=D))
    for out in (clipped, scaled):  # signs and zeros never change
        assert torch.equal(torch.sign(out), torch.sign(adv))
    with pytest.raises(ValueError, match="rescale"):
        rescale(adv, groups, "bogus")


@pytest.mark.parametrize(("mode", "expected"), [("none", 1000.0), ("clip", 1.0), ("max_abs", 1.0)])
def test_rescale_through_the_hooks(zoo_context, mode, expected, make_rollouts):
    ctx = ctx_with(zoo_context, rescale=mode)
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0, 1, 1, 1], {"correct": [1, 0, 0, 0, 1, 1]}))
    assert torch.allclose(batch.advantages, torch.tensor([expected, 0, 0, -expected, 0, 0]))


def test_several_columns_sum_then_normalize_uses_weights(zoo_context, make_rollouts):
    ctx = zoo_context(plugins={"mc_grpo": MCGRPO()}, config={"reward": {"weights": {"a": 2.0}}})
    batch = make_rollouts([0, 0, 0], {"a": [1.0, 0.0, 0.0], "b": [0.0, 0.0, 1.0]})
    ctx.compute_advantages(batch)
    # total = 2a + b = [2, 0, 1]: m = 1, |.| = [1, 1, 0], MAD = 1
    assert torch.allclose(batch.advantages, torch.tensor([1 / 1.001, -1 / 1.001, 0.0]))
    assert batch.in_loss.tolist() == [True, True, False]


def test_normalize_then_sum_uses_the_median_per_column(zoo_context, make_rollouts):
    ctx = zoo_context(
        plugins={"mc_grpo": MCGRPO()}, config={"advantage": {"aggregation": "normalize_then_sum"}}
    )
    a, b = [1.0, 0.0, 0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 2.0, 3.0, 0.0, 1.0]
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0, 1, 1, 1], {"a": a, "b": b}))
    groups = Groups.from_sizes([3, 3])
    expected = batch_scale(
        mc_advantages(torch.tensor(a, dtype=D), groups) + mc_advantages(torch.tensor(b, dtype=D), groups), 1e-4
    )
    assert torch.allclose(batch.advantages.double(), expected, atol=1e-5)
    assert int((~batch.in_loss).sum()) == 2


def test_pivot_on_advantage_matches_reward_for_one_column(zoo_context, make_rollouts, sizes_to_index):
    rollouts = lambda: make_rollouts(sizes_to_index(RAGGED_SIZES), {"correct": RAGGED_R})  # noqa: E731
    by_reward = ctx_with(zoo_context, pivot_on="reward").compute_advantages(rollouts())
    by_adv = ctx_with(zoo_context, pivot_on="advantage").compute_advantages(rollouts())
    assert torch.equal(by_reward.in_loss, by_adv.in_loss)


def test_sign_helpers():
    adv = torch.tensor([0.0, 1.0, -1.0, 0.0])
    r = torch.tensor([1.0, 1.0, 1.0, 0.5])
    ref = torch.tensor([0.5, 0.5, 0.5, 0.5])
    # zero advantage where r != ref differs; reversed sign differs; r == ref with A = 0 agrees
    assert sign_disagrees(adv, r, ref).tolist() == [True, False, True, False]
    assert sign_reversed(adv, r, ref).tolist() == [False, False, True, False]
    keep = torch.tensor([True, False, True])
    out = mean_baseline_advantages(torch.tensor([1.0, 0.0, 0.0], dtype=D), Groups.from_sizes([3]), keep)
    assert torch.allclose(out, torch.tensor([0.5, 0.0, -0.5], dtype=D))


def test_sign_flip_figures_against_a_hand_count(zoo_context, make_rollouts):
    """One group of 5 graded rewards; the task's earlier mean reward (history reference) is 0.45.

    r = [0, 0.3, 0.4, 0.5, 3.0]: median 0.4 is the pivot. Kept: 0, 0.3, 0.5, 3.0.
    MC signs (r - 0.4): -, -, +, +; reference signs (r - 0.45): -, -, +, +: no flip.
    Mean of the kept rewards 0.95: 0.5 gets a negative advantage against a positive r - 0.45,
    so the mean baseline reverses 1 of 4.
    """
    plugin = MCGRPO()
    ctx = zoo_context(plugins={"mc_grpo": plugin})
    plugin.table = {"t0": [0.45, 1]}
    batch = ctx.compute_advantages(make_rollouts([0] * 5, {"correct": [0.0, 0.3, 0.4, 0.5, 3.0]}))
    assert batch.in_loss.tolist() == [True, True, False, True, True]
    m = plugin.zoo_step_metrics(ctx, batch, 0)
    assert m["mc_grpo/sign_flip_rate"] == 0.0 and m["mc_grpo/sign_reversal_rate"] == 0.0
    assert m["mc_grpo/sign_flip_rate_mean_baseline"] == 0.25
    assert m["mc_grpo/sign_reversal_rate_mean_baseline"] == 0.25
    # history: this step's rewards joined the table only after the figure was computed
    assert plugin.table["t0"] == [pytest.approx(0.45 + 4.2), 6]


def test_history_reference_is_absent_on_a_first_visit_and_pooled_is_not(zoo_context, make_rollouts):
    for mode, present in (("history", False), ("pooled", True)):
        plugin = MCGRPO()
        ctx = zoo_context(plugins={"mc_grpo": plugin}, config={"mc_grpo": {"sign_flip_reference": mode}})
        batch = ctx.compute_advantages(make_rollouts([0] * 3, {"correct": [1.0, 0.0, 0.0]}))
        assert ("mc_grpo/sign_flip_rate" in plugin.zoo_step_metrics(ctx, batch, 0)) is present


def test_nonzero_rescale_and_mean_drop_min(zoo_context, make_rollouts):
    # r = [1, 0, 0]: MC A = [1000, 0, 0]; one non-zero of 3 -> x3
    ctx = ctx_with(zoo_context, nonzero_rescale=True, rescale="max_abs")
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0], {"correct": [1.0, 0.0, 0.0]}))
    assert torch.allclose(batch.advantages, torch.tensor([3.0, 0.0, 0.0]))
    # control: mean 0.25, std of [1, 0, 0, 0] = 0.5; A = [1.5, -0.5, -0.5, -0.5]; the first min-|A| rollout leaves
    ctx = ctx_with(zoo_context, baseline="mean_drop_min")
    batch = ctx.compute_advantages(make_rollouts([0, 0, 0, 0], {"correct": [1.0, 0.0, 0.0, 0.0]}))
    assert torch.allclose(batch.advantages, torch.tensor([1.5, -0.5, -0.5, -0.5]), atol=1e-3)
    assert batch.in_loss.tolist() == [True, False, True, True]
