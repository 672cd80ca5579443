"""The sampling wrapper end to end without a model: stub generator, scripted hints, hand-made log-probs."""
import math

import pytest
import torch
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.plugins import PluginError
from grpo_zoo.testing import roundtrip_state
from grpo_zoo.types import RolloutRequest, Task
from grpo_zoo_hints.plugin import RESAMPLE_SALT
from grpo_zoo_hints.testing import HINT_MARK, SCRIPT, FakeEngine, OfflineHints, StubGenerator

GOOD = "Work out the expression one operation at a time."


def setup(zoo_context, hints=None, **section):
    hints = hints or OfflineHints()
    conf = {"hints": {"train_hinter": False, **section}, "reward": {"builtin": ["correct"]}, "train": {"micro_batch_size": 3}}
    ctx = zoo_context(plugins={"hints": hints, "stub": StubGenerator()}, config=conf)
    ctx.engine = FakeEngine()
    # t0 and t2 are hard (the stub answers "0" without a hint), t1 is solved
    tasks = [Task(id="t0", prompt="What is 3+4?", answer="7"), Task(id="t1", prompt="What is 0*5?", answer="0"),
             Task(id="t2", prompt="What is 9-2?", answer="7")]
    request = RolloutRequest(tasks=tasks, prompts=[ctx.hooks.build_prompt(ctx, t) for t in tasks], budgets=[4, 4, 2])
    return ctx, hints, request


def test_hard_groups_are_hinted_and_replaced_keeping_the_batch_size(zoo_context):
    ctx, hints, request = setup(zoo_context)
    before = ctx.sample(request)
    out = ctx.hooks.rollout(ctx, request)
    assert len(out) == len(before) == 10
    assert out.groups.counts.tolist() == [4, 4, 2]
    for i in range(len(out)):
        hinted = out.prompt_text[i].endswith(f"\n\nHint: {GOOD}")
        assert hinted == (int(out.group[i]) != 1), "only the hard groups carry the hint"
        assert (HINT_MARK in out.prompt_ids[i]) == hinted  # hinted_context: loss context = hinted prompt
    assert out.rewards["correct"][out.group == 0].tolist() == [1.0, 0.0, 1.0, 0.0]
    # the hinter saw the question, one failed attempt and the reference answer
    asked = hints.asked[0]
    assert len(asked) == 2 and "What is 3+4?" in asked[0][-1]["content"] and "Final answer: 7" in asked[0][-1]["content"]
    m = ctx.hooks.step_metrics(ctx, out, 0)
    n4 = 0.875 * math.exp(-0.5 / 0.3)  # p = 1/2, n = 4, HR = -1.0 - (-0.5)
    n2 = 0.5 * math.exp(-0.5 / 0.3)  # p = 1/2, n = 2
    assert m["hint/hard_prompts"] == 2 and m["hint/hints_generated"] == 8 and m["hint/hints_used"] == 2
    assert (m["hint/gate_failures/parse"], m["hint/gate_failures/leak"], m["hint/gate_failures/overlong"]) == (2, 2, 2)
    assert m["hint/replaced_groups"] == 2 and m["hint/recovered_groups"] == 2 and m["hint/extra_rollouts"] == 6
    assert m["hint/reliance_mean"] == pytest.approx(-0.5)
    assert m["hint/pass_rate_mean"] == pytest.approx(0.5)
    assert m["hint/hinter_reward_mean"] == pytest.approx((n4 + n2 + 6 * -0.2) / 8)
    info = {d["task"]: d for d in out.extras["hints"]}
    assert info["t0"]["hinter_reward"] == pytest.approx(n4) and info["t2"]["hint"] == GOOD
    # advantages are recomputed by the active advantage hooks afterwards
    ctx.compute_advantages(out)
    assert out.advantages[out.group == 0].abs().gt(0).all()


