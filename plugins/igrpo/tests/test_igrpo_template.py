"""q' construction, budget split and best-draft selection as pure functions; config errors."""
import pytest
import torch

from grpo_zoo.config import ConfigError
from grpo_zoo.segments import Groups
from grpo_zoo_igrpo.plugin import IGRPOConfig
from grpo_zoo_igrpo.select import best_per_group, split_budget
from grpo_zoo_igrpo.template import DEFAULT_TEMPLATE, augment_prompt

T = "Q: {question}\nDRAFT: {draft}\nImprove it."


def test_default_template_text():
    q = augment_prompt("What is 2+2?", "  I think 5. <answer>5</answer>\n", DEFAULT_TEMPLATE)
    assert q == (
        "What is 2+2?\n\n"
        "Here is an earlier draft solution to this problem. It may contain mistakes: use it as guidance, "
        "not as ground truth.\n\n"
        "<draft>\nI think 5. <answer>5</answer>\n</draft>\n\n"
        "Write a new, complete solution that improves on the draft: check its reasoning and fix any error. "
        "Keep its final answer only if you have verified it, and do not copy the draft word for word."
    )


def test_raw_text_and_braces_in_values():
    assert augment_prompt("x {y}", "d {0} }", T) == "Q: x {y}\nDRAFT: d {0} }\nImprove it."


def test_chat_append_rewrites_only_the_last_user_message():
    q = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": "second"},
    ]
    out = augment_prompt(q, "d", T)
    assert out[:3] == q[:3]
    assert out[3] == {"role": "user", "content": "Q: second\nDRAFT: d\nImprove it."}
    assert q[3]["content"] == "second"  # input untouched


def test_chat_turns_and_system_instruction():
    q = [{"role": "user", "content": "q"}]
    out = augment_prompt(q, "d", T, chat_mode="turns", followup="Do better.", system_instruction="Drafts are hints.")
    assert out == [
        {"role": "system", "content": "Drafts are hints."},
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "d"},
        {"role": "user", "content": "Do better."},
    ]
    out = augment_prompt([{"role": "system", "content": "S"}, *q], "d", T, system_instruction="Drafts are hints.")
    assert out[0]["content"] == "S\n\nDrafts are hints."


def test_chat_without_user_message_and_non_text_content():
    assert augment_prompt([{"role": "system", "content": "s"}], "d", T)[-1] == {
        "role": "user", "content": "Q: \nDRAFT: d\nImprove it."}
    with pytest.raises(ValueError, match="chat_mode = 'turns'"):
        augment_prompt([{"role": "user", "content": [{"type": "text", "text": "q"}]}], "d", T)


def test_split_budget_defaults():
    # default min_refinements = 2: a budget of 2 is two plain samples, never 1 draft + a refinement group of one
    assert [split_budget(b) for b in (9, 8, 4, 3, 2, 1)] == [(4, 5), (4, 4), (2, 2), (1, 2), (0, 2), (0, 1)]
    assert split_budget(8, num_drafts=10) == (6, 2)
    assert [split_budget(b, min_refinements=1) for b in (2, 1)] == [(1, 1), (0, 1)]
    assert split_budget(8, num_drafts=10, min_refinements=1) == (7, 1)
    assert split_budget(5, budget_mode="add") == (2, 5)
    # refinement groups of one get advantage 0 under GRPO: min_refinements keeps at least that many
    assert [split_budget(b, min_refinements=2) for b in (2, 3, 4, 9)] == [(0, 2), (1, 2), (2, 2), (4, 5)]
    assert split_budget(9, num_drafts=8, min_refinements=3) == (6, 3)


def test_best_per_group_ragged():
    g = Groups.from_sizes([3, 1, 4, 0, 2])
    s = torch.tensor([0.0, 1.0, 1.0, 0.2, 0.5, 0.9, 0.9, 0.1, -1.0, -1.0])
    assert best_per_group(s, g, "first").tolist() == [1, 3, 5, -1, 8]
    lengths = torch.tensor([1, 5, 2, 1, 1, 9, 3, 1, 4, 4])
    assert best_per_group(s, g, "shortest", lengths).tolist() == [2, 3, 6, -1, 8]
    picks = {tuple(best_per_group(s, g, "random", generator=torch.Generator().manual_seed(k)).tolist()) for k in range(40)}
    assert {p[0] for p in picks} == {1, 2} and {p[2] for p in picks} == {5, 6} and {p[4] for p in picks} == {8, 9}


@pytest.mark.parametrize(
    "section, match",
    [
        ({"draft_fraction": 1.0}, "igrpo.draft_fraction"),
        ({"draft_fraction": 0}, "igrpo.draft_fraction"),
        ({"num_drafts": 0}, "igrpo.num_drafts"),
        ({"budget_mode": "double"}, "igrpo.budget_mode"),
        ({"tie_break": "last"}, "igrpo.tie_break"),
        ({"chat_mode": "system"}, "igrpo.chat_mode"),
        ({"template": "no draft here: {question}"}, r"igrpo.template.*must contain \{draft\}"),
        ({"template": "{question} {draft} {answer}"}, r"igrpo.template.*unknown placeholder.*answer"),
        ({"template": "{draft} {"}, r"igrpo.template.*malformed"),
        ({"template": "{} {draft}"}, r"igrpo.template.*positional"),
        ({"followup": "  "}, "igrpo.followup"),
        ({"log_drafts": -1}, "igrpo.log_drafts"),
        ({"min_refinements": 0}, "igrpo.min_refinements"),
        ({"drafts": 2}, "igrpo.drafts"),
    ],
)
def test_config_errors_name_the_key(zoo_context, section, match):
    with pytest.raises(ConfigError, match=match):
        zoo_context(config={"plugins": ["igrpo"], "igrpo": section})


def test_config_defaults():
    c = IGRPOConfig()
    assert (c.draft_fraction, c.num_drafts, c.budget_mode, c.tie_break, c.chat_mode) == (0.5, None, "split", "first", "append")
