"""The generative-judge reward: parser, prompt, config errors, OpenAI-compatible and local backends, state."""

import pytest
import torch

from grpo_zoo.config import ConfigError
from grpo_zoo.plugins import PluginHookError
from grpo_zoo.testing import roundtrip_state
from grpo_zoo.types import Rollouts, Task
from grpo_zoo_igrpo.judge import JudgeConfig, judge_messages, parse_score


@pytest.mark.parametrize(
    "reply, score",
    [
        ("<score>0.8</score>", 0.8),
        ("<SCORE> 1 </SCORE>", 1.0),
        ("Looks fine. <score>0.3</score> ... on reflection <score>0.6</score>", 0.6),  # last tag wins
        ("<score>7/10</score>", 0.7),
        ("<score>85%</score>", 0.85),
        ("Score: 0.25", 0.25),
        ("The final score is **0.9**.", 0.9),
        ("rating = 8 out of 10", 0.8),
        ("Grade: 4/5", 0.8),
        ("Score: 7", 0.7),  # a bare number in (1, 10] is out of 10
        ("score: 42", 0.42),  # (10, 100] is out of 100
        ("\\boxed{0.5}", 0.5),
        ("0.75", 0.75),
        ("  1.\n", 1.0),
        ("<think>score: 0.1? no</think><score>0.9</score>", 0.9),
        ("Correct", 1.0),
        ("incorrect.", 0.0),
        ("No", 0.0),
        ("score: 0.2 and step 3 is right", 0.2),
        # unreadable -> None (the plugin then uses judge.fallback)
        ("", None),
        (None, None),
        ("I cannot decide.", None),
        ("The solution is not correct", None),
        ("<score>high</score>", None),
        ("Score: 150", None),
        ("Score: -0.5", None),
        ("<score>3/0</score>", None),
        ("<score>12/10</score>", None),
        ("The answer 12 is plausible", None),
    ],
)
def test_parse_score(reply, score):
    got = parse_score(reply)
    assert got == (pytest.approx(score) if score is not None else None)


def test_judge_prompt_with_and_without_reference():
    cfg = JudgeConfig(max_solution_chars=10)
    task = Task(id="a", prompt="What is 2+3?", answer="5")
    msgs = judge_messages(cfg, task, "abcdefghijklmnop")
    assert msgs[0]["role"] == "system"
    user = msgs[1]["content"]
    assert "Problem:\nWhat is 2+3?\n\nReference answer: 5\n\nSolution:\n...ghijklmnop\n\n" in user
    cfg = JudgeConfig(use_reference=False, system_prompt=None, template="{question}|{solution}|{reference}")
    assert judge_messages(cfg, task, "s") == [{"role": "user", "content": "What is 2+3?|s|"}]


@pytest.mark.parametrize(
    "section, match",
    [
        ({"backend": "transformers"}, "judge.model is required"),
        ({"backend": "vllm"}, "judge.backend"),
        ({"fallback": 1.5}, "judge.fallback"),
        ({"template": "{question} only"}, r"judge.template.*must contain \{solution\}"),
        ({"reference_text": "{gold}"}, r"judge.reference_text.*unknown placeholder"),
        ({"max_new_tokens": 0}, "judge.max_new_tokens"),
        ({"endpoint": {"timeout_s": 0}}, "judge.endpoint.timeout_s"),
        ({"column": ""}, "judge.column"),
        ({"unknown": 1}, "judge.unknown"),
    ],
)
def test_config_errors_name_the_key(zoo_context, section, match):
    with pytest.raises(ConfigError, match=match):
        zoo_context(config={"plugins": ["judge"], "judge": section})


def _rollouts(texts, tasks=None):
    tasks = tasks or [Task(id="t", prompt="What is 2+3?", answer="5")]
    return Rollouts(tasks=tasks, group=torch.zeros(len(texts), dtype=torch.long), prompt_text=["p"] * len(texts),
                    prompt_ids=[[1]] * len(texts), completion_ids=[[2]] * len(texts), completion_text=list(texts))


