"""Ragged group statistics (grpo_zoo.segments) against per-group torch reference computations."""
import pytest
import torch

from grpo_zoo.segments import (
    Groups,
    segment_all_equal,
    segment_mad,
    segment_mean,
    segment_median,
    segment_median_with_index,
    segment_nunique,
    segment_std,
    segment_sum,
)

# One batch with groups of sizes 1, 2, 3 and 5 whose ids are not contiguous in the
# batch (rollouts of one group are interleaved with others) and not in order.
GROUP_IDS = [3, 0, 2, 3, 1, 2, 3, 2, 1, 3, 3]
SIZES = {0: 1, 1: 2, 2: 3, 3: 5}


def _values(dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(len(GROUP_IDS), generator=g, dtype=dtype)


def _members(gid):
    return [i for i, g in enumerate(GROUP_IDS) if g == gid]


def _reference(values, fn):
    """fn applied to each group's values separately, broadcast back per rollout."""
    out = torch.empty_like(values)
    for gid in SIZES:
        idx = _members(gid)
        out[idx] = fn(values[idx])
    return out


@pytest.fixture
def groups():
    return Groups.from_index(GROUP_IDS)


def test_groups_counts_and_sizes(groups):
    assert groups.num_groups == 4
    assert groups.counts.tolist() == [SIZES[g] for g in range(4)]
    assert groups.sizes().tolist() == [SIZES[g] for g in GROUP_IDS]
    sized = Groups.from_sizes([3, 1, 2])
    assert sized.index.tolist() == [0, 0, 0, 1, 2, 2]
    assert sized.counts.tolist() == [3, 1, 2]


def test_groups_validation():
    with pytest.raises(ValueError, match="1-D"):
        Groups.from_index(torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=">= 0"):
        Groups.from_index([0, -1])
    with pytest.raises(ValueError, match="num_groups"):
        Groups.from_index([0, 3], num_groups=2)
    empty_tail = Groups.from_index([0, 1], num_groups=4)  # empty groups are allowed
    assert empty_tail.counts.tolist() == [1, 1, 0, 0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sum_mean_std_match_per_group_reference(groups, seed):
    v = _values(seed=seed)
    torch.testing.assert_close(segment_sum(v, groups), _reference(v, lambda x: x.sum()), rtol=0, atol=1e-12)
    torch.testing.assert_close(segment_mean(v, groups), _reference(v, lambda x: x.mean()), rtol=0, atol=1e-12)
    # unbiased std (torch's default); a group of one rollout gets 0, not NaN
    ref_std = _reference(v, lambda x: x.std() if x.numel() > 1 else torch.zeros((), dtype=x.dtype))
    torch.testing.assert_close(segment_std(v, groups), ref_std, rtol=0, atol=1e-12)
    ref_pop = _reference(v, lambda x: x.std(correction=0))
    torch.testing.assert_close(segment_std(v, groups, unbiased=False), ref_pop, rtol=0, atol=1e-12)
    assert segment_std(v, groups)[_members(0)].item() == 0.0


def test_float32_and_int_values(groups):
    v = _values(torch.float32)
    torch.testing.assert_close(segment_mean(v, groups), _reference(v, lambda x: x.mean()))
    ints = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11])
    assert segment_sum(ints, groups).tolist() == [sum(ints[_members(g)].tolist()) for g in GROUP_IDS]


def test_empty_groups_get_no_nan():
    groups = Groups.from_index([0, 0, 2], num_groups=4)
    v = torch.tensor([1.0, 3.0, 5.0])
    assert segment_mean(v, groups).tolist() == [2.0, 2.0, 5.0]
    assert not torch.isnan(segment_std(v, groups)).any()


