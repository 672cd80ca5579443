"""The dapo plugin through the contract kit: acceptance rule, overlong column, config checks, state, composition."""
import pytest
import torch
from grpo_zoo import hookimpl
from grpo_zoo.config import ConfigError
from grpo_zoo.testing import roundtrip_state

from grpo_zoo_dapo.formulas import overlong_penalty
from grpo_zoo_dapo.plugin import DAPO


class Spy:
    def __init__(self):
        self.batch = None

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        self.batch = rollouts
        return {}


class Coin:
    """Column ``coin``: flat 0 for tasks with an even id number, else the rollout's parity in its group."""

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        seen, vals = {}, []
        for i in range(len(rollouts)):
            g = int(rollouts.group[i])
            k = seen.get(g, 0)
            seen[g] = k + 1
            even = int(rollouts.task_of(i).id.rsplit("/", 1)[-1]) % 2 == 0
            vals.append(0.0 if even else float(k % 2))
        return {"coin": torch.tensor(vals)}


def test_contract(zoo_check_plugin):
    hooks = zoo_check_plugin(DAPO)
    assert {"zoo_accept_groups", "zoo_reward", "zoo_check_config", "zoo_config_model"} <= set(hooks)


def test_overlong_buffer_is_checked_against_max_new_tokens_at_load(zoo_context):
    with pytest.raises(ConfigError, match=r"dapo.overlong_buffer \(8\) must be < sampling.max_new_tokens \(8\)"):
        zoo_context(plugins=["dapo"], config={"dapo": {"overlong_buffer": 8}})
    with pytest.raises(ConfigError, match="dapo.min_spread"):
        zoo_context(plugins=["dapo"], config={"dapo": {"min_spread": -1}})


def test_filter_column_must_exist(zoo_train_step):
    with pytest.raises(Exception, match="dapo.filter_column = 'nope' is not a reward column"):
        zoo_train_step(plugins=["dapo"], config={"dapo": {"filter_column": "nope"}})


def test_train_step_refills_and_shapes_with_knapsack(zoo_train_step):
    pytest.importorskip("grpo_zoo_knapsack")
    spy = Spy()
    cfg = {
        "sampling": {"max_gen_batches": 6, "max_new_tokens": 8},
        "reward": {"builtin": []},
        "dapo": {"filter_column": "coin", "overlong_buffer": 3, "overlong_penalty": 0.5},
        "loss": {"type": "dapo", "epsilon_high": 0.28, "mask_truncated_completions": True},
        "knapsack": {"total_budget": 6, "reward_column": "coin"},
        "train": {"prompts_per_step": 2},
    }
    res = zoo_train_step(plugins={"dapo": "dapo", "knapsack": "knapsack", "coin": Coin(), "spy": spy},
                         config=cfg, steps=2, kit_reward=False)
    for m in res.metrics:
        assert m["dynamic_sampling/groups_kept"] == 2
        assert m["dapo/rejected_frac"] == pytest.approx(
            m["dynamic_sampling/groups_rejected"] / m["dynamic_sampling/groups_drawn"])
        assert m["rollouts"] <= 6  # knapsack's step total holds for the kept groups
    last = res.metrics[-1]
    assert last["dapo/groups_drawn_total"] == sum(m["dynamic_sampling/groups_drawn"] for m in res.metrics)
    assert sum(m["dynamic_sampling/groups_rejected"] for m in res.metrics) >= 1
    b = spy.batch
    assert all(int(t.id.rsplit("/", 1)[-1]) % 2 == 1 for t in b.tasks)  # only groups with spread were kept
    # the overlong column is the formula on the completion lengths (limit 8, buffer 3, factor 0.5)
    want = overlong_penalty(b.completion_lengths(), 8, 3, 0.5)
    assert torch.equal(b.rewards["dapo/overlong"], want)
    assert last["dapo/overlong_mean"] == pytest.approx(float(want.mean()))
    assert last["dapo/truncated_frac"] == pytest.approx(float(b.truncated.float().mean()))
    state = roundtrip_state(res.ctx, "dapo")
    assert state["totals"]["drawn"] == last["dapo/groups_drawn_total"]


def test_no_filter_when_dynamic_sampling_is_off(zoo_context):
    ctx = zoo_context(plugins=["dapo"], config={"dapo": {"dynamic_sampling": False}})
    from grpo_zoo.types import Rollouts, Task

    r = Rollouts(tasks=[Task("a", "q")], group=[0, 0], prompt_text=["p"] * 2, prompt_ids=[[1]] * 2,
                 completion_ids=[[1], [2]], completion_text=["a", "b"], rewards={"correct": torch.zeros(2)})
    assert ctx.hooks.accept_groups(ctx, r).tolist() == [True]
    ctx2 = zoo_context(plugins=["dapo"])
    assert ctx2.hooks.accept_groups(ctx2, r).tolist() == [False]  # all-equal rewards: rejected
