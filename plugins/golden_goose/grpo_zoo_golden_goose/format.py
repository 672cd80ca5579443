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

_TAG = re.compile(r"<answer>\s*\(?\s*([A-Za-z])\s*\)?\s*[.:]?\s*</answer>", re.I)
_STATED = re.compile(
    r"(?:\banswer|\boption|\bchoice)\s*(?:is|:|=)?\s*(?:option\s*)?[:\-]?\s*\(?([A-Z])\)?(?![A-Za-z0-9])", re.I
)
_PAREN = re.compile(r"\(([A-Z])\)")
_ALONE = re.compile(r"^\s*\(?([A-Z])\)?[.:)]?\s*$")


def _pronoun(text: str, m) -> bool:
    """ "Answer: I think ..." / "answer: A function ...": the capital is a word, not an option letter."""
    if m.group(1) not in ("A", "I"):
        return False
    follow = re.match(r"\s+([a-z]+)", text[m.end() :])
    return bool(follow) and follow.group(1) not in ("is", "was", "fits", "fills")


def extract_letter(text: str, n_options: int = 9) -> str | None:
    """The chosen letter, or None when the completion names no single option.

    In order: the last ``<answer>X</answer>``; else the last "Answer: X" /
    "answer is (X)" / "option X" (letter in capitals); else a completion that
    is just a letter ("C", "(C)", "C."); else the letter of "(X)" when every
    parenthesised letter in the completion is the same one. A completion that
    lists several different options gets None (no credit for listing them all).
    """
    valid = LETTERS[:n_options]
    tags = _TAG.findall(text)
    if tags:
        got = tags[-1].upper()
        return got if got in valid else None
    stated = [m.group(1) for m in _STATED.finditer(text) if m.group(1).isupper() and not _pronoun(text, m)]
    if stated:
        return stated[-1] if stated[-1] in valid else None
    alone = _ALONE.match(text)
    if alone:
        return alone.group(1) if alone.group(1) in valid else None
    paren = set(_PAREN.findall(text))
    if len(paren) == 1:
        got = paren.pop()
        return got if got in valid else None
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