def _lower_median(x):
    return torch.sort(x).values[(x.numel() - 1) // 2]


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_median_matches_torch_median(groups, seed):
    v = _values(seed=seed)
    ref = _reference(v, lambda x: torch.median(x))  # torch.median: lower middle for even counts
    assert torch.equal(segment_median(v, groups), ref)
    assert torch.equal(ref, _reference(v, _lower_median))
    med, pivot = segment_median_with_index(v, groups)
    assert torch.equal(med, ref)
    for gid in SIZES:
        p = int(pivot[gid])
        assert GROUP_IDS[p] == gid, "the pivot belongs to its own group"
        assert v[p] == ref[_members(gid)[0]]


def test_median_pivot_with_ties_is_first_in_batch_order():
    # group 0: values [2, 1, 2, 2, 3] at positions 1, 2, 4, 6, 7 -> median 2, tied at 1, 4, 6
    # group 1: [0, 0, 0] at 0, 3, 5 -> pivot 0 (first of three ties)
    # group 2: [1, 1] at 8, 9 -> lower middle 1, pivot 8
    # group 3: [5] at 10 -> pivot 10
    index = [1, 0, 0, 1, 0, 1, 0, 0, 2, 2, 3]
    v = torch.tensor([0.0, 2.0, 1.0, 0.0, 2.0, 0.0, 2.0, 3.0, 1.0, 1.0, 5.0])
    groups = Groups.from_index(index)
    med, pivot = segment_median_with_index(v, groups)
    assert pivot.tolist() == [1, 0, 8, 10]
    assert med.tolist() == [0.0, 2.0, 2.0, 0.0, 2.0, 0.0, 2.0, 2.0, 1.0, 1.0, 5.0]
    # Deterministic: the same answer on every call and for a permuted copy of the same group.
    for _ in range(3):
        assert segment_median_with_index(v, groups)[1].tolist() == [1, 0, 8, 10]
    # Ties at the median in an even group whose lower middle slot is a later duplicate.
    v2 = torch.tensor([3.0, 1.0, 1.0, 0.0])  # sorted: 0, 1, 1, 3 -> lower middle 1 (positions 1, 2)
    _, p2 = segment_median_with_index(v2, Groups.from_sizes([4]))
    assert p2.tolist() == [1]


def test_median_pivot_of_empty_group_is_minus_one():
    _, pivot = segment_median_with_index(torch.tensor([1.0, 2.0]), Groups.from_index([0, 0], num_groups=2))
    assert pivot.tolist() == [0, -1]


def test_mad(groups):
    v = _values(seed=5)
    ref = _reference(v, lambda x: torch.median((x - torch.median(x)).abs()))
    assert torch.equal(segment_mad(v, groups), ref)
    center = torch.zeros_like(v)
    ref0 = _reference(v, lambda x: torch.median(x.abs()))
    assert torch.equal(segment_mad(v, groups, center=center), ref0)


def test_all_equal(groups):
    v = torch.tensor([7.0, 1.0, 2.0, 7.0, 4.0, 2.0, 7.0, 2.0, 5.0, 7.0, 7.0])
    # group 0 (size 1) is trivially equal; group 1 = [4, 5] differs; group 2 = [2, 2, 2]; group 3 all 7
    assert segment_all_equal(v, groups).tolist() == [True, False, True, True]
    v[9] = 7.5
    assert segment_all_equal(v, groups).tolist() == [True, False, True, False]
    with_empty = Groups.from_index([0, 0], num_groups=2)
    assert segment_all_equal(torch.tensor([1.0, 2.0]), with_empty).tolist() == [False, True]


def test_nunique(groups):
    v = torch.tensor([7.0, 1.0, 2.0, 7.0, 4.0, 3.0, 8.0, 2.0, 4.0, 7.0, 9.0])
    # group 0: [1]; group 1: [4, 4]; group 2: [2, 3, 2]; group 3: [7, 7, 8, 7, 9]
    ref = [len(set(v[_members(g)].tolist())) for g in range(4)]
    assert ref == [1, 1, 2, 3]
    assert segment_nunique(v, groups).tolist() == ref
    # values closer than 10**-decimals count as one
    near = torch.tensor([0.1, 0.1 + 1e-9, 0.2], dtype=torch.float64)
    assert segment_nunique(near, Groups.from_sizes([3])).tolist() == [2]
    assert segment_nunique(near, Groups.from_sizes([3]), decimals=12).tolist() == [3]


def test_no_python_loop_over_groups_needed_for_many_groups():
    # 2000 ragged groups in one call: a sanity check of the vectorized path against a reshape.
    sizes = torch.tensor([1, 2, 3, 5] * 500)
    groups = Groups.from_sizes(sizes)
    v = torch.randn(int(sizes.sum()), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    means = segment_mean(v, groups)
    offsets = torch.cumsum(sizes, 0) - sizes
    for k in (0, 1, 2, 3, 1999):
        s, n = int(offsets[k]), int(sizes[k])
        torch.testing.assert_close(means[s], v[s : s + n].mean())
