"""DAPO's formulas against hand-computed numbers (ALGORITHMS.md section 7)."""
import pytest
import torch
from grpo_zoo.segments import Groups

from grpo_zoo_dapo.formulas import group_spread_ok, overlong_penalty


def test_overlong_penalty_hand_computed():
    # L_max = 20, L_cache = 4: free up to 16 tokens, then (16 - |y|) / 4, -1 at and beyond 20
    lengths = torch.tensor([0, 10, 16, 17, 18, 19, 20, 25])
    got = overlong_penalty(lengths, max_len=20, buffer=4)
    assert got.tolist() == [0.0, 0.0, 0.0, -0.25, -0.5, -0.75, -1.0, -1.0]


def test_overlong_penalty_paper_scale_and_factor():
    # the paper's L_max 20480, L_cache 4096: 18432 tokens is half-way into the buffer
    got = overlong_penalty(torch.tensor([16384, 18432, 20480]), max_len=20480, buffer=4096, factor=0.5)
    assert got.tolist() == [0.0, -0.25, -0.5]


def test_overlong_penalty_off_and_bad_buffer():
    assert overlong_penalty(torch.tensor([5, 50]), 20, 0).tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="longer than the length limit"):
        overlong_penalty(torch.tensor([1]), 4, 5)


def test_group_spread_filter_hand_vectors():
    # groups: [1,1,1] flat, [0,1] mixed, [0,0,0] flat, [0.2, 0.25] spread 0.05, [7] single
    values = torch.tensor([1, 1, 1, 0, 1, 0, 0, 0, 0.2, 0.25, 7.0])
    groups = Groups.from_sizes([3, 2, 3, 2, 1])
    assert group_spread_ok(values, groups).tolist() == [False, True, False, True, False]
    assert group_spread_ok(values, groups, min_spread=0.1).tolist() == [False, True, False, False, False]
