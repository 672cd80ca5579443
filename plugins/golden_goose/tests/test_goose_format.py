"""Option shuffling is seeded; the letter extractor and the reward are exact."""
from collections import Counter

import pytest
import torch

from grpo_zoo.types import Rollouts
from grpo_zoo_golden_goose.format import LetterScore, choose_options, extract_letter, format_item, to_task
from grpo_zoo_golden_goose.plugin import GoldenGoose


def item(i=0, n=12):
    return {
        "id": f"src/{i}@0-10", "source_id": f"src/{i}", "domain": "passage", "generator": "test", "prefix": "",
        "masked_text": "Before [MASK] after.", "answer": "the truth", "answer_option": "the truth",
        "distractors": [f"lie number {j}" for j in range(n)], "span_start": 7, "span_end": 16,
        "excerpt_start": 0, "excerpt_end": 30,
    }


def test_shuffle_is_seeded_and_complete():
    a = format_item(item(), 9, seed=3)
    b = format_item(item(), 9, seed=3)
    assert a["options"] == b["options"] and a["letter"] == b["letter"]
    assert len(a["options"]) == 9 and len(set(a["options"])) == 9
    assert a["options"][a["answer_index"]] == "the truth"
    assert a["letter"] == "ABCDEFGHI"[a["answer_index"]]
    assert "(A) " in a["prompt"] and "(I) " in a["prompt"] and "(J) " not in a["prompt"]
    assert "Before [MASK] after." in a["prompt"]
    # another seed gives another order for at least some items
    assert any(format_item(item(i), 9, seed=3)["options"] != format_item(item(i), 9, seed=4)["options"] for i in range(10))


def test_letters_are_spread_evenly():
    letters = Counter(format_item(item(i), 9, seed=0)["letter"] for i in range(900))
    assert set(letters) == set("ABCDEFGHI")
    assert max(letters.values()) < 160  # 100 expected each


def test_option_count_and_pick_rules():
    opts, idx = choose_options(item(), 3, seed=0)
    assert len(opts) == 3 and opts[idx] == "the truth"
    it = item()
    it["distractors"] = ["x" * n for n in (1, 50, 9, 8, 30, 10)]
    opts, idx = choose_options(it, 3, seed=0, pick="closest_length")
    assert sorted(o for k, o in enumerate(opts) if k != idx) == ["x" * 8, "x" * 9]  # "the truth" has 9 chars
    with pytest.raises(ValueError):
        choose_options(item(n=4), 9, seed=0)


@pytest.mark.parametrize(
    "text, letter",
    [
        ("<answer>C</answer>", "C"),
        ("I think... <answer> (c) </answer>", "C"),
        ("Answer: C", "C"),
        ("The answer is (B).", "B"),
        ("The correct option is D because it fits.", "D"),
        ("(E)", "E"),
        ("F", "F"),
        ("It must be (G): the others break the loop. (G) is right.", "G"),
        ("Answer: I think it is (B)", "B"),
        ("Answer: I", "I"),
        ("(A) foo (B) bar (C) baz", None),  # listing several options earns nothing
        ("<answer>J</answer>", None),  # out of range for 9 options
        ("the answer is a mystery", None),
        ("", None),
    ],
)
def test_extract_letter(text, letter):
    assert extract_letter(text, 9) == letter


def test_letter_score_is_exact():
    score = LetterScore("C", 9)
    assert score("<answer>C</answer>") == 1.0
    assert score("<answer>D</answer>") == 0.0
    assert score("C or D") == 0.0
    assert score("(C) ... (D)") == 0.0
    task = to_task(format_item(item(), 9, seed=1))
    assert task.answer == task.metadata["golden_goose"]["letter"]
    assert task.score(f"<answer>{task.answer}</answer>") == 1.0


def test_reward_column(zoo_context):
    ctx = zoo_context(plugins={"golden_goose": GoldenGoose()}, config={"golden_goose": {"dataset": "unused"}})
    t = to_task(format_item(item(), 9, seed=1))
    wrong = "A" if t.answer != "A" else "B"
    texts = [f"<answer>{t.answer}</answer>", f"Answer: {wrong}", "no idea", f"({t.answer})"]
    r = Rollouts(tasks=[t], group=[0, 0, 0, 0], prompt_text=[""] * 4, prompt_ids=[[1]] * 4,
                 completion_ids=[[1]] * 4, completion_text=texts)
    cols = ctx.hooks.rewards(ctx, r)
    assert torch.equal(cols["goose/correct"], torch.tensor([1.0, 0.0, 0.0, 1.0]))
    assert torch.equal(cols["correct"], cols["goose/correct"])  # the built-in column uses Task.score
