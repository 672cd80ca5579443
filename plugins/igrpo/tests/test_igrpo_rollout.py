"""The sampling wrapper on a model-free backend: budgets, draft choice, q', metrics, composition."""
import math

import pytest
import torch

from grpo_zoo.config import ConfigError
from grpo_zoo.plugins import PluginHookError
from grpo_zoo_igrpo.plugin import STAGE_KEY


def rollout(ctx, fakes, n_tasks, budgets):
    tasks = fakes.make_tasks(n_tasks)
    request = fakes.make_request(ctx, tasks, budgets)
    return request, ctx.hooks.rollout(ctx, request)


def test_only_refinements_are_returned_in_the_augmented_context(fake_ctx, fakes):
    table = {"draft|t0|2": {"r": 1.0}, "draft|t1|0": {"r": 0.5}}
    ctx, gen, _ = fake_ctx(table)
    request, out = rollout(ctx, fakes, 2, [8, 8])
    # stage 1: 4 drafts per task on the plain prompt; stage 2: 4 refinements in q'
    assert [c["budgets"] for c in gen.calls] == [[4, 4], [4, 4]]
    assert gen.calls[0]["extras"][STAGE_KEY] == "draft" and STAGE_KEY not in gen.calls[1]["extras"]
    assert "<draft>" not in str(gen.calls[0]["prompts"])
    assert len(out) == 8 and out.group.tolist() == [0] * 4 + [1] * 4
    assert all(t.startswith("refine|") for t in out.completion_text)
    for i in range(len(out)):
        draft = "draft|t0|2" if int(out.group[i]) == 0 else "draft|t1|0"
        assert f"<draft>\n{draft}\n</draft>" in out.prompt_text[i]
    # the request was rewritten in place: the loss sees exactly what the inner stage sampled from
    assert request.budgets == [4, 4]
    assert "draft|t0|2" in request.prompts[0][-1]["content"]
    assert request.prompts[0][0] == {"role": "system", "content": "Answer in <answer></answer>."}
    info = out.extras["igrpo"]["tasks"]
    assert [t["draft"] for t in info] == ["draft|t0|2", "draft|t1|0"]
    assert [t["draft_reward"] for t in info] == [1.0, 0.5]
    assert info[0]["plain_prompt"][-1]["content"] == "What is 0 + 0?"


def test_ties_go_to_the_first_draft(fake_ctx, fakes):
    table = {"draft|t0|1": {"r": 1.0}, "draft|t0|3": {"r": 1.0}}
    ctx, _, _ = fake_ctx(table)
    _, out = rollout(ctx, fakes, 2, [8, 8])
    assert [t["draft"] for t in out.extras["igrpo"]["tasks"]] == ["draft|t0|1", "draft|t1|0"]  # t1: all 0 -> first


def test_tie_break_shortest(fake_ctx, fakes):
    # the fake's completion k has k + 1 tokens: among tied drafts 1 and 3, draft 1 is shorter; all-tied t1 -> draft 0
    table = {"draft|t0|1": {"r": 1.0}, "draft|t0|3": {"r": 1.0}}
    ctx, _, _ = fake_ctx(table, config={"igrpo": {"tie_break": "shortest"}})
    _, out = rollout(ctx, fakes, 2, [8, 8])
    assert [t["draft"] for t in out.extras["igrpo"]["tasks"]] == ["draft|t0|1", "draft|t1|0"]


def test_draft_is_ranked_by_the_weighted_total(fake_ctx, fakes):
    # two columns (GDPO-style): draft 0 wins on a, draft 1 on b; the weights decide
    table = {"draft|t0|0": {"a": 1.0, "b": 0.0}, "draft|t0|1": {"a": 0.0, "b": 1.0}}
    ctx, _, _ = fake_ctx(table, columns=("a", "b"), config={"reward": {"weights": {"a": 1.0, "b": 2.0}}})
    _, out = rollout(ctx, fakes, 1, [4])
    assert out.extras["igrpo"]["tasks"][0]["draft"] == "draft|t0|1"
    assert out.extras["igrpo"]["tasks"][0]["draft_reward"] == 2.0
    # igrpo.draft_weights ranks drafts with other weights (e.g. a judge column only), the metrics keep reward.weights
    ctx, _, _ = fake_ctx(table, columns=("a", "b"), config={"reward": {"weights": {"a": 1.0, "b": 2.0}},
                                                             "igrpo": {"draft_weights": {"b": 0.0}}})
    _, out = rollout(ctx, fakes, 1, [4])
    assert out.extras["igrpo"]["tasks"][0]["draft"] == "draft|t0|0"
    assert out.extras["igrpo"]["tasks"][0]["draft_reward"] == 1.0