def test_no_usable_hint_leaves_the_batch_alone(zoo_context):
    ctx, hints, request = setup(zoo_context, OfflineHints(["nothing", "<hint>It is 7</hint>"]))
    before = ctx.sample(request)
    out = ctx.hooks.rollout(ctx, request)
    assert out.prompt_text == before.prompt_text and out.completion_text == before.completion_text
    m = ctx.hooks.step_metrics(ctx, out, 0)
    assert m["hint/replaced_groups"] == 0 and m["hint/hinter_reward_mean"] == pytest.approx(-0.2)


def test_replace_if_mixed_and_threshold(zoo_context):
    # threshold 1.0: nothing counts as correct, so t1 is hard too and no hint "succeeds"
    ctx, _, request = setup(zoo_context, threshold=1.0, replace_if="mixed")
    out = ctx.hooks.rollout(ctx, request)
    m = ctx.hooks.step_metrics(ctx, out, 0)
    assert m["hint/hard_prompts"] == 3 and m["hint/replaced_groups"] == 0
    ctx, _, request = setup(zoo_context, threshold=1.0, replace_if="always", max_hard_groups=1)
    out = ctx.hooks.rollout(ctx, request)
    m = ctx.hooks.step_metrics(ctx, out, 0)
    assert m["hint/hinted_prompts"] == 1 and m["hint/replaced_groups"] == 1 and len(out) == 10


def test_self_mode_escalates_levels_until_a_rollout_succeeds(zoo_context):
    hints = OfflineHints(["no tags"], ["still none"], SCRIPT)
    ctx, hints, request = setup(zoo_context, hints, mode="self")
    out = ctx.hooks.rollout(ctx, request)
    assert len(hints.asked) == 3  # levels 1, 2, 3
    assert "lists the steps of the solution" in hints.asked[2][0][-1]["content"]
    m = ctx.hooks.step_metrics(ctx, out, 0)
    assert m["hint/level_mean"] == 3 and m["hint/replaced_groups"] == 2 and m["hint/hints_generated"] == 24
    assert "hint/hinter_updated" not in m  # no hinter update in self mode
    # a level that succeeds stops the escalation
    hints = OfflineHints(["no tags"], SCRIPT)
    ctx, hints, request = setup(zoo_context, hints, mode="self")
    ctx.hooks.rollout(ctx, request)
    assert len(hints.asked) == 2


def test_missing_reward_column_names_the_key(zoo_context):
    ctx, _, request = setup(zoo_context, reward_column="nope")
    with pytest.raises(PluginError, match=r"hints\.reward_column = 'nope'"):
        ctx.hooks.rollout(ctx, request)


def test_no_hint_ratio_trains_without_the_hint_and_marks_the_hinted_context(zoo_context):
    ctx, _, request = setup(zoo_context, loss_mode="no_hint_ratio")
    out = ctx.hooks.rollout(ctx, request)
    assert not any(HINT_MARK in p for p in out.prompt_ids), "the loss context is the prompt without the hint"
    assert len(out) == 10 and sum("Hint:" in t for t in out.prompt_text) == 0
    plain = {int(out.group[i]): out.prompt_ids[i] for i in range(len(out))}
    for i in range(len(out)):
        behavior = out.behavior_prompt_ids[i]
        if int(out.group[i]) == 1:  # solved without a hint: an ordinary ratio
            assert behavior is None
        else:  # core computes log pi_old(y | q + h) in the context the rollout was sampled in
            assert HINT_MARK in behavior and out.prompt_ids[i] == plain[int(out.group[i])]
    ctx.compute_advantages(out)
    kept = out.take(torch.nonzero(out.in_loss).flatten())  # what the update sees after selection
    assert sum(b is not None for b in kept.behavior_prompt_ids) == int((kept.group != 1).sum())


def test_totals_survive_a_state_round_trip(zoo_context):
    ctx, hints, request = setup(zoo_context)
    ctx.hooks.rollout(ctx, request)
    assert hints.totals["recovered"] == 2 and hints.totals["hard"] == 2
    saved = roundtrip_state(ctx, "hints")
    hints.totals = {k: 0 for k in hints.totals}
    ctx.hooks.load_state_dicts(ctx, {"hints": saved})
    assert hints.totals["recovered"] == 2 and hints.totals["hints"] == 8