@pytest.fixture
def fake_endpoint(zoo_fake_endpoint):
    """An OpenAI-compatible /v1/chat/completions that answers from the solution text."""

    def reply(body):
        user = body["messages"][-1]["content"]
        return "<score>0.9</score>" if "GOOD" in user else "Score: 2/10" if "BAD" in user else "hmm, unsure"

    server = zoo_fake_endpoint(reply)
    return f"{server.url}/v1", server.requests


def test_openai_backend_scores_dedupes_and_counts(zoo_context, fake_endpoint, monkeypatch):
    url, requests = fake_endpoint
    monkeypatch.setenv("JUDGE_TEST_API_KEY", "sk-test")
    ctx = zoo_context(config={"plugins": ["judge"], "judge": {
        "backend": "openai", "model": "grader", "fallback": 0.1,
        "endpoint": {"url": url, "api_key_env": "JUDGE_TEST_API_KEY", "max_concurrency": 2}}})
    r = _rollouts(["GOOD one", "BAD one", "junk", "GOOD one"])
    cols = ctx.hooks.rewards(ctx, r)
    assert cols["judge"].tolist() == pytest.approx([0.9, 0.2, 0.1, 0.9])
    assert len(requests) == 3  # the repeated solution is judged once
    assert all(q["path"] == "/v1/chat/completions" and q["body"]["model"] == "grader" for q in requests)
    assert all(q["auth"] == "Bearer sk-test" for q in requests)
    assert "Reference answer: 5" in requests[0]["body"]["messages"][-1]["content"]
    m = ctx.hooks.step_metrics(ctx, r, 0)
    assert (m["judge/calls_count"], m["judge/unparsed"], m["judge/errors"]) == (4, 1, 0)
    assert m["judge/unparsed_frac"] == 0.25 and m["judge/mean_score"] == pytest.approx((0.9 * 2 + 0.2 + 0.1) / 4)
    assert ctx.hooks.step_metrics(ctx, r, 1)["judge/calls_count"] == 0  # per-step counters reset
    state = roundtrip_state(ctx, "judge")
    assert state == {"total": {"calls": 4, "unparsed": 1, "errors": 0}}


def test_openai_backend_errors(zoo_context):
    dead = {"url": "http://127.0.0.1:9/v1", "timeout_s": 0.5}
    ctx = zoo_context(config={"plugins": ["judge"], "judge": {"backend": "openai", "retries": 0, "endpoint": dead}})
    with pytest.raises(PluginHookError, match="judge.endpoint.url"):
        ctx.hooks.rewards(ctx, _rollouts(["x"]))
    ctx = zoo_context(config={"plugins": ["judge"], "judge": {
        "backend": "openai", "retries": 0, "on_error": "fallback", "fallback": 0.5, "endpoint": dead}})
    assert ctx.hooks.rewards(ctx, _rollouts(["x", "y"]))["judge"].tolist() == [0.5, 0.5]
    m = ctx.hooks.step_metrics(ctx, _rollouts(["x"]), 0)
    assert m["judge/errors"] == 2 and m["judge/unparsed"] == 2


def test_local_transformers_judge(zoo_context):
    ctx = zoo_context(config={"plugins": ["judge"], "judge": {
        "backend": "transformers", "model": "tiny-random", "max_new_tokens": 3, "column": "grade", "fallback": 0.3}})
    cols = ctx.hooks.rewards(ctx, _rollouts(["a", "b", "a"]))
    assert cols["grade"].shape == (3,) and bool(((cols["grade"] >= 0) & (cols["grade"] <= 1)).all())


def test_policy_judge_needs_an_engine(zoo_context):
    ctx = zoo_context(config={"plugins": ["judge"]})
    with pytest.raises(PluginHookError, match="ctx.engine is None"):
        ctx.hooks.rewards(ctx, _rollouts(["a"]))