def test_draft_weights_must_name_produced_columns(fake_ctx, fakes):
    ctx, _, _ = fake_ctx({}, config={"igrpo": {"draft_weights": {"judge": 1.0}}})
    with pytest.raises(PluginHookError, match=r"igrpo\.draft_weights names column\(s\) \['judge'\]") as err:
        rollout(ctx, fakes, 1, [4])
    assert isinstance(err.value.original, ConfigError)


def test_metrics_hand_computed(fake_ctx, fakes):
    # task t0: drafts r = (0, 1, 0, 0) -> best 1.0; refinements r = (1, 0, 2, 1)
    # task t1: drafts all 0 -> best 0.0 (first); refinements r = (0, 0, 1, 0)
    table = {"draft|t0|1": {"r": 1.0}, "refine|t0|0": {"r": 1.0}, "refine|t0|2": {"r": 2.0},
             "refine|t0|3": {"r": 1.0}, "refine|t1|2": {"r": 1.0}}
    ctx, _, _ = fake_ctx(table)
    _, out = rollout(ctx, fakes, 2, [8, 8])
    m = out.metrics
    assert m["igrpo/drafts_count"] == 8 and m["igrpo/refinements_count"] == 8
    assert m["igrpo/draft_reward"] == pytest.approx(1 / 8)
    assert m["igrpo/best_draft_reward"] == pytest.approx(0.5)
    assert m["igrpo/refine_reward"] == pytest.approx(5 / 8)
    # beating the own draft: t0 -> only r = 2 (1 of 4); t1 -> r = 1 (1 of 4)
    assert m["igrpo/improved_frac"] == pytest.approx(2 / 8)
    # worse: t0 -> r = 0 (1 of 4); t1 -> none
    assert m["igrpo/worse_frac"] == pytest.approx(1 / 8)
    assert m["igrpo/gain"] == pytest.approx(((0 + -1 + 1 + 0) + (0 + 0 + 1 + 0)) / 8)
    assert m["igrpo/copied_frac"] == 0.0
    assert m["igrpo/draft/r/mean"] == pytest.approx(1 / 8)
    assert "igrpo/entropy" not in m  # no engine in this context


def test_draft_and_refinement_draw_different_random_streams(fake_ctx, fakes):
    ctx, gen, _ = fake_ctx({})
    rollout(ctx, fakes, 2, [4, 4])
    draft_seed, refine_seed = gen.calls[0]["seed"], gen.calls[1]["seed"]
    assert draft_seed != refine_seed
    assert refine_seed == ctx.generator(1).initial_seed()  # the refinements keep the run's usual stream
    assert gen.calls[0]["extras"]["seed_salt"] != gen.calls[1]["extras"].get("seed_salt")


def test_budget_one_is_sampled_plainly(fake_ctx, fakes):
    ctx, gen, _ = fake_ctx({})
    request, out = rollout(ctx, fakes, 2, [1, 4])
    assert gen.calls[0]["budgets"] == [2]  # only t1 is drafted
    assert request.budgets == [1, 2]
    assert "<draft>" not in out.prompt_text[0] and "<draft>" in out.prompt_text[-1]
    assert out.metrics["igrpo/undrafted_tasks_count"] == 1
    assert out.extras["igrpo"]["tasks"][0]["draft"] is None


def test_min_refinements(fake_ctx, fakes):
    ctx, gen, _ = fake_ctx({})  # the default is 2: knapsack's N_low = 2 tasks are sampled plainly
    assert ctx.config.igrpo.min_refinements == 2
    request, out = rollout(ctx, fakes, 3, [2, 3, 8])
    assert gen.calls[0]["budgets"] == [1, 4]  # t0 has no room for a draft
    assert request.budgets == [2, 2, 4] and out.metrics["igrpo/undrafted_tasks_count"] == 1
    assert "<draft>" not in out.prompt_text[0] and out.groups.counts.tolist()[0] == 2


