"""Hint parsing and the gate: parse failure, answer leak, overlong.

A hint that fails a gate is never shown to the reasoner and earns the hinter
``gate_penalty``. The leak check is a string match with care for short
answers: a numeric answer matches only a whole number in the hint with the
same value ("7" leaks in "the answer is 7." or "7.0" or "x = -7", not in "17"
or "2.75"; "2" does not leak in "12 apples"), integers 0 and 2..20 also match
their English word ("seven"; "one" is left out: it is too common a pronoun),
and a short textual answer must stand alone as a token.
"""
from __future__ import annotations

import re

from grpo_zoo.answers import parse_number

PARSE, LEAK, OVERLONG = "parse", "leak", "overlong"
REASONS = (PARSE, LEAK, OVERLONG)

_HINT = re.compile(r"<hint>(.*?)</hint>", re.S | re.I)
# A number that is not part of a larger number: no digit, '.', or ',' digit-group glued to either side.
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?(?![\d])")
_WORDS = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen twenty"
).split()


def parse_hint(text: str, prefilled: bool = False) -> str | None:
    """The text inside the first ``<hint>...</hint>``; None when there is none or it is empty.

    With ``prefilled`` the opening tag was part of the hinter's prompt, so the
    completion only needs the closing tag (a completion that opens the tag
    again is parsed as it is).
    """
    if prefilled and not re.search(r"<hint>", text, re.I):
        text = "<hint>" + text
    m = _HINT.search(text)
    if m is None:
        return None
    hint = " ".join(m.group(1).split())
    return hint or None


def _as_number(s: str) -> float | None:
    return parse_number(s.replace(" ", ""))  # "1 000" in a hint is a thousand


def _same(a: float, b: float) -> bool:
    return abs(a - b) <= 1e-9 * max(1.0, abs(b))


def leaks_answer(hint: str, answer: str | None) -> bool:
    """Does ``hint`` reveal ``answer``? (See the module docstring for the rules.)"""
    if answer is None or not str(answer).strip():
        return False
    answer = str(answer).strip()
    value = _as_number(answer)
    if value is not None:
        for m in _NUMBER.finditer(hint):
            got = _as_number(m.group(0))
            # "5-3" reads as 5 and -3: a minus glued to a number may be an operator, so try both signs.
            if got is not None and (_same(got, value) or _same(abs(got), value)):
                return True
        if value == int(value) and 0 <= value < len(_WORDS) and value != 1:
            if re.search(rf"(?<![A-Za-z]){_WORDS[int(value)]}(?![A-Za-z])", hint, re.I):
                return True
        return False
    norm_hint = " ".join(hint.split())
    norm_ans = " ".join(answer.split())
    compact = re.sub(r"\s+", "", norm_ans)
    # Very short text answers (a letter, "no", "x=2"): a standalone token, matched case-sensitively
    # for one or two characters so that the article "a" never counts as answer "A".
    flags = 0 if len(compact) <= 2 else re.I
    pattern = rf"(?<![A-Za-z0-9]){re.escape(norm_ans)}(?![A-Za-z0-9])"
    if re.search(pattern, norm_hint, flags):
        return True
    # Expressions also leak with different spacing ("x^2 + 1" vs "x^2+1").
    if not compact.isalnum():
        spaced = r"\s*".join(re.escape(ch) for ch in compact)
        if re.search(rf"(?<![A-Za-z0-9]){spaced}(?![A-Za-z0-9])", norm_hint, flags):
            return True
    return False


def gate_hint(completion: str, answer: str | None, max_words: int, prefilled: bool = False) -> tuple[str | None, str | None]:
    """(hint, None) when the hint passes every gate, else (hint or None, reason)."""
    hint = parse_hint(completion, prefilled)
    if hint is None:
        return None, PARSE
    if leaks_answer(hint, answer):
        return hint, LEAK
    if len(hint.split()) > max_words:
        return hint, OVERLONG
    return hint, None
