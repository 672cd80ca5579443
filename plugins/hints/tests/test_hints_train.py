"""Real training steps on the tiny random model through the contract kit.

The tiny model never answers correctly, so every group is all-incorrect and
triggers hints; ScriptedHints makes the hinter's answers parsable (one good
hint, a parse failure, a leak of "7", an overlong hint per four).
"""
import pytest
import torch
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo_hints.plugin import Hints
from grpo_zoo_hints.testing import ScriptedHints

FAST = {"hinter_model": "tiny-random", "hinter_max_new_tokens": 6, "hinter_lr": 1e-3, "replace_if": "always"}


class RatioSpy:
    """Counts loss rows whose old log-prob differs from the current one (ratio != 1 at mu = 1)."""

    def __init__(self):
        self.rows = 0

    @hookimpl
    def zoo_policy_loss(self, ctx, inputs):
        diff = ((inputs.old_logp - inputs.logp.detach()).abs() * inputs.mask).amax(-1)
        self.rows += int((diff > 1e-6).sum())
        return None  # the built-in loss answers


class BatchSpy:
    """Keeps the batch the last update trained on (in_loss is final by step_metrics)."""

    batch = None

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        self.batch = rollouts
        return {}


def hinted_in_loss(spy: BatchSpy) -> int:
    b = spy.batch
    return sum(1 for i in range(len(b)) if bool(b.in_loss[i]) and b.behavior_prompt_ids[i] is not None)


def test_contract(zoo_check_plugin):
    hooks = zoo_check_plugin(Hints)
    assert {"zoo_rollout", "zoo_config_model", "zoo_state_dict", "zoo_load_state_dict", "zoo_step_metrics"} <= set(hooks)
    assert getattr(Hints.zoo_rollout, "grpo_zoo_impl")["wrapper"]  # wraps sampling, never conflicts


def test_train_step_with_the_separate_hinter(zoo_train_step):
    res = zoo_train_step(plugins={"hints": ScriptedHints}, config={"hints": FAST})
    m = res.last
    hard = m["hint/hard_prompts"]
    assert hard == 2 and m["rollouts"] == 6  # 2 prompts x 3: the batch size is kept
    assert m["hint/hints_generated"] == 4 * hard
    assert m["hint/gate_failures/parse"] == hard and m["hint/gate_failures/overlong"] == hard
    assert m["hint/replaced_groups"] == hard and m["hint/hinter_updated"] == 1.0
    assert all(k in m for k in ("hint/recovered_groups", "hint/reliance_mean", "hint/hinter_reward_mean"))
    plugin = res.ctx.hooks.pm.get_plugin("hints")
    fresh, _ = load_model_and_tokenizer("tiny-random")
    moved = [k for k, v in plugin.hinter.model.state_dict().items() if not torch.equal(v, fresh.state_dict()[k])]
    assert moved, "the hinter was trained"


def test_self_hints_with_the_guide_ratio(zoo_train_step):
    spy, batch = RatioSpy(), BatchSpy()
    section = {**FAST, "mode": "self", "loss_mode": "no_hint_ratio", "max_level": 2}
    res = zoo_train_step(plugins={"hints": ScriptedHints, "spy": spy, "batch": batch}, config={"hints": section})
    m = res.last
    plugin = res.ctx.hooks.pm.get_plugin("hints")
    assert plugin.hinter is None  # self mode loads no hinter
    assert m["hint/replaced_groups"] == 2 and m["hint/hints_generated"] == 2 * 4 * 2  # levels 1 and 2 (no success)
    assert spy.rows == hinted_in_loss(batch) == 6  # exactly the hinted rows get the corrected ratio


def test_resume_restores_the_hinter(zoo_train_step, tmp_path):
    first = zoo_train_step(plugins={"hints": ScriptedHints}, config={"hints": FAST}, run_dir=tmp_path / "run")
    before = first.ctx.hooks.pm.get_plugin("hints")
    again = zoo_train_step(plugins={"hints": ScriptedHints}, config={"hints": FAST}, run_dir=tmp_path / "run", resume=True)
    after = again.ctx.hooks.pm.get_plugin("hints")
    assert after is not before and after.hinter is not None
    for k, v in before.hinter.model.state_dict().items():
        assert torch.equal(v, after.hinter.model.state_dict()[k]), k
    assert after.totals == before.totals and after.totals["hard"] == 2


def test_with_mc_grpo(zoo_train_step):
    pytest.importorskip("grpo_zoo_mc_grpo")
    spy, batch = RatioSpy(), BatchSpy()
    section = {**FAST, "loss_mode": "no_hint_ratio"}
    res = zoo_train_step(plugins={"hints": ScriptedHints, "spy": spy, "batch": batch},
                         config={"plugins": ["mc_grpo"], "hints": section})
    m = res.last
    assert m["rollouts"] == 2 * 5  # MC-GRPO samples G+1 = 4, rounded to an odd 5; the hinted groups keep that size
    assert m["hint/replaced_groups"] == 2 and any(k.startswith("mc_grpo/") for k in m)
    # MC-GRPO drops each group's pivot from the loss: the correction follows the final loss mask.
    assert spy.rows == hinted_in_loss(batch) == 2 * 4
