"""Equivalent written forms of an answer, for the leak gate.

:func:`canonical` rewrites a text so that equal values look the same:
LaTeX fractions (``\\frac{1}{2}``, ``\\dfrac12``) become ``1/2``, math
delimiters and ``\\left``/``\\right`` go, the Unicode minus becomes ``-``,
and English number words become numerals: cardinals ("seven",
"twenty-one", "three hundred and five"), signs ("minus seven", "negative 3"
-> ``-7``, ``-3``) and simple fractions ("one half", "a third", "three
quarters" -> ``1/2``, ``1/3``, ``3/4``). A lone "one" stays a word: it is far
more often a pronoun ("one way to ...") than the number, and ordinals alone
("the third step") are never read as fractions.
"""
from __future__ import annotations

import re

_UNITS = {w: i for i, w in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
    "sixteen seventeen eighteen nineteen".split()
)}
_TENS = {w: 10 * (i + 2) for i, w in enumerate("twenty thirty forty fifty sixty seventy eighty ninety".split())}
_SCALES = {"hundred": 100, "thousand": 1000, "million": 1_000_000}
_FRACS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fourth": 4, "fourths": 4,
          "fifth": 5, "fifths": 5, "sixth": 6, "sixths": 6, "seventh": 7, "sevenths": 7, "eighth": 8, "eighths": 8,
          "ninth": 9, "ninths": 9, "tenth": 10, "tenths": 10}
_NUMWORD = "|".join(sorted([*_UNITS, *_TENS, *_SCALES], key=len, reverse=True))
_FRACWORD = "|".join(sorted(_FRACS, key=len, reverse=True))
# optional sign word, a run of number words (joined by spaces, hyphens or "and"), an optional fraction word
_WORDS = re.compile(
    rf"(?<![A-Za-z])(?:(?P<sign>minus|negative)\s+)?"
    rf"(?P<num>(?:{_NUMWORD})(?:(?:\s+and\s+|[\s-]+)(?:{_NUMWORD}))*)"
    rf"(?:[\s-]+(?P<frac>{_FRACWORD}))?(?![A-Za-z])",
    re.I,
)
_A_FRAC = re.compile(rf"(?<![A-Za-z])an?\s+(?P<frac>{_FRACWORD})(?![A-Za-z])", re.I)
_SIGN_DIGIT = re.compile(r"(?<![A-Za-z])(?:minus|negative)\s+(?=\d)", re.I)
_LATEX_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{\s*([^{}]+?)\s*\}|(\d))\s*(?:\{\s*([^{}]+?)\s*\}|(\d))")


def _cardinal(words: list[str]) -> int:
    total = current = 0
    for w in words:
        if w in _UNITS:
            current += _UNITS[w]
        elif w in _TENS:
            current += _TENS[w]
        elif w == "hundred":
            current = max(current, 1) * 100
        else:  # thousand, million
            total += max(current, 1) * _SCALES[w]
            current = 0
    return total + current


def _words_to_number(m: re.Match) -> str:
    words = [w for w in re.split(r"[\s-]+", m.group("num").lower()) if w and w != "and"]
    sign, frac = m.group("sign"), m.group("frac")
    if words == ["one"] and not sign and not frac:
        return m.group(0)  # a lone "one" is a pronoun far more often than a number
    value = _cardinal(words)
    out = f"{value}/{_FRACS[frac.lower()]}" if frac else str(value)
    return ("-" if sign else "") + out


def _latex(text: str) -> str:
    text = _LATEX_FRAC.sub(lambda m: f"{m.group(1) or m.group(2)}/{m.group(3) or m.group(4)}", text)
    text = re.sub(r"\\(?:left|right)\b", "", text)
    text = re.sub(r"\\[,;:! ]", " ", text)
    text = text.replace("$", " ").replace("\\(", " ").replace("\\)", " ").replace("\\[", " ").replace("\\]", " ")
    return re.sub(r"\{\s*(-?\d+(?:\.\d+)?(?:/\d+)?)\s*\}", r"\1", text)  # "\boxed{7}" -> "\boxed7", "{-1}/{2}" -> "-1/2"


def canonical(text: str) -> str:
    """``text`` with equal numbers written alike (see the module docstring)."""
    text = str(text).replace("\u2212", "-").replace("\u2013", "-")
    text = _latex(text)
    text = _A_FRAC.sub(lambda m: f"1/{_FRACS[m.group('frac').lower()]}", text)
    text = _WORDS.sub(_words_to_number, text)
    text = _SIGN_DIGIT.sub("-", text)
    return " ".join(text.split())
