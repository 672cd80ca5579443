"""GDPO formulas against hand-computed numbers and the ALGORITHMS.md section 2 test vectors."""
import math

import pytest
import torch

from grpo_zoo.config import ConfigError
from grpo_zoo.segments import Groups
from grpo_zoo.plugins import PluginHookError
from grpo_zoo_gdpo import distinct_per_group, gate_rewards
from grpo_zoo_gdpo.config import Condition
from grpo_zoo_gdpo.sim import rollouts_from_columns

S2 = math.sqrt(0.5)  # 0.7071...: (1 - 0.5) / std([0, 1])
EPS = 1e-4


def advantages(zoo_context, columns, sizes, gdpo=True, gdpo_cfg=None, config=None):
    """Advantages the run would compute: GDPO (plugin active) or plain GRPO (built-ins only)."""
    cfg = dict(config or {})
    if gdpo:
        cfg["gdpo"] = dict(gdpo_cfg or {})
    ctx = zoo_context(plugins=["gdpo"] if gdpo else [], config=cfg)
    r = rollouts_from_columns(columns, sizes)
    return ctx.compute_advantages(r).advantages.double(), ctx, r


def per_group_z(values, sizes, eps=EPS):
    """Hand computation: (r - mean) / (unbiased std + eps) per group; size-1 groups give 0."""
    out, start = [], 0
    for n in sizes:
        v = torch.tensor(values[start : start + n], dtype=torch.float64)
        std = v.std() if n > 1 else torch.tensor(0.0, dtype=torch.float64)
        out.append((v - v.mean()) / (std + eps))
        start += n
    return torch.cat(out)


# --- the collapse vectors (G = 2, two binary rewards, no batch step) -------------------------

# (reward 1, reward 2) for the two rollouts of one group; totals are (0,1), (0,2), (1,2).
COLLAPSE = {
    "totals_0_1": ([0, 1], [0, 0]),
    "totals_0_2": ([0, 1], [0, 1]),
    "totals_1_2": ([1, 1], [0, 1]),
}


@pytest.mark.parametrize("case", list(COLLAPSE))
def test_grpo_collapses_g2(zoo_context, case):
    r1, r2 = COLLAPSE[case]
    adv, _, _ = advantages(zoo_context, {"a": r1, "b": r2}, [2], gdpo=False)
    assert adv.tolist() == pytest.approx([-S2, S2], abs=2e-4)


@pytest.mark.parametrize("case,scale", [("totals_0_1", 1.0), ("totals_0_2", 2.0), ("totals_1_2", 1.0)])
def test_gdpo_resolves_g2(zoo_context, case, scale):
    r1, r2 = COLLAPSE[case]
    adv, _, _ = advantages(zoo_context, {"a": r1, "b": r2}, [2], gdpo_cfg={"batch_normalize": False})
    assert adv.tolist() == pytest.approx([-scale * S2, scale * S2], abs=3e-4)


def test_collapse_vectors_in_one_batch(zoo_context):
    """All three G = 2 groups in one batch: GRPO gives one advantage pair, GDPO two distinct magnitudes."""
    r1 = [0, 1, 0, 1, 1, 1]
    r2 = [0, 0, 0, 1, 0, 1]
    grpo, _, _ = advantages(zoo_context, {"a": r1, "b": r2}, [2, 2, 2], gdpo=False)
    gdpo, _, _ = advantages(zoo_context, {"a": r1, "b": r2}, [2, 2, 2], gdpo_cfg={"batch_normalize": False})
    assert grpo.tolist() == pytest.approx([-S2, S2] * 3, abs=2e-4)
    assert gdpo.tolist() == pytest.approx([-S2, S2, -2 * S2, 2 * S2, -S2, S2], abs=3e-4)


