"""Validation of generator (LLM) output: every kind of bad output is rejected with its reason."""
import json

import pytest

from grpo_zoo_golden_goose.segment import display_option, excerpt_bounds, line_units, sentence_units
from grpo_zoo_golden_goose.validate import REASONS, Rejected, Rules, extract_json, make_item, proposal_from_json, validate

SOURCE = (
    "The kettle was cold when Ada came home. She filled it with water and set it on the stove. "
    "While it heated she read the letter from her brother. It said he would arrive on Sunday. "
    "She smiled and poured the tea."
)
SPAN = "She filled it with water and set it on the stove."
MASKED = SOURCE.replace(SPAN, "[MASK]")
VERBS = ["washed", "hid", "sold", "painted", "dropped", "polished", "broke", "moved", "found", "lost", "kept"]
GOOD = [f"She {verb} the kettle for the {n}th time." for n, verb in enumerate(VERBS)]


def reply(**over) -> str:
    obj = {"masked_text": MASKED, "span": SPAN, "distractors": GOOD}
    obj.update(over)
    return json.dumps(obj)


def check(text: str, rules=Rules()):
    return validate(proposal_from_json(extract_json(text)), SOURCE, rules)


def reason_of(text: str, rules=Rules()) -> str:
    with pytest.raises(Rejected) as err:
        check(text, rules)
    return err.value.reason


def test_good_output_is_kept_with_exact_offsets():
    s, e, shown = check(reply())
    assert SOURCE[s:e] == SPAN
    assert shown == GOOD


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here is the exercise:\n```json\n" + reply() + "\n```\nHope this helps.",
        "Here you go: " + reply().replace('"]', '",]').replace("}", ",}"),  # trailing commas
        "```\n" + reply().replace('"', "'").replace("\\'", "'") + "\n```",  # Python-style quotes
        reply().replace(MASKED, MASKED.replace("  ", " ").replace(". ", ".\n")),  # reflowed whitespace
    ],
)
def test_robust_extraction(text):
    s, e, _ = check(text)
    assert SOURCE[s:e] == SPAN


def test_extract_json_edge_cases():
    assert extract_json("no json here") is None
    assert extract_json('{"a": "brace } in string", "b": [1, 2,],}') == {"a": "brace } in string", "b": [1, 2]}
    assert extract_json("prose {not json} then {\"x\": 1}") == {"x": 1}


@pytest.mark.parametrize(
    "text, reason",
    [
        ("I cannot do that.", "no_json"),
        ('{"masked_text": "x [MASK]", "span": ', "no_json"),
        (json.dumps({"masked": MASKED, "distractors": GOOD}), "bad_schema"),
        (reply(distractors="not a list"), "bad_schema"),
        (reply(masked_text=SOURCE), "mask_missing"),
        (reply(masked_text=MASKED + " [MASK]"), "mask_repeated"),
        (reply(span="   "), "span_empty"),
        (reply(span="She drank a glass of milk and went to bed."), "span_not_in_source"),
        (reply(masked_text=MASKED.replace("brother", "sister")), "reconstruction_mismatch"),
        (reply(distractors=GOOD[:5] + [GOOD[0]] + GOOD[5:]), "duplicate_distractors"),
        (reply(distractors=GOOD[:5] + ["she FILLED it with water  and set it on the stove."] + GOOD[5:]), "answer_in_distractors"),
        (reply(distractors=GOOD[:6]), "too_few_distractors"),
        (reply(distractors=GOOD + [""]), "bad_distractor"),
        (reply(distractors=GOOD + ["x [MASK] y"]), "bad_distractor"),
    ],
)
def test_each_bad_output_is_rejected(text, reason):
    assert reason in REASONS
    assert reason_of(text) == reason


def test_span_length_rules():
    assert reason_of(reply(span="She", masked_text=SOURCE.replace("She filled", "[MASK] filled", 1))) == "span_too_short"
    rules = Rules(max_chars=20)
    assert reason_of(reply(), rules) == "span_too_long"


def test_window_offsets_are_source_offsets():
    prefix = "PREAMBLE. " * 5
    text = prefix + SOURCE
    p = proposal_from_json(extract_json(reply()), window_start=len(prefix), window_end=len(text))
    s, e, _ = validate(p, text, Rules())
    assert text[s:e] == SPAN and s >= len(prefix)


def test_code_span_display_keeps_relative_indentation():
    code = "def f(x):\n    if x:\n        y = x + 1\n        return y\n    return 0\n"
    s = code.index("y = x")
    e = code.index("return y") + len("return y")
    assert display_option(code[s:e], "        ", "code") == "y = x + 1\nreturn y"
    s2 = code.index("if x:")
    e2 = code.index("y = x + 1") + len("y = x + 1")
    assert display_option(code[s2:e2], "    ", "code") == "if x:\n    y = x + 1"
    item = make_item({"id": "f", "text": code, "domain": "code"}, s2, e2, ["a = 1\nb = 2"] * 1, "test", 0)
    assert item["masked_text"] == "def f(x):\n    [MASK]\n        return y\n    return 0\n"
    assert item["answer"] == code[s2:e2]
    # prose options are shown on one line
    assert display_option("two\nlines  here", "", "passage") == "two lines here"


def test_segmentation():
    units = sentence_units("One e.g. two. Three? Four!\n\nFive 3.5 six.")
    assert len(units) == 4
    assert [u is None for u in line_units("a\n\n  b\n")] == [False, True, False]
    a, b = excerpt_bounds("l1\nl2\nl3 [x]\nl4\nl5\n", 9, 12, 4, by_lines=True)
    assert (a, b) == (6, 15)
