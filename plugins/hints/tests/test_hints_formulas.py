import math

import pytest
import torch
from grpo_zoo.config import ConfigError
from grpo_zoo.segments import Groups
from grpo_zoo.types import Task
from grpo_zoo_hints.config import HintsConfig
from grpo_zoo_hints.formulas import group_advantages, hint_reliance, hinter_reward, sequence_mean
from grpo_zoo_hints.plugin import Hints
from grpo_zoo_hints.prompts import hinted_prompt, hinter_messages, reference_solution


def test_reliance_on_hand_made_logprobs():
    plain = torch.tensor([[-1.0, -2.0, 0.0], [-0.2, -0.2, -0.2]])
    plain_mask = torch.tensor([[True, True, False], [True, True, True]])
    hinted = torch.tensor([[-0.5, -0.5, -9.0], [-0.4, -0.1, -0.1]])
    hinted_mask = plain_mask
    assert sequence_mean(plain, plain_mask).tolist() == pytest.approx([-1.5, -0.2])
    hr = hint_reliance(plain, plain_mask, hinted, hinted_mask)
    # -1.5 - (-0.5) = -1.0 (leans on the hint); -0.2 - (-0.2) = 0 (does not)
    assert hr.tolist() == pytest.approx([-1.0, 0.0])


def test_hinter_reward_test_vectors():
    p = torch.tensor([0.5, 0.5, 0.25, 0.0, 1.0])
    hr = torch.tensor([-0.3, 0.2, 0.0, -1.0, -1.0])
    tw = hinter_reward(p, 4, hr, "transfer_weighted", 0.3)
    assert tw.tolist() == pytest.approx([0.875 * math.exp(-1.0), 0.875, 0.6796875, 0.0, 0.0])
    nd = hinter_reward(p, 4, hr, "non_degenerate")
    assert nd.tolist() == pytest.approx([0.875, 0.875, 0.6796875, 0.0, 0.0])
    var = hinter_reward(p, 4, hr, "variance")
    assert var.tolist() == pytest.approx([0.25, 0.25, 0.1875, 0.0, 0.0])
    # per-hint n (ragged groups): p = 1/3 with n = 3
    assert hinter_reward(torch.tensor([1 / 3]), torch.tensor([3.0]), 0.0, "non_degenerate").item() == pytest.approx(
        1 - (1 / 3) ** 3 - (2 / 3) ** 3
    )
    with pytest.raises(ValueError, match="hints.hinter_reward"):
        hinter_reward(p, 4, hr, "nope")


def test_hinter_group_advantages():
    r = torch.tensor([0.5, -0.2, -0.2, 0.1, 0.3])
    adv = group_advantages(r, Groups.from_sizes([4, 1]), eps=1e-4)
    std = math.sqrt(0.33 / 3)
    expect = [(x - 0.05) / (std + 1e-4) for x in [0.5, -0.2, -0.2, 0.1]] + [0.0]
    assert adv.tolist() == pytest.approx(expect, rel=1e-6)
    # all hints gated: zero spread, zero advantage (even with eps = 0)
    assert group_advantages(torch.full((4,), -0.2), Groups.from_sizes([4]), eps=0.0).tolist() == [0.0] * 4


def test_hinted_prompt_is_question_blank_line_hint():
    task = Task(id="t", prompt="What is 3+4?", answer="7")
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 3+4?"}]
    out = hinted_prompt(chat, task, "Add the ones.")
    assert out[-1]["content"] == "What is 3+4?\n\nHint: Add the ones."
    assert chat[-1]["content"] == "What is 3+4?"  # the original is not mutated
    templated = "<|user|>What is 3+4?<|end|><|assistant|>"
    assert hinted_prompt(templated, task, "h", prefix="") == "<|user|>What is 3+4?\n\nh<|end|><|assistant|>"
    assert hinted_prompt("Other text", task, "h") == "Other text\n\nHint: h"


def test_hinter_input_has_question_attempt_and_reference():
    task = Task(id="t", prompt="What is 3+4?", answer="7", metadata={"solution": "3+4 = 7 by counting."})
    msgs = hinter_messages(task, "I think 12" + "x" * 50, level=1, max_attempt_chars=20)
    user = msgs[-1]["content"]
    assert "What is 3+4?" in user and "I think 12" in user and "[...]" in user
    assert "3+4 = 7 by counting." in user and "Final answer: 7" in user and "<hint>" in user
    assert reference_solution(Task(id="u", prompt="q"), "solution") == "(no reference solution available)"
    assert hinter_messages(task, "a", level=3)[-1]["content"] != hinter_messages(task, "a", level=1)[-1]["content"]


def test_config_defaults_and_errors(zoo_context):
    cfg = HintsConfig()
    assert (cfg.mode, cfg.num_hints, cfg.threshold, cfg.gate_penalty, cfg.reliance_temperature) == ("separate", 4, 0.5, -0.2, 0.3)
    assert (cfg.hinter_reward, cfg.loss_mode, cfg.reward_column, cfg.hinter_model) == (
        "transfer_weighted", "hinted_context", "correct", "smollm2-135m")
    bad = [
        ({"num_hints": 0}, "hints.num_hints"),
        ({"mode": "teacher"}, "hints.mode"),
        ({"gate_penalty": 0.5}, "hints.gate_penalty"),
        ({"reliance_temperature": 0}, "hints.reliance_temperature"),
        ({"loss_mode": "guide"}, "hints.loss_mode"),
        ({"max_level": 4}, "hints.max_level"),
        ({"reward_column": " "}, "hints.reward_column"),
        ({"typo_key": 1}, "hints.typo_key"),
    ]
    for section, key in bad:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            zoo_context(plugins={"hints": Hints}, config={"hints": section})
    ctx = zoo_context(plugins={"hints": Hints}, config={"hints": {"mode": "self", "num_hints": 2}})
    assert ctx.config.hints.mode == "self" and ctx.config.hints.num_hints == 2
