"""The task the policy sees: instruction, masked text, lettered options; the letter extractor and scorer.

Which distractors enter the task (the paper draws 8 of its 10+ but does not
say how) and the order of the options are a deterministic function of
(seed, item id): the same item always gives the same task.
"""
from __future__ import annotations

import random
import re
from typing import Literal

from grpo_zoo.types import Task

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
KIND = {"code": "code", "passage": "passage", "math": "solution"}

INSTRUCTION = {
    "code": "A contiguous piece of the code below was removed and replaced by [MASK]. "
    "Which option is the removed code?",
    "passage": "A contiguous piece of the passage below was removed and replaced by [MASK]. "
    "Which option is the removed text?",
    "math": "A contiguous piece of the solution below was removed and replaced by [MASK]. "
    "Which option is the removed step?",
}
ANSWER_FORMAT = {
    "tag": "Reply with the letter of the correct option in the form <answer>LETTER</answer>.",
    "plain": "Reply with 'Answer: ' followed by the letter of the correct option.",
}


def letter(i: int) -> str:
    return LETTERS[i]


def choose_options(item: dict, n_options: int, seed: int, pick: Literal["random", "closest_length"] = "random"):
    """(options in display order, index of the true one).

    ``pick = random``: a seeded uniform sample of n_options - 1 distractors;
    ``closest_length``: the ones closest in length to the true span (ties by
    generation order). The options are then shuffled with the same seed.
    """
    distractors = list(item["distractors"])
    if len(distractors) < n_options - 1:
        raise ValueError(f"item {item['id']!r} has {len(distractors)} distractors; {n_options} options need {n_options - 1}")
    rng = random.Random(f"{seed}|{item['id']}|options")
    answer = item["answer_option"]
    if pick == "closest_length":
        order = sorted(range(len(distractors)), key=lambda i: (abs(len(distractors[i]) - len(answer)), i))
        chosen = [distractors[i] for i in order[: n_options - 1]]
    elif pick == "random":
        chosen = rng.sample(distractors, n_options - 1)
    else:
        raise ValueError(f"distractor_pick must be 'random' or 'closest_length', got {pick!r}")
    slots = list(range(n_options))
    rng.shuffle(slots)
    options: list[str] = [""] * n_options
    options[slots[0]] = answer
    for s, d in zip(slots[1:], chosen):
        options[s] = d
    return options, slots[0]


def _option_lines(options: list[str]) -> str:
    if any("\n" in o for o in options):  # multi-line (code): the option below its label, blank line between
        return "\n\n".join(f"({letter(i)})\n{o}" for i, o in enumerate(options))
    return "\n".join(f"({letter(i)}) {o}" for i, o in enumerate(options))


def render_prompt(item: dict, options: list[str], answer_format: str = "tag") -> str:
    domain = item.get("domain", "passage")
    body = item["masked_text"]
    if domain == "code":
        body = f"```\n{body}\n```"
    if item.get("prefix"):
        body = f"Problem:\n{item['prefix'].strip()}\n\nSolution:\n{body}"
    return (
        f"{INSTRUCTION.get(domain, INSTRUCTION['passage'])}\n\n{body}\n\n"
        f"Options:\n{_option_lines(options)}\n\n{ANSWER_FORMAT[answer_format]}"
    )


def format_item(item: dict, n_options: int = 9, seed: int = 0, pick: str = "random", answer_format: str = "tag") -> dict:
    """The item plus ``options``, ``answer_index``, ``letter`` and ``prompt``."""
    if not 2 <= n_options <= len(LETTERS):
        raise ValueError(f"options must be between 2 and {len(LETTERS)}, got {n_options}")
    options, idx = choose_options(item, n_options, seed, pick)
    return {**item, "options": options, "answer_index": idx, "letter": letter(idx), "prompt": render_prompt(item, options, answer_format)}


# --- answer extraction -----------------------------------------------------------------------------