class SeedSpy(StubGenerator):
    """The stub backend, recording the seed every hinted request would be sampled with."""

    def __init__(self):
        self.hinted_seeds = []

    @hookimpl
    def zoo_generate(self, ctx, request):
        if request.extras.get("hints"):
            self.hinted_seeds.append((request.extras["seed_salt"], ctx.sampling_seed(request)))
        return super().zoo_generate(ctx, request)


def test_each_self_hint_level_resamples_with_its_own_random_stream(zoo_context):
    hints = OfflineHints(["<hint>Count again.</hint>"], ["<hint>Check the sign.</hint>"], ["<hint>Go step by step.</hint>"])
    spy = SeedSpy()
    conf = {"hints": {"mode": "self", "threshold": 1.0}, "reward": {"builtin": ["correct"]}}  # nothing succeeds: 3 levels
    ctx = zoo_context(plugins={"hints": hints, "stub": spy}, config=conf)
    ctx.engine = FakeEngine()
    task = Task(id="t0", prompt="What is 3+4?", answer="7")
    ctx.hooks.rollout(ctx, RolloutRequest(tasks=[task], prompts=[ctx.hooks.build_prompt(ctx, task)], budgets=[2]))
    assert len(spy.hinted_seeds) == 3
    salts, seeds = zip(*spy.hinted_seeds)
    assert salts[0] == RESAMPLE_SALT and len(set(salts)) == 3
    assert len(set(seeds)) == 3, "levels 2 and 3 must not reuse level 1's random numbers"


class GradedGenerator(StubGenerator):
    """Hinted prompts succeed on the first ``CORRECT[hint]`` of their rollouts; unhinted ones never."""

    CORRECT = {"Weak hint.": 1, "Good hint.": 2, "Giveaway hint.": 4}

    @hookimpl
    def zoo_generate(self, ctx, request):
        out = super().zoo_generate(ctx, request)
        for i in range(len(out)):
            text = out.prompt_text[i]
            hint = text.rsplit("Hint: ", 1)[1] if "Hint: " in text else None
            k = sum(1 for j in range(i) if int(out.group[j]) == int(out.group[i]))  # rank within its group
            answer = "7" if hint is not None and k < self.CORRECT[hint] else "0"
            out.completion_text[i], out.completion_ids[i] = answer, [int(answer), 1, 2]
        return out


@pytest.mark.parametrize("reward", ["transfer_weighted", "non_degenerate", "variance"])
def test_the_best_of_several_surviving_hints_replaces_the_group(zoo_context, reward):
    # three hints pass the gate with pass rates 1/4, 2/4 and 4/4: the mixed 2/4 earns the highest hinter reward
    # (a hint that solves everything earns 0); the weak one comes first so "first wins ties" cannot pick the best
    script = ["<hint>Weak hint.</hint>", "<hint>Good hint.</hint>", "<hint>Giveaway hint.</hint>"]
    hints = OfflineHints(script)
    conf = {"hints": {"train_hinter": False, "num_hints": 3, "hinter_reward": reward}, "reward": {"builtin": ["correct"]}}
    ctx = zoo_context(plugins={"hints": hints, "stub": GradedGenerator()}, config=conf)
    ctx.engine = FakeEngine()
    task = Task(id="t0", prompt="What is 3+4?", answer="7")
    out = ctx.hooks.rollout(ctx, RolloutRequest(tasks=[task], prompts=[ctx.hooks.build_prompt(ctx, task)], budgets=[4]))
    m = ctx.hooks.step_metrics(ctx, out, 0)
    assert m["hint/hints_used"] == 3
    [info] = out.extras["hints"]
    assert info["hint"] == "Good hint." and info["pass_rate"] == 0.5
    assert out.rewards["correct"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert all(t.endswith("Hint: Good hint.") for t in out.prompt_text)