def test_g3_spec_vector_cancels_exactly(zoo_context):
    """Spec: r1 = (1,1,0), r2 = (0,0,1) sum to (1,1,1); GRPO gives all zeros.

    ALGORITHMS.md says GDPO does not, but r2 = 1 - r1 makes the normalized columns exact
    negatives of each other (same std), so with equal weights GDPO gives zeros as well;
    no binary G = 3 vector pair with a constant total separates them (checked exhaustively
    below). The G = 3 collapse GDPO does fix is across groups: see the next test.
    """
    cols = {"a": [1, 1, 0], "b": [0, 0, 1]}
    grpo, _, _ = advantages(zoo_context, cols, [3], gdpo=False)
    assert grpo.abs().max() == 0.0
    gdpo, _, _ = advantages(zoo_context, cols, [3], gdpo_cfg={"batch_normalize": False})
    assert gdpo.abs().max() < 1e-6
    # per column the group is not flat: each column alone does carry signal
    assert per_group_z([1, 1, 0], [3]).abs().max() > 1.0


def test_g3_binary_constant_total_always_cancels():
    import itertools

    patterns = list(itertools.product([0, 1], repeat=3))
    for k in (2, 3):
        for combo in itertools.combinations_with_replacement(patterns, k):
            if len({sum(c[i] for c in combo) for i in range(3)}) != 1:
                continue
            s = sum(per_group_z(list(c), [3]) for c in combo)
            assert s.abs().max() < 1e-9, combo


def test_g3_collapse_across_groups(zoo_context):
    """G = 3: totals (1,0,0) and (2,0,0) get the same GRPO advantages; GDPO doubles the second."""
    r1 = [1, 0, 0, 1, 0, 0]
    r2 = [0, 0, 0, 1, 0, 0]
    grpo, _, _ = advantages(zoo_context, {"a": r1, "b": r2}, [3, 3], gdpo=False)
    gdpo, _, _ = advantages(zoo_context, {"a": r1, "b": r2}, [3, 3], gdpo_cfg={"batch_normalize": False})
    z = per_group_z([1, 0, 0], [3])  # (1.1547, -0.5774, -0.5774)
    # equal up to eps = 1e-4 in the denominator
    assert grpo[:3].tolist() == pytest.approx(grpo[3:].tolist(), abs=2e-4)
    assert grpo[:3].tolist() == pytest.approx(z.tolist(), abs=1e-6)
    assert gdpo[:3].tolist() == pytest.approx(z.tolist(), abs=1e-6)
    assert gdpo[3:].tolist() == pytest.approx((2 * z).tolist(), abs=1e-6)


def test_g4_within_group_resolution(zoo_context):
    """Totals (1,1,1,0): GRPO has 2 distinct values, GDPO tells the (1,0) rollout from the (0,1) ones."""
    cols = {"a": [1, 0, 0, 0], "b": [0, 1, 1, 0]}
    grpo, ctx, r = advantages(zoo_context, cols, [4], gdpo=False)
    gdpo, _, _ = advantages(zoo_context, cols, [4], gdpo_cfg={"batch_normalize": False})
    expected = per_group_z(cols["a"], [4]) + per_group_z(cols["b"], [4])
    assert gdpo.tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert distinct_per_group(grpo, r.groups) == 2
    assert distinct_per_group(gdpo, r.groups) == 3


# --- the full formula: per column, weights, batch step ------------------------------------------


def test_batch_step_matches_hand_computation(zoo_context):
    g = torch.Generator().manual_seed(0)
    sizes = [4, 4, 4]
    a = torch.randint(0, 2, (12,), generator=g).float()
    b = torch.rand(12, generator=g)
    adv, _, _ = advantages(zoo_context, {"a": a, "b": b}, sizes)
    s = per_group_z(a.tolist(), sizes) + per_group_z(b.tolist(), sizes)
    expected = (s - s.mean()) / (s.std() + EPS)
    assert adv.tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert float(adv.mean()) == pytest.approx(0.0, abs=1e-6)
    assert float(adv.std()) == pytest.approx(1.0, abs=1e-3)


def test_batch_normalize_off_keeps_raw_sum(zoo_context):
    sizes = [3, 3]
    a, b = [1, 0, 0, 1, 1, 0], [0.2, 0.5, 0.9, 0.1, 0.1, 0.4]
    adv, _, _ = advantages(zoo_context, {"a": a, "b": b}, sizes, gdpo_cfg={"batch_normalize": False})
    expected = per_group_z(a, sizes) + per_group_z(b, sizes)
    assert adv.tolist() == pytest.approx(expected.tolist(), abs=1e-6)


