"""Real steps on the tiny random model: augmented-context log-probs, the kit, resume, other papers' plugins."""
import json

import pytest
import torch

from grpo_zoo.testing import KitReward
from grpo_zoo.trainer.engine import CompletionLogprobs, Engine
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.trainer.rundir import read_jsonl
from grpo_zoo.trainer.step import make_request, policy_update
from grpo_zoo_igrpo.judge import Judge
from grpo_zoo_igrpo.plugin import IGRPO


def test_contract(zoo_check_plugin):
    assert zoo_check_plugin(IGRPO) == ["zoo_config_model", "zoo_rollout", "zoo_trained_rollouts"]
    assert zoo_check_plugin(Judge) == [
        "zoo_config_model", "zoo_load_state_dict", "zoo_reward", "zoo_state_dict", "zoo_step_metrics"]


def test_logprobs_are_taken_in_the_augmented_context(zoo_context):
    ctx = zoo_context(
        plugins={"kit_reward": KitReward()},
        config={"plugins": ["igrpo"], "reward": {"builtin": []}, "sampling": {"group_size": 4},
                "loss": {"beta": 0.1, "num_iterations": 2}},
    )
    model, tok = load_model_and_tokenizer("tiny-random")
    ref, _ = load_model_and_tokenizer("tiny-random")
    engine = Engine(model, tok)
    engine.ref_scorer = CompletionLogprobs(ref.eval().requires_grad_(False))
    ctx.engine = engine
    tasks = ctx.hooks.task_source(ctx)[:2]
    request = make_request(ctx, tasks)
    out = ctx.hooks.rollout(ctx, request)
    assert len(out) == 4 and request.budgets == [2, 2]
    info = out.extras["igrpo"]["tasks"]
    plain_ids = {}
    for i in range(len(out)):
        g = int(out.group[i])
        augmented = engine.render(request.prompts[g])
        assert out.prompt_text[i] == augmented and "<draft>" in augmented
        assert info[g]["draft"].strip() in augmented
        assert out.prompt_ids[i] == engine.encode(augmented)
        plain_ids[g] = engine.encode(engine.render(info[g]["plain_prompt"]))
        assert len(out.prompt_ids[i]) > len(plain_ids[g])
    # the same completion scores differently in q' than in q: the context matters
    with torch.no_grad():
        lp_aug, mask = engine.logprobs([out.prompt_ids[0]], [out.completion_ids[0]])
        lp_plain, _ = engine.logprobs([plain_ids[int(out.group[0])]], [out.completion_ids[0]])
    assert not torch.allclose(lp_aug[mask], lp_plain[mask])
    # the trainer's old / reference / new log-probs all use rollouts.prompt_ids (= q')
    ctx.compute_advantages(out)
    seen, original = [], engine.logprobs

    def spy(prompt_ids, completion_ids, scorer=None):
        seen.extend(map(tuple, prompt_ids))
        return original(prompt_ids, completion_ids, scorer=scorer)

    engine.logprobs = spy
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda k: 1.0)
    policy_update(ctx, out, opt, sched)
    assert len(seen) == 4 * len(out)  # old + ref + 2 iterations of new
    assert set(seen) == {tuple(p) for p in out.prompt_ids}
    assert not set(seen) & {tuple(p) for p in plain_ids.values()}


