"""Hint parsing and the gate: parse failure, answer leak, overlong.

A hint that fails a gate is never shown to the reasoner and earns the hinter
``gate_penalty``. The leak check compares hint and answer in a canonical form
(:mod:`.forms`: LaTeX fractions, number words and sign words become numerals,
so ``\\frac{1}{2}``, "1/2" and "one half" are one value, and "minus seven" is
-7), then:

- answers of more than two characters leak wherever they appear: a numeric
  answer as a whole number of the same value ("1000" in "1,000", "0.5" in
  "1/2"; never inside a larger number), a text answer as a standalone token;
- answers of two characters or fewer ("7", "-4", "12", "B") leak only where
  the hint states them, as HiLL's own gate does: after "=", "is", "equals",
  "answer:", "get", "gives", "comes to", in ``\\boxed{}``, "(B)" or
  "option B" for a letter, or before "is the answer"; so "Consider 2
  variables", "x^2", "step 1 ... step 3" and "A good start" are no leak.
"""
from __future__ import annotations

import re

from grpo_zoo.answers import parse_number

from .forms import canonical

PARSE, LEAK, OVERLONG = "parse", "leak", "overlong"
REASONS = (PARSE, LEAK, OVERLONG)

_HINT = re.compile(r"<hint>(.*?)</hint>", re.S | re.I)
# A number that is not part of a larger number: no digit, '.', or ',' digit-group glued to either side.
_NUMBER = re.compile(r"(?<![\d.])-?\d+(?:,\d{3})*(?:\.\d+)?(?:\s*/\s*\d+)?(?![\d])")


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


# Words just before a value that state it as the result; the hint's text up to the value must end so.
_STATES = re.compile(
    r"(?:=|≈|\\boxed\s*\{?|"
    r"\b(?:is|was|be|equals?|equal\s+to|get|gets|got|gives?|yields?|makes?|totals?|total\s+of|"
    r"(?:comes?|adds?\s+up|sums?|reduces?|simplifies?|amounts?|works?\s+out|evaluates?)\s+to|"
    r"(?:answer|result)\s*(?:is|:|=)?))"
    r"\s*(?:\(|\*\*|\$)?\s*$",
    re.I,
)
# ... or words just after it: "7 is the answer", "2 is correct".
_STATED_AFTER = re.compile(
    r"^\s*\)?\s*(?:is|was|would\s+be|should\s+be)\s+(?:the\s+)?(?:final\s+|correct\s+|right\s+)?"
    r"(?:answer|result|solution|correct|right)\b",
    re.I,
)
_LETTER_STATES = re.compile(r"(?:\b(?:option|choice|choose|pick|select|letter)\s*\(?\s*|\(\s*)$", re.I)


def _stated(hint: str, start: int, end: int, letter: bool = False) -> bool:
    """Is ``hint[start:end]`` (an occurrence of a short answer) stated as the answer?"""
    before, after = hint[max(0, start - 40) : start], hint[end : end + 40]
    if not hint[:start].strip() and not hint[end:].strip(" .!"):
        return True  # the hint is nothing but the answer
    if _STATES.search(before) or _STATED_AFTER.match(after):
        return True
    return letter and bool(_LETTER_STATES.search(before)) and (not before.rstrip().endswith("(") or after.startswith(")"))


def _numeric_leak(hint: str, value: float, short: bool) -> bool:
    for m in _NUMBER.finditer(hint):
        got = _as_number(m.group(0))
        if got is None:
            continue
        # "5-3" reads as 5 and -3: a minus glued to a number may be an operator, so try both signs.
        if not (_same(got, value) or _same(abs(got), value)):
            continue
        if not short:
            return True
        # HiLL: a short number leaks only when stated; "x = 5-3" is no statement of 3 (the "-3" is an operand)
        start = m.start()
        if m.group(0).startswith("-") and start > 0 and re.search(r"[\w)]\s*$", hint[:start]) and not _same(got, value):
            continue
        if _stated(hint, start, m.end()):
            return True
    if short and value == 1:  # a lone "one" stays a word in canonical form; it leaks only in a stating phrase
        for m in re.finditer(r"(?<![A-Za-z])one(?![A-Za-z])", hint, re.I):
            if _stated(hint, m.start(), m.end()):
                return True
    return False


def leaks_answer(hint: str, answer: str | None) -> bool:
    """Does ``hint`` reveal ``answer``? (See the module docstring for the rules.)"""
    if answer is None or not str(answer).strip():
        return False
    raw = str(answer).strip()
    answer = canonical(raw)
    hint = canonical(hint)
    compact = re.sub(r"\s+", "", answer)
    short = len(compact) <= 2
    value = _as_number(answer)
    if value is not None:
        return _numeric_leak(hint, value, short)
    if short:
        # one or two characters ("B", "no"): case-sensitive, so the article "a" never counts as answer "A"
        pattern = rf"(?<![A-Za-z0-9]){re.escape(compact)}(?![A-Za-z0-9])"
        letter = compact.isalpha()
        return any(_stated(hint, m.start(), m.end(), letter) for m in re.finditer(pattern, hint))
    pattern = rf"(?<![A-Za-z0-9]){re.escape(answer)}(?![A-Za-z0-9])"
    if re.search(pattern, hint, re.I):
        return True
    # Expressions also leak with different spacing ("x^2 + 1" vs "x^2+1").
    if not compact.isalnum():
        spaced = r"\s*".join(re.escape(ch) for ch in compact)
        if re.search(rf"(?<![A-Za-z0-9]){spaced}(?![A-Za-z0-9])", hint, re.I):
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