def test_weights_apply_after_normalization(zoo_context):
    sizes = [4, 4]
    a = [1, 0, 0, 1, 1, 1, 0, 0]
    b = [0.0, 3.0, 1.0, 2.0, 5.0, 1.0, 1.0, 0.0]  # b's scale is irrelevant after normalization
    adv, _, _ = advantages(
        zoo_context, {"a": a, "b": b}, sizes, gdpo_cfg={"weights": {"a": 2.0, "b": 0.5}, "batch_normalize": False}
    )
    expected = 2.0 * per_group_z(a, sizes) + 0.5 * per_group_z(b, sizes)
    assert adv.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    # multiplying a raw column by 100 changes nothing (only its weight does)
    adv100, _, _ = advantages(
        zoo_context,
        {"a": a, "b": [100 * x for x in b]},
        sizes,
        gdpo_cfg={"weights": {"a": 2.0, "b": 0.5}, "batch_normalize": False},
    )
    assert adv100.tolist() == pytest.approx(adv.tolist(), abs=1e-4)


def test_weights_fall_back_to_reward_weights(zoo_context):
    sizes = [4]
    cols = {"a": [1, 0, 0, 1], "b": [0, 1, 1, 1]}
    cfg = {"batch_normalize": False}
    base, _, _ = advantages(zoo_context, cols, sizes, gdpo_cfg={**cfg, "weights": {"b": 3.0}},
                            config={"reward": {"weights": {"a": 0.25, "b": 7.0}}})
    expected = 0.25 * per_group_z(cols["a"], sizes) + 3.0 * per_group_z(cols["b"], sizes)
    assert base.tolist() == pytest.approx(expected.tolist(), abs=1e-5)


def test_zero_weight_drops_a_column(zoo_context):
    sizes = [4]
    cols = {"a": [1, 0, 0, 1], "b": [0, 1, 1, 1]}
    adv, _, _ = advantages(zoo_context, cols, sizes, gdpo_cfg={"weights": {"b": 0.0}, "batch_normalize": False})
    assert adv.tolist() == pytest.approx(per_group_z(cols["a"], sizes).tolist(), abs=1e-6)


def test_ragged_groups_and_singletons(zoo_context):
    sizes = [1, 3, 2, 5]
    g = torch.Generator().manual_seed(3)
    a = torch.randint(0, 2, (11,), generator=g).float()
    b = torch.randint(0, 3, (11,), generator=g).float()
    adv, _, _ = advantages(zoo_context, {"a": a, "b": b}, sizes, gdpo_cfg={"batch_normalize": False})
    expected = per_group_z(a.tolist(), sizes) + per_group_z(b.tolist(), sizes)
    assert adv.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert float(adv[0]) == 0.0  # a group of one gets advantage 0
    on, _, _ = advantages(zoo_context, {"a": a, "b": b}, sizes)
    assert on.tolist() == pytest.approx(((expected - expected.mean()) / (expected.std() + EPS)).tolist(), abs=1e-5)


def test_group_order_does_not_matter(zoo_context):
    """Interleaved (non-contiguous) groups give the same advantages as contiguous ones."""
    sizes = [3, 3]
    a, b = [1, 0, 0, 1, 1, 0], [0, 1, 1, 0, 0, 1]
    adv, _, _ = advantages(zoo_context, {"a": a, "b": b}, sizes)
    perm = torch.tensor([0, 3, 1, 4, 2, 5])
    r = rollouts_from_columns({"a": a, "b": b}, sizes).take(perm)
    ctx = zoo_context(plugins=["gdpo"])
    adv_perm = ctx.compute_advantages(r).advantages.double()
    assert adv_perm.tolist() == pytest.approx(adv[perm].tolist(), abs=1e-6)


def test_single_column_equals_grpo_up_to_batch_step(zoo_context):
    sizes = [4, 4]
    a = [1, 0, 0, 1, 0, 0, 0, 1]
    grpo, _, _ = advantages(zoo_context, {"a": a}, sizes, gdpo=False)
    gdpo, _, _ = advantages(zoo_context, {"a": a}, sizes, gdpo_cfg={"batch_normalize": False})
    assert gdpo.tolist() == pytest.approx(grpo.tolist(), abs=1e-6)


# --- conditioned rewards ----------------------------------------------------------------------


