"""Answer extraction and matching for verifiable rewards."""
from __future__ import annotations

import re

_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def last_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, nested braces included (\\boxed{\\frac{1}{2}})."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1 : j]
    return None  # unbalanced: cut off mid-answer


def extract_answer(text: str) -> str | None:
    """The model's final answer: the last <answer> tag, else the last \\boxed{}, else the last number."""
    found = _TAG.findall(text)
    if found:
        return found[-1].strip()
    boxed = last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    nums = _NUMBER.findall(text)
    return nums[-1].replace(",", "") if nums else None


def parse_number(s: str) -> float | None:
    """``s`` as a number ("1,234", "-3.5", "+2", "3/4", "7."), or None when it is not one."""
    s = s.strip().replace(",", "").rstrip(".")
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            return float(a) / float(b)
        return float(s)
    except (ValueError, ZeroDivisionError):
        return None


def _integer(s: str) -> int | None:
    s = s.strip().replace(",", "").rstrip(".")
    return int(s) if re.fullmatch(r"-?\d+", s) else None


def answers_match(predicted: str | None, gold: str) -> bool:
    """Numeric equality where both parse as numbers, math-verify for other math, else exact text."""
    if predicted is None:
        return False
    i, j = _integer(predicted), _integer(gold)
    if i is not None and j is not None:  # integers compare exactly (the tolerance below is relative)
        return i == j
    a, b = parse_number(predicted), parse_number(gold)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    if predicted.strip().lower() == gold.strip().lower():
        return True
    try:
        from math_verify import parse, verify

        return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))
    except Exception:  # math-verify raises on text it cannot parse: treat as no match
        return False
