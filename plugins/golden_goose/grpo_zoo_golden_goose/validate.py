"""Generator output -> validated item: JSON extraction, span/mask/distractor checks and provenance.

A generator proposes ``(masked_text, span, distractors)`` for a window of a
source text. :func:`validate` checks it against the source and returns the
span's character offsets in the source, or raises :class:`Rejected` with one
of the reasons in :data:`REASONS`.
"""
from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field

from .segment import MASK, base_indent, display_option, excerpt_bounds, masked_excerpt, normalize

REASONS = {
    "no_json": "the generator's reply holds no parseable JSON object",
    "bad_schema": "the JSON lacks masked_text / span / distractors of the right types",
    "mask_missing": "the masked text has no [MASK]",
    "mask_repeated": "the masked text has more than one [MASK]",
    "span_empty": "the removed span is empty",
    "span_not_in_source": "the removed span does not occur in the source",
    "reconstruction_mismatch": "masked text with the span put back is not a region of the source",
    "span_too_short": "the span is shorter than min_chars",
    "span_too_long": "the span is longer than max_chars or leaves no context",
    "bad_distractor": "a distractor is empty or contains [MASK]",
    "duplicate_distractors": "two distractors are the same (whitespace and case ignored)",
    "answer_in_distractors": "a distractor equals the removed span",
    "too_few_distractors": "fewer distractors than required",
    "no_span": "the source has no span that fits the span rules (heuristic)",
    "generator_error": "the generator call failed (model or endpoint error)",
    "duplicate_item": "the same span of the source was already kept",
    "distractor_length": "too few distractors within min_length_ratio..max_length_ratio of the answer's length",
    "answer_in_context": "the removed span (normalized) appears elsewhere in the text shown",
}


class Rejected(Exception):
    def __init__(self, reason: str, detail: str = ""):
        assert reason in REASONS, reason
        self.reason, self.detail = reason, detail
        super().__init__(f"{reason}: {detail}" if detail else reason)


@dataclass
class Proposal:
    """What a generator returns for one window ``text[window_start:window_end]`` of a source."""

    masked_text: str
    span: str
    distractors: list
    window_start: int = 0
    window_end: int | None = None
    raw: str = field(default="", repr=False)
    distractors_shown: bool = False  # already in display form (heuristic): used as they are


@dataclass
class Rules:
    min_distractors: int = 10
    min_chars: int = 10
    max_chars: int = 800
    max_span_fraction: float = 0.6  # of the window: a span that is most of the text leaves nothing to reason from
    # distractor length / answer length (as shown): an option much shorter or longer than the others is a cue
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0


# --- robust JSON extraction --------------------------------------------------------------------------

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.S)
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def _balanced_objects(text: str):
    """Every top-level ``{...}`` substring, braces matched outside of strings."""
    depth, start, quote, esc = 0, None, None, False
    for i, ch in enumerate(text):
        if quote:
            if esc:
                esc = False
            elif ch == "\\":
                esc = True
            elif ch == quote:
                quote = None
            continue
        if ch in "\"'" and depth > 0:
            # a single quote inside a word ("don't") is no string delimiter
            if ch == "'" and i > 0 and text[i - 1].isalnum():
                continue
            quote = ch
        elif ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}" and depth > 0:
            depth -= 1
            if depth == 0:
                yield text[start : i + 1]


def _loads(candidate: str):
    for attempt in (candidate, _TRAILING_COMMA.sub(r"\1", candidate)):
        try:
            return json.loads(attempt)
        except json.JSONDecodeError:
            pass
        try:  # strict=False: raw newlines inside strings (LLMs write code that way)
            return json.loads(attempt, strict=False)
        except json.JSONDecodeError:
            pass
    try:  # Python-literal style: single quotes, True/None
        fixed = re.sub(r"\btrue\b", "True", re.sub(r"\bfalse\b", "False", re.sub(r"\bnull\b", "None", candidate)))
        return ast.literal_eval(_TRAILING_COMMA.sub(r"\1", fixed))
    except (ValueError, SyntaxError, MemoryError, RecursionError):
        return None


def extract_json(text: str) -> dict | None:
    """The first JSON object in an LLM reply: inside code fences or not, after prose, with trailing commas."""
    if not isinstance(text, str):
        return None
    places = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    for place in places:
        for candidate in _balanced_objects(place):
            obj = _loads(candidate)
            if isinstance(obj, dict):
                return obj
    return None


KEYS = {
    "masked_text": ("masked_text", "masked", "masked_passage", "masked_code", "masked_solution", "text_with_mask"),
    "span": ("span", "removed_span", "answer", "removed", "removed_text", "original_span", "ground_truth"),
    "distractors": ("distractors", "wrong_options", "incorrect_options", "negatives"),
}


def proposal_from_json(obj: dict | None, window_start: int = 0, window_end: int | None = None, raw: str = "") -> Proposal:
    if obj is None:
        raise Rejected("no_json")
    got = {}
    for key, names in KEYS.items():
        got[key] = next((obj[n] for n in names if n in obj), None)
    if not isinstance(got["masked_text"], str) or not isinstance(got["span"], str):
        raise Rejected("bad_schema", f"keys present: {sorted(obj)}")
    if not isinstance(got["distractors"], list):
        raise Rejected("bad_schema", "distractors is not a list")
    return Proposal(got["masked_text"], got["span"], got["distractors"], window_start, window_end, raw)