def test_gate_rewards_function():
    cols = {"correct": torch.tensor([1.0, 0.0, 1.0, 0.5]), "length": torch.tensor([0.3, 0.9, 0.0, 0.7])}
    out = gate_rewards(cols, [Condition(column="length", on="correct", threshold=1.0)])
    assert out["length"].tolist() == pytest.approx([0.3, 0.0, 0.0, 0.0])
    assert out["correct"] is cols["correct"]
    assert cols["length"].tolist() == pytest.approx([0.3, 0.9, 0.0, 0.7])  # input untouched
    half = gate_rewards(cols, [Condition(column="length", on="correct", threshold=0.5)])
    assert half["length"].tolist() == pytest.approx([0.3, 0.0, 0.0, 0.7])  # >= threshold keeps it


def test_gates_read_ungated_values_and_combine():
    cols = {
        "a": torch.tensor([1.0, 1.0, 0.0, 0.0]),
        "b": torch.tensor([1.0, 0.0, 1.0, 0.0]),
        "c": torch.tensor([5.0, 5.0, 5.0, 5.0]),
    }
    conds = [Condition(column="c", on="a"), Condition(column="c", on="b"), Condition(column="b", on="a")]
    out = gate_rewards(cols, conds)
    assert out["c"].tolist() == [5.0, 0.0, 0.0, 0.0]  # both conditions must hold
    assert out["b"].tolist() == [1.0, 0.0, 0.0, 0.0]
    # order of conditions is irrelevant: gates read the raw columns
    again = gate_rewards(cols, list(reversed(conds)))
    assert all(torch.equal(out[k], again[k]) for k in cols)


def test_conditioned_reward_applied_before_normalization(zoo_context):
    sizes = [4, 4]
    correct = [1, 0, 1, 0, 0, 0, 0, 1]
    length = [0.5, 0.9, 0.1, 0.8, 0.6, 0.2, 0.4, 0.3]
    gated = [c * l for c, l in zip(correct, length)]
    cfg = {"conditions": [{"column": "length", "on": "correct", "threshold": 1.0}], "batch_normalize": False}
    adv, ctx, r = advantages(zoo_context, {"correct": correct, "length": length}, sizes, gdpo_cfg=cfg)
    expected = per_group_z(correct, sizes) + per_group_z(gated, sizes)
    assert adv.tolist() == pytest.approx(expected.tolist(), abs=1e-5)
    assert r.rewards["length"].tolist() == pytest.approx(length)  # raw columns stay as logged
    m = ctx.hooks.step_metrics(ctx, r, 0)
    assert m["gdpo/length/mean"] == pytest.approx(sum(gated) / 8)
    assert m["gdpo/correct/mean"] == pytest.approx(3 / 8)
    assert m["gdpo/length/kept_frac"] == pytest.approx(3 / 8)


# --- metrics ----------------------------------------------------------------------------------


def test_step_metrics_distinct_counts(zoo_context):
    # the three collapse groups: GRPO 2 distinct values per group (no ties), GDPO the same per group
    # plus a G = 4 group where GDPO separates tied totals (3 vs 2 distinct values)
    cols = {"a": [0, 1, 0, 1, 1, 1, 1, 0, 0, 0], "b": [0, 0, 0, 1, 0, 1, 0, 1, 1, 0]}
    sizes = [2, 2, 2, 4]
    _, ctx, r = advantages(zoo_context, cols, sizes)
    m = ctx.hooks.step_metrics(ctx, r, 0)
    assert m["gdpo/distinct_adv_per_group"] == pytest.approx((2 + 2 + 2 + 3) / 4)
    assert m["gdpo/distinct_adv_per_group_grpo"] == pytest.approx((2 + 2 + 2 + 2) / 4)
    assert m["gdpo/a/mean"] == pytest.approx(0.5)
    assert m["gdpo/b/mean"] == pytest.approx(0.4)


def test_distinct_per_group_function():
    from grpo_zoo.segments import Groups

    groups = Groups.from_sizes([3, 1, 2])
    vals = torch.tensor([0.5, 0.5, -1.0, 0.0, 2.0, 2.0000000001])
    assert distinct_per_group(vals, groups) == pytest.approx((2 + 1 + 1) / 3)


