"""The separate hinter on the tiny random model: GRPO update, isolation from the policy, state."""
import pytest
import torch
from grpo_zoo.testing import roundtrip_state
from grpo_zoo.trainer.engine import Engine
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.types import Task
from grpo_zoo_hints.plugin import Hints
from grpo_zoo_hints.prompts import hinter_messages

SECTION = {"hinter_model": "tiny-random", "hinter_lr": 1e-2, "hinter_max_new_tokens": 6}


@pytest.fixture
def setup(zoo_context):
    ctx = zoo_context(plugins={"hints": Hints}, config={"hints": SECTION})
    policy, tok = load_model_and_tokenizer("tiny-random")
    ctx.engine = Engine(policy, tok)
    plugin = ctx.hooks.pm.get_plugin("hints")
    hinter = plugin.ensure_hinter(ctx)
    tasks = [Task(id="a", prompt="What is 1+1?", answer="2"), Task(id="b", prompt="What is 2+5?", answer="7")]
    answers = hinter.generate(ctx, ctx.config.hints, tasks, [hinter_messages(t, "3") for t in tasks], [3, 3], seed=0)
    return ctx, plugin, hinter, answers


def snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def changed(before, model):
    return [k for k, v in model.state_dict().items() if not torch.equal(v, before[k])]


def test_hinter_update_changes_only_the_hinter(setup):
    ctx, plugin, hinter, answers = setup
    assert hinter.model is not ctx.engine.model
    assert answers.groups.counts.tolist() == [3, 3]  # the M hints of a prompt form one group
    policy_before, hinter_before = snapshot(ctx.engine.model), snapshot(hinter.model)
    stats = hinter.update(ctx, ctx.config.hints, answers, torch.tensor([-0.2, 0.5, 0.0, 0.3, -0.2, 0.1]))
    assert stats["hinter_updated"] == 1.0 and stats["hinter_grad_norm"] > 0
    assert changed(hinter_before, hinter.model), "the hinter's weights moved"
    assert not changed(policy_before, ctx.engine.model), "the policy is untouched"
    assert all(p.grad is None for p in ctx.engine.model.parameters())
    # equal rewards in every group: zero advantages, no step
    before = snapshot(hinter.model)
    stats = hinter.update(ctx, ctx.config.hints, answers, torch.full((6,), -0.2))
    assert stats["hinter_updated"] == 0.0 and not changed(before, hinter.model)


def test_hinter_state_round_trip_and_late_load(setup, zoo_context):
    ctx, plugin, hinter, answers = setup
    hinter.update(ctx, ctx.config.hints, answers, torch.tensor([-0.2, 0.5, 0.0, 0.3, -0.2, 0.1]))
    trained = snapshot(hinter.model)
    saved = roundtrip_state(ctx, "hints")  # saved in the checkpoint format and loaded back into the live hinter
    assert not changed(trained, hinter.model)
    assert saved["hinter"]["optimizer"]["state"], "AdamW moments are saved"
    # a fresh run loads the state before its hinter exists (resume): it is applied when the hinter loads
    ctx2 = zoo_context(plugins={"hints": Hints}, config={"hints": SECTION})
    ctx2.engine = ctx.engine
    fresh = ctx2.hooks.pm.get_plugin("hints")
    ctx2.hooks.load_state_dicts(ctx2, {"hints": saved})
    assert fresh.hinter is None
    fresh.ensure_hinter(ctx2)
    assert not changed(trained, fresh.hinter.model)
    step = lambda opt: [s["step"] for s in opt.state_dict()["state"].values()]  # noqa: E731
    assert step(fresh.hinter.optimizer) == step(hinter.optimizer)


def completion_logprob(hinter, answers, rows):
    with torch.no_grad():
        logp, mask = hinter.engine.logprobs([answers.prompt_ids[i] for i in rows], [answers.completion_ids[i] for i in rows])
    return (logp.float() * mask).sum(-1)


def test_hinter_updates_raise_the_log_prob_of_rewarded_hints(setup):
    """The update's direction: after a few GRPO steps on a scripted reward, the rewarded hints become more likely
    and the penalized ones less (a flipped advantage sign would teach the hinter to write worse hints)."""
    ctx, plugin, hinter, answers = setup
    rewards = torch.tensor([0.6, -0.2, 0.0, -0.2, 0.0, 0.6])  # one rewarded and one gated hint per prompt
    good, bad = [0, 5], [1, 3]
    before_good, before_bad = completion_logprob(hinter, answers, good), completion_logprob(hinter, answers, bad)
    for _ in range(3):
        assert hinter.update(ctx, ctx.config.hints, answers, rewards)["hinter_updated"] == 1.0
    gain_good = completion_logprob(hinter, answers, good) - before_good
    gain_bad = completion_logprob(hinter, answers, bad) - before_bad
    # on a tiny random model every hint shares most tokens, so all log-probs can move together:
    # the update's direction shows in the rewarded hints gaining more than the penalized ones
    assert gain_good.min() > gain_bad.max(), (gain_good, gain_bad)
    assert (gain_good > 0).all(), gain_good