@pytest.mark.parametrize(
    "config, budgets, drafts, refinements",
    [
        ({}, [9, 8, 3, 2], [4, 4, 1], [5, 4, 2, 2]),  # budget 2: two plain samples (min_refinements = 2)
        ({"min_refinements": 1}, [9, 8, 3, 2], [4, 4, 1, 1], [5, 4, 2, 1]),
        ({"num_drafts": 2}, [9, 8, 3, 2], [2, 2, 1], [7, 6, 2, 2]),
        ({"draft_fraction": 0.25}, [8, 5], [2, 1], [6, 4]),
        ({"budget_mode": "add"}, [4, 3], [2, 1], [4, 3]),
        ({"budget_mode": "add", "num_drafts": 3}, [4, 1], [3, 3], [4, 1]),
    ],
)
def test_budget_split(fake_ctx, fakes, config, budgets, drafts, refinements):
    ctx, gen, _ = fake_ctx({}, config={"igrpo": config})
    request, out = rollout(ctx, fakes, len(budgets), budgets)
    assert gen.calls[0]["budgets"] == drafts
    assert request.budgets == refinements
    assert out.groups.counts.tolist() == refinements


def test_chat_mode_turns(fake_ctx, fakes):
    ctx, gen, _ = fake_ctx({"draft|t0|0": {"r": 1.0}}, config={"igrpo": {"chat_mode": "turns"}})
    request, out = rollout(ctx, fakes, 1, [4])
    q = request.prompts[0]
    assert [m["role"] for m in q] == ["system", "user", "assistant", "user"]
    assert q[1]["content"] == "What is 0 + 0?" and q[2]["content"] == "draft|t0|0"
    assert "guidance, not as ground truth" in q[3]["content"]


def test_composes_with_a_plus_one_budget_wrapper_and_ragged_budgets(fake_ctx, fakes, zoo_context):
    # MC-GRPO's +1 lands on the refinements: G = 8 -> 9 = 4 drafts + 5 refinements
    ctx, gen, _ = fake_ctx({}, config={"sampling": {"group_size": 8}}, extra={"plus_one": fakes.PlusOne()})
    tasks = fakes.make_tasks(3)
    budgets = ctx.hooks.plan_budget(ctx, tasks, ctx.config.sampling.group_size)
    assert budgets == [9, 9, 9]
    out = ctx.hooks.rollout(ctx, fakes.make_request(ctx, tasks, budgets))
    assert gen.calls[0]["budgets"] == [4, 4, 4] and out.groups.counts.tolist() == [5, 5, 5]
    # knapsack-like ragged budgets are split task by task (and +1 still goes to the refinements)
    ctx, gen, _ = fake_ctx({}, extra={"plus_one": fakes.PlusOne(), "knap": fakes.FixedBudgets([2, 11, 4])})
    budgets = ctx.hooks.plan_budget(ctx, tasks, ctx.config.sampling.group_size)
    assert budgets == [3, 12, 5]
    out = ctx.hooks.rollout(ctx, fakes.make_request(ctx, tasks, budgets))
    assert gen.calls[0]["budgets"] == [1, 6, 2] and out.groups.counts.tolist() == [2, 6, 3]


def test_best_of_n_binary_drafts_matches_theory(zoo_context, fakes):
    """With binary reward of success probability p, the chosen draft is correct with probability 1 - (1 - p)^N."""
    tasks = fakes.make_tasks(3000)
    for p in (0.2, 0.5):
        for n in (1, 2, 4):
            gen, reward = fakes.FakeGenerate(), fakes.BernoulliReward(p, seed=int(100 * p) + n)
            ctx = zoo_context(plugins={"fake_generate": gen, "bern": reward},
                              config={"plugins": ["igrpo"], "reward": {"builtin": []}, "igrpo": {"num_drafts": n}})
            out = ctx.hooks.rollout(ctx, fakes.make_request(ctx, tasks, [n + 2] * len(tasks)))  # n drafts + 2 refinements
            chosen = torch.tensor([t["draft_reward"] for t in out.extras["igrpo"]["tasks"]])
            expected = 1 - (1 - p) ** n
            se = math.sqrt(expected * (1 - expected) / len(tasks))
            assert abs(float(chosen.mean()) - expected) < 4 * se + 1e-9, (p, n, float(chosen.mean()), expected)