def test_kit_train_step_and_resume(zoo_train_step, tmp_path):
    run = tmp_path / "run"
    res = zoo_train_step(plugins=["igrpo"], config={"sampling": {"group_size": 4}}, steps=1, run_dir=run)
    m = res.last
    assert m["rollouts"] == 2 * 2 == m["igrpo/refinements_count"] and m["igrpo/drafts_count"] == 4
    for k in ("igrpo/draft_reward", "igrpo/refine_reward", "igrpo/improved_frac", "igrpo/entropy"):
        assert k in m and m[k] == m[k]  # present and not NaN
    assert m["igrpo/entropy"] > 0
    samples = read_jsonl(run / "samples.jsonl")
    assert samples and all("<draft>" in s["prompt"] for s in samples)
    drafts = read_jsonl(run / "igrpo_drafts.jsonl")
    assert [d["step"] for d in drafts] == [0, 0] and len(drafts[0]["all_drafts"]) == 2
    # a row of a step that is replayed after resume is dropped
    with open(run / "igrpo_drafts.jsonl", "a") as f:
        f.write(json.dumps({"step": 1, "task": "stale", "draft": "x"}) + "\n")
    res = zoo_train_step(plugins=["igrpo"], config={"sampling": {"group_size": 4}}, steps=2, run_dir=run, resume=True)
    assert [r["step"] for r in res.metrics] == [0, 1]
    drafts = read_jsonl(run / "igrpo_drafts.jsonl")
    assert [d["step"] for d in drafts] == [0, 0, 1, 1] and "stale" not in {d["task"] for d in drafts}


def test_with_judge_column_and_several_rewards(zoo_train_step):
    # the judge is the tiny random policy itself: its replies are unreadable -> fallback, counted
    res = zoo_train_step(
        plugins=["igrpo", "judge"],
        config={
            "sampling": {"group_size": 4},
            "reward": {"builtin": ["correct", "format"], "weights": {"judge": 0.5}},
            "advantage": {"aggregation": "normalize_then_sum"},
            "judge": {"max_new_tokens": 4, "fallback": 0.25},
            "igrpo": {"draft_weights": {"judge": 1.0, "correct": 0.0, "format": 0.0, "kit/even_tokens": 0.0}},
        },
    )
    m = res.last
    assert m["judge/calls_count"] == 4 + 4  # drafts and refinements are judged
    assert m["judge/unparsed"] == m["judge/calls_count"] and m["judge/unparsed_frac"] == 1.0
    assert m["reward/judge/mean"] == pytest.approx(0.25) and m["igrpo/draft/judge/mean"] == pytest.approx(0.25)


def test_with_mc_grpo(zoo_train_step):
    pytest.importorskip("grpo_zoo_mc_grpo")
    # G = 4 -> MC-GRPO plans 5 -> 2 drafts + 3 refinements; the median pivot of each group leaves the loss
    res = zoo_train_step(plugins=["igrpo", "mc_grpo"], config={"sampling": {"group_size": 4}})
    m = res.last
    assert m["igrpo/drafts_count"] == 2 * 2
    assert m["rollouts"] == m["igrpo/refinements_count"] == 2 * 3
    assert m["rollouts_in_loss"] == 2 * 2


def test_with_knapsack(zoo_train_step):
    pytest.importorskip("grpo_zoo_knapsack")
    # 4 tasks seen every step, p from the last step: step 1's budgets come from step 0's refinements
    res = zoo_train_step(
        plugins=["igrpo", "knapsack"],
        config={"task": {"size": 4}, "train": {"prompts_per_step": 4}, "sampling": {"group_size": 4},
                "knapsack": {"estimate": "last"}},
        steps=2,
    )
    for m in res.metrics:
        assert m["rollouts"] == m["igrpo/refinements_count"]
        assert 4 * 2 <= m["igrpo/drafts_count"] + m["igrpo/refinements_count"] <= 4 * 4
        # min_refinements = 2: a task at knapsack's N_low = 2 is sampled plainly (no refinement group of one)
        low = m.get("knapsack/budget_min", 4) <= 2
        assert (m["igrpo/undrafted_tasks_count"] > 0) == low, m


def test_with_gdpo(zoo_train_step):
    pytest.importorskip("grpo_zoo_gdpo")
    res = zoo_train_step(plugins=["igrpo", "gdpo"],
                         config={"sampling": {"group_size": 4}, "reward": {"builtin": ["correct", "format"]}})
    m = res.last
    assert m["rollouts"] == m["igrpo/refinements_count"] == 4
    assert {"igrpo/draft/correct/mean", "igrpo/draft/format/mean", "igrpo/draft/kit/even_tokens/mean"} <= set(m)