# --- locating text in the source ---------------------------------------------------------------------

def _loose(s: str) -> str:
    """A regex matching ``s`` with any run of whitespace matching any (possibly empty at the ends) whitespace."""
    tokens = s.split()
    return r"\s+".join(re.escape(t) for t in tokens)


def locate_span(window: str, span: str) -> list[tuple[int, int]]:
    """Every (start, end) of ``span`` in ``window``: exact matches, else whitespace-tolerant ones."""
    out, i = [], window.find(span)
    while i != -1 and span:
        out.append((i, i + len(span)))
        i = window.find(span, i + 1)
    if out or not span.strip():
        return out
    return [(m.start(), m.end()) for m in re.finditer(_loose(span), window)]


def locate(window: str, before: str, span: str, after: str) -> tuple[int, int] | None:
    """Offsets of the span in ``window`` such that before + span + after is a region of it."""
    whole = before + span + after
    i = window.find(whole)
    if i != -1:
        return i + len(before), i + len(before) + len(span)
    parts = [p for p in (_loose(before), f"({_loose(span)})", _loose(after)) if p and p != "()"]
    try:
        m = re.search(r"\s*".join(parts), window)
    except re.error:
        return None
    return (m.start(1), m.end(1)) if m else None


def validate(p: Proposal, text: str, rules: Rules, domain: str = "passage") -> tuple[int, int, list[str]]:
    """Check a proposal against the source ``text``; returns (span start, span end, distractors as shown)."""
    end = len(text) if p.window_end is None else p.window_end
    window = text[p.window_start : end]
    n_mask = p.masked_text.count(MASK)
    if n_mask == 0:
        raise Rejected("mask_missing")
    if n_mask > 1:
        raise Rejected("mask_repeated", f"{n_mask} masks")
    if not p.span.strip():
        raise Rejected("span_empty")
    span = p.span.strip("\n")
    if not locate_span(window, span):
        raise Rejected("span_not_in_source", repr(span[:60]))
    before, after = p.masked_text.split(MASK)
    found = locate(window, before, span, after)
    if found is None:  # "..." marks a cut excerpt; the model may have kept it
        before = re.sub(r"^\s*\.\.\.\s?", "", before)
        after = re.sub(r"\s?\.\.\.\s*$", "", after)
        found = locate(window, before, span, after)
    if found is None:
        raise Rejected("reconstruction_mismatch")
    s, e = found
    s, e = s + p.window_start, e + p.window_start
    # trim whitespace the span may carry at its ends: offsets cover the text itself
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    answer = text[s:e]
    if len(answer) < rules.min_chars:
        raise Rejected("span_too_short", f"{len(answer)} < {rules.min_chars} chars")
    if len(answer) > rules.max_chars or len(answer) > rules.max_span_fraction * max(len(window.strip()), 1):
        raise Rejected("span_too_long", f"{len(answer)} chars of a {len(window)}-char window")
    indent = base_indent(text, s)
    shown = []
    for d in p.distractors:
        if not isinstance(d, str) or not d.strip() or MASK in d:
            raise Rejected("bad_distractor", repr(d)[:60])
        shown.append(d if p.distractors_shown else display_option(d, indent, domain))
    keys = [normalize(d) for d in shown]
    key = normalize(answer)
    if key in keys:
        raise Rejected("answer_in_distractors")
    if len(set(keys)) < len(keys):
        raise Rejected("duplicate_distractors")
    if len(shown) < rules.min_distractors:
        raise Rejected("too_few_distractors", f"{len(shown)} < {rules.min_distractors}")
    # distractors far off the answer's length are dropped; too few left rejects the item
    length = len(display_option(answer, indent, domain))
    fit = [d for d in shown if rules.min_length_ratio * length <= len(d) <= rules.max_length_ratio * length]
    if len(fit) < rules.min_distractors:
        raise Rejected("distractor_length", f"{len(fit)} of {len(shown)} within {rules.min_length_ratio}-{rules.max_length_ratio}x "
                                            f"of {length} chars; {rules.min_distractors} needed")
    return s, e, fit


def check_shown(item: dict) -> None:
    """Reject an item whose answer (normalized) can be read elsewhere in what the task shows."""
    shown = normalize((item.get("prefix") or "") + "\n" + item["masked_text"].replace(MASK, "\n\0\n"))
    for answer in {item["answer"], item["answer_option"]}:
        if normalize(answer) in shown:
            raise Rejected("answer_in_context", repr(item["answer"][:60]))


def make_item(source: dict, start: int, end: int, distractors: list[str], generator: str, context_chars: int) -> dict:
    """A kept item: the masked excerpt shown, the true span (exact text and as shown), distractors, provenance."""
    text = source["text"]
    a, b = excerpt_bounds(text, start, end, context_chars, by_lines=source["domain"] == "code")
    return {
        "id": f"{source['id']}@{start}-{end}",
        "source_id": source["id"],
        "domain": source["domain"],
        "generator": generator,
        "prefix": source.get("prefix") or "",
        "masked_text": masked_excerpt(text, start, end, a, b, prose=source["domain"] != "code"),
        "answer": text[start:end],
        "answer_option": display_option(text[start:end], base_indent(text, start), source["domain"]),
        "distractors": list(distractors),
        "span_start": start,
        "span_end": end,
        "excerpt_start": a,
        "excerpt_end": b,
    }