# --- config errors ----------------------------------------------------------------------------


def test_defaults():
    from grpo_zoo_gdpo import GDPOConfig

    cfg = GDPOConfig()
    assert cfg.weights == {} and cfg.conditions == [] and cfg.batch_normalize is True


@pytest.mark.parametrize(
    "section,needle",
    [
        ({"batch_normalise": True}, "gdpo.batch_normalise"),
        ({"conditions": [{"column": "a", "on": "a"}]}, "gdpo.conditions.0"),
        ({"conditions": [{"column": "a"}]}, "gdpo.conditions.0.on"),
        ({"conditions": [{"column": "a", "on": "b", "thresh": 1}]}, "gdpo.conditions.0.thresh"),
        ({"conditions": [{"column": "a", "on": "b", "threshold": "high"}]}, "gdpo.conditions.0.threshold"),
        ({"conditions": [{"column": "a", "on": "b"}, {"column": "a", "on": "b"}]}, "repeats"),
        ({"weights": {"a": "heavy"}}, "gdpo.weights.a"),
        ({"weights": {"a": float("nan")}}, "gdpo.weights"),
        ({"batch_normalize": "maybe"}, "gdpo.batch_normalize"),
    ],
)
def test_bad_config_names_the_key(zoo_context, section, needle):
    with pytest.raises(ConfigError) as err:
        zoo_context(plugins=["gdpo"], config={"gdpo": section})
    assert needle in str(err.value)


def test_unknown_weight_column(zoo_context):
    ctx = zoo_context(plugins=["gdpo"], config={"gdpo": {"weights": {"corect": 1.0}}})
    with pytest.raises(PluginHookError) as err:
        ctx.compute_advantages(rollouts_from_columns({"correct": [1, 0]}, [2]))
    assert err.value.plugin == "gdpo"
    assert "gdpo.weights" in str(err.value) and "'corect'" in str(err.value) and "correct" in str(err.value)


@pytest.mark.parametrize("key", ["column", "on"])
def test_unknown_condition_column(zoo_context, key):
    cond = {"column": "length", "on": "correct"}
    cond[key] = "missing"
    ctx = zoo_context(plugins=["gdpo"], config={"gdpo": {"conditions": [cond]}})
    with pytest.raises(PluginHookError) as err:
        ctx.compute_advantages(rollouts_from_columns({"correct": [1, 0], "length": [0.1, 0.2]}, [2]))
    assert f"gdpo.conditions[0].{key} = 'missing'" in str(err.value)


def test_section_without_plugin_is_an_error(zoo_context):
    with pytest.raises(ConfigError, match="gdpo"):
        zoo_context(plugins=[], config={"gdpo": {"batch_normalize": False}})


def test_run_start_checks_builtin_columns(zoo_context):
    ctx = zoo_context(
        plugins=["gdpo"],
        config={"reward": {"builtin": ["correct", "format"]}, "gdpo": {"conditions": [{"column": "length", "on": "correct"}]}},
    )
    with pytest.raises(PluginHookError, match=r"gdpo.conditions\[0\].column = 'length'"):
        ctx.hooks.run_start(ctx)


def test_batch_step_without_recentring_equals_trl_under_the_mean_centre():
    """Under the mean centre each group's normalized columns sum to 0, so the batch mean the paper
    subtracts is 0 and scaling alone (what core does, to keep other centres' zeros) is the same step."""
    from grpo_zoo.advantages import batch_scale, standardize
    from grpo_zoo.segments import segment_mean, segment_std

    gen = torch.Generator().manual_seed(0)
    for _ in range(200):
        sizes = torch.randint(1, 9, (int(torch.randint(1, 12, (1,), generator=gen)),), generator=gen).tolist()
        groups = Groups.from_sizes(sizes)
        s = torch.zeros(groups.index.numel(), dtype=torch.float64)
        for w in (1.0, 0.5, 2.0):
            r = torch.randint(0, 3, (groups.index.numel(),), generator=gen).double()
            s += w * (r - segment_mean(r, groups)) / (segment_std(r, groups) + 1e-4)
        assert abs(float(s.mean())) < 1e-12
        assert torch.allclose(batch_scale(s, 1e-4), standardize(s, 1e-4), atol=1e-12)
