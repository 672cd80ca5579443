"""Answer extraction and matching for verifiable rewards."""
from __future__ import annotations

import re

_TAG = re.compile(r"<answer>(.*?)</answer>", re.S | re.I)
_BOXED = re.compile(r"\\boxed\{([^{}]*)\}")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")


def extract_answer(text: str) -> str | None:
    """The model's final answer: the last <answer> tag, else the last \\boxed{}, else the last number."""
    for pattern in (_TAG, _BOXED):
        found = pattern.findall(text)
        if found:
            return found[-1].strip()
    nums = _NUMBER.findall(text)
    return nums[-1].replace(",", "") if nums else None


def _numeric(s: str) -> float | None:
    s = s.strip().replace(",", "").rstrip(".")
    try:
        if "/" in s:
            a, b = s.split("/", 1)
            return float(a) / float(b)
        return float(s)
    except (ValueError, ZeroDivisionError):
        return None


def answers_match(predicted: str | None, gold: str) -> bool:
    """Numeric equality where both parse as numbers, math-verify for other math, else exact text."""
    if predicted is None:
        return False
    a, b = _numeric(predicted), _numeric(gold)
    if a is not None and b is not None:
        return abs(a - b) <= 1e-6 * max(1.0, abs(b))
    if predicted.strip().lower() == gold.strip().lower():
        return True
    try:
        from math_verify import parse, verify

        return bool(verify(parse(f"${gold}$"), parse(f"${predicted}$")))
    except Exception:  # math-verify raises on text it cannot parse: treat as no match
        return False
