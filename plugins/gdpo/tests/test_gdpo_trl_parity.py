"""Parity with TRL 1.16's multi_objective_aggregation="normalize_then_sum", through TRL's own trainer code."""
import importlib.util
from pathlib import Path

import pytest
import torch

from grpo_zoo_gdpo.sim import rollouts_from_columns

trl = pytest.importorskip("trl")
pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


def _load_driver():
    # by file path: the tests folder is not a package and need not be on sys.path
    path = Path(__file__).with_name("gdpo_trl_driver.py")
    spec = importlib.util.spec_from_file_location("grpo_zoo_gdpo_tests_trl_driver", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


trl_advantages = _load_driver().trl_advantages


def test_trl_version():
    assert trl.__version__.startswith("1.16"), trl.__version__


def ours(zoo_context, rewards, g, weights=None, plugins=("gdpo",)):
    k = rewards.shape[1]
    cols = {f"col{j}": rewards[:, j] for j in range(k)}
    config = {}
    if "gdpo" in plugins and weights is not None:
        config["gdpo"] = {"weights": {f"col{j}": float(w) for j, w in enumerate(weights)}}
    elif weights is not None:
        config["reward"] = {"weights": {f"col{j}": float(w) for j, w in enumerate(weights)}}
    ctx = zoo_context(plugins=list(plugins), config=config)
    r = rollouts_from_columns(cols, [g] * (rewards.shape[0] // g))
    return ctx.compute_advantages(r).advantages.double()


def random_batch(seed, groups, g, k, binary_cols):
    gen = torch.Generator().manual_seed(seed)
    cols = []
    for j in range(k):
        if j < binary_cols:
            cols.append(torch.randint(0, 2, (groups * g,), generator=gen).float())
        else:
            cols.append(torch.round(torch.rand(groups * g, generator=gen) * 4, decimals=2) - 1)
    rewards = torch.stack(cols, 1)
    rewards[:g, 0] = 1.0  # a flat column in the first group (std 0)
    return rewards


CASES = [
    # seed, groups, G, columns, binary columns, weights
    (0, 6, 4, 2, 2, None),
    (1, 5, 2, 3, 3, [1.0, 0.5, 2.0]),
    (2, 4, 8, 4, 2, [0.3, 1.0, -0.5, 2.5]),
    (3, 3, 3, 2, 1, [2.0, 1.0]),
    (4, 8, 6, 3, 0, None),
]


@pytest.mark.parametrize("seed,groups,g,k,binary,weights", CASES)
def test_normalize_then_sum_matches_trl(zoo_context, tmp_path, seed, groups, g, k, binary, weights):
    rewards = random_batch(seed, groups, g, k, binary)
    theirs = trl_advantages(rewards, g, weights, output_dir=str(tmp_path))
    mine = ours(zoo_context, rewards, g, weights)
    assert theirs.shape == mine.shape
    print(f"max abs diff vs TRL: {float((mine - theirs).abs().max()):.2e}")
    assert torch.allclose(mine, theirs, atol=1e-6, rtol=0), (mine - theirs).abs().max()
    # and it is a different thing from TRL's sum-then-normalize on the same rewards
    grpo = trl_advantages(rewards, g, weights, aggregation="sum_then_normalize", output_dir=str(tmp_path))
    assert (grpo - theirs).abs().max() > 1e-3


def test_grpo_baseline_matches_trl(zoo_context, tmp_path):
    """Sanity of the driver: core's built-in sum-then-normalize equals TRL's default path too."""
    rewards = random_batch(7, 5, 4, 3, 2)
    theirs = trl_advantages(rewards, 4, [1.0, 2.0, 0.5], aggregation="sum_then_normalize", output_dir=str(tmp_path))
    mine = ours(zoo_context, rewards, 4, [1.0, 2.0, 0.5], plugins=())
    assert torch.allclose(mine, theirs, atol=1e-6, rtol=0), (mine - theirs).abs().max()


def test_weights_from_reward_section_match_trl(zoo_context, tmp_path):
    """gdpo falls back to reward.weights: same numbers as TRL's reward_weights."""
    rewards = random_batch(8, 4, 4, 2, 2)
    theirs = trl_advantages(rewards, 4, [3.0, 1.0], output_dir=str(tmp_path))
    cols = {"col0": rewards[:, 0], "col1": rewards[:, 1]}
    ctx = zoo_context(plugins=["gdpo"], config={"reward": {"weights": {"col0": 3.0}}})
    mine = ctx.compute_advantages(rollouts_from_columns(cols, [4] * 4)).advantages.double()
    assert torch.allclose(mine, theirs, atol=1e-6, rtol=0)