_TAG = re.compile(r"<answer>\s*\**\s*\(?\s*([A-Za-z])\s*\)?\s*\**\s*[.:]?\s*</answer>", re.I)
# "Answer: X", "answer is (X)", "**Answer:** X", "answer is: **X**", "final answer: option X"
_ANSWER = re.compile(
    r"\banswer\b\**\s*(?:is\b)?\s*\**\s*[:=\-]?\s*\**\s*(?:option\s*|choice\s*)?\(?\**([A-Z])\**\)?(?![A-Za-z0-9])", re.I
)
_OPTION = re.compile(r"\b(?:option|choice)\b\s*(?:is\b)?\s*\**\s*[:=\-]?\s*\**\s*\(?\**([A-Z])\**\)?(?![A-Za-z0-9])", re.I)
# more letters right after a stated one: "(A), (B)", "A or B", "A/B", "A and C"
_MORE = re.compile(r"^\s*(?:,|\bor\b|\band\b|/|&|\.\.\.|;)\s*(?:option\s*)?\(?\**[A-Z]\**\)?(?![A-Za-z0-9])")
_PAREN = re.compile(r"\(([A-Z])\)")
_ALONE = re.compile(r"^\s*\**\s*\(?\**([A-Z])\**\)?\**[.:)]?\s*$")


def _pronoun(text: str, m) -> bool:
    """ "Answer: I think ..." / "answer: A function ...": the capital is a word, not an option letter."""
    if m.group(1) not in ("A", "I"):
        return False
    follow = re.match(r"\s+([a-z]+)", text[m.end() :])
    return bool(follow) and follow.group(1) not in ("is", "was", "fits", "fills")


def _statements(pattern, text: str) -> tuple[set[str], bool]:
    """Letters stated by ``pattern`` (capitals, not pronouns) and whether any statement lists more letters."""
    letters, listed = set(), False
    for m in pattern.finditer(text):
        if not m.group(1).isupper() or _pronoun(text, m):
            continue
        letters.add(m.group(1))
        listed = listed or bool(_MORE.match(text[m.end() :]))
    return letters, listed


def extract_letter(text: str, n_options: int = 9) -> str | None:
    """The chosen letter, or None when the completion names no single option.

    In order: ``<answer>X</answer>`` tags; else "Answer: X" / "answer is (X)"
    statements (bold forms such as "**Answer:** B" or "answer is: **B**"
    included; letter in capitals); else "option X" / "choice X" mentions;
    else a completion that is just a letter ("C", "(C)", "**C**"); else the
    letter of "(X)" when every parenthesised letter is the same one. At each
    stage, naming two different letters ("Answer: (A), (B), ... (I)", "Option
    A. Option B.", "Answer: B or C", two tags that disagree) gets None: no
    credit for listing options.
    """
    valid = LETTERS[:n_options]

    def one(letters: set[str], listed: bool = False) -> str | None:
        if listed or len(letters) != 1:
            return None
        got = letters.pop()
        return got if got in valid else None

    tags = {t.upper() for t in _TAG.findall(text)}
    if tags:
        return one(tags)
    for pattern in (_ANSWER, _OPTION):
        letters, listed = _statements(pattern, text)
        if letters:
            return one(letters, listed)
    alone = _ALONE.match(text)
    if alone:
        return one({alone.group(1)})
    paren = set(_PAREN.findall(text))
    if paren:
        return one(paren)
    return None


class LetterScore:
    """Reward 1.0 iff the extracted letter is exactly the true one (a picklable Task.score)."""

    def __init__(self, letter: str, n_options: int):
        self.letter, self.n_options = letter, n_options

    def __call__(self, text: str) -> float:
        return 1.0 if extract_letter(text, self.n_options) == self.letter else 0.0

    def __repr__(self) -> str:
        return f"LetterScore({self.letter!r}, {self.n_options})"


def to_task(row: dict) -> Task:
    """A formatted item as a grpo-zoo Task: answer = the letter, score = exact letter match."""
    n = len(row["options"])
    meta = {
        "golden_goose": {
            "letter": row["letter"],
            "n_options": n,
            "source_id": row["source_id"],
            "span": [row["span_start"], row["span_end"]],
            "domain": row["domain"],
            "generator": row["generator"],
        }
    }
    return Task(id=row["id"], prompt=row["prompt"], answer=row["letter"], metadata=meta, score=LetterScore(row["letter"], n))
