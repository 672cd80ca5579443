"""Cutting texts into units (sentences or code lines) and into context windows, by character offsets.

Offsets always index the original text, so a span ``text[start:end]`` and the
masked text ``text[a:start] + "[MASK]" + text[end:b]`` reconstruct it exactly.
"""
from __future__ import annotations

import ast
import re
import textwrap

MASK = "[MASK]"
_ABBREV = ("e.g.", "i.e.", "etc.", "vs.", "cf.", "mr.", "mrs.", "dr.", "st.", "no.", "fig.", "approx.", "al.", "resp.")
# A sentence ends at . ! ? (optionally closed by quotes or brackets) before whitespace, or at a blank line.
_BOUND = re.compile(r"([.!?][\"')\]]*)(\s+)|\n[ \t]*\n\s*")


def _abbreviation(piece: str) -> bool:
    low = piece.lower()
    return low.endswith(_ABBREV) or bool(re.search(r"(^|[\s(])([a-z]|\d+)\.$", low))


def sentence_units(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, surrounding whitespace excluded."""
    units, start = [], 0
    for m in _BOUND.finditer(text):
        if m.group(1) is not None:
            end = m.start(2)
            nxt = text[m.end() : m.end() + 1]
            if _abbreviation(text[start:end].rstrip()) or (nxt and nxt.islower()):
                continue  # "e.g. the", "x. y", "1. First": no sentence end
        else:
            end = m.start()
        _add(text, units, start, end)
        start = m.end()
    _add(text, units, start, len(text))
    return units


def _add(text, units, start, end):
    s = start + (len(text[start:end]) - len(text[start:end].lstrip()))
    e = start + len(text[start:end].rstrip())
    if e > s:
        units.append((s, e))


def line_units(text: str) -> list[tuple[int, int]]:
    """(start, end) of each line with its indentation excluded from the start and the newline from the end.

    Blank lines are skipped: they are no unit, and a span never crosses one.
    """
    units, pos = [], 0
    for line in text.splitlines(keepends=True):
        body = line.rstrip("\r\n")
        stripped = body.lstrip()
        if stripped.strip():
            s = pos + (len(body) - len(stripped))
            units.append((s, pos + len(body.rstrip())))
        else:
            units.append(None)  # a blank line breaks runs
        pos += len(line)
    return units


def python_string_lines(text: str) -> set[int]:
    """0-based numbers of the lines that lie in a multi-line string literal (docstrings, embedded text):
    prose, not code to mask. Empty when ``text`` is not Python."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        return set()
    out: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Constant, ast.JoinedStr)) and (node.end_lineno or node.lineno) > node.lineno:
            if isinstance(node, ast.JoinedStr) or isinstance(node.value, (str, bytes)):
                out.update(range(node.lineno - 1, node.end_lineno))
    return out


def base_indent(text: str, start: int) -> str:
    """The whitespace between the start of ``start``'s line and ``start`` ('' if there is text before it)."""
    line_start = text.rfind("\n", 0, start) + 1
    lead = text[line_start:start]
    return lead if not lead.strip() else ""


def display_option(option: str, indent: str, domain: str) -> str:
    """An option as the task shows it.

    Prose (passage, math): whitespace collapsed to single spaces, so hard line
    wraps give nothing away. Code: the option's lines as a block, the first
    line given the span's base indentation ``indent`` unless it already has
    some, then the common indentation removed (relative indentation kept).
    """
    option = option.strip("\n").rstrip()
    if domain != "code":
        return " ".join(option.split())
    if "\n" not in option:
        return option.strip()
    if not option[:1].isspace():
        option = indent + option
    return textwrap.dedent(option)


def dedent_span(text: str, start: int, end: int, domain: str = "code") -> str:
    """``text[start:end]`` as an option (see :func:`display_option`)."""
    return display_option(text[start:end], base_indent(text, start), domain)


def excerpt_bounds(text: str, start: int, end: int, context_chars: int, by_lines: bool) -> tuple[int, int]:
    """The window shown around ``text[start:end]``: about ``context_chars`` each side, cut at a line or sentence
    boundary (never inside a line of code), 0 = the whole text."""
    if context_chars <= 0:
        return 0, len(text)
    a = max(0, start - context_chars)
    b = min(len(text), end + context_chars)
    if a > 0:
        nl = text.find("\n", a, start)
        if nl != -1:
            a = nl + 1
        elif not by_lines:
            sp = text.find(" ", a, start)
            a = sp + 1 if sp != -1 else a
        else:
            a = text.rfind("\n", 0, start) + 1
    if b < len(text):
        nl = text.rfind("\n", end, b)
        if nl != -1:
            b = nl
        elif not by_lines:
            sp = text.rfind(" ", end, b)
            b = sp if sp != -1 else b
        else:
            nl = text.find("\n", end)
            b = len(text) if nl == -1 else nl
    return a, b


def reflow(text: str) -> str:
    """Prose with its hard line wraps undone: each paragraph (blank-line separated) on one line."""
    paras = re.split(r"\n[ \t]*\n\s*", text)
    return "\n\n".join(" ".join(p.split()) for p in paras)


def masked_excerpt(text: str, start: int, end: int, a: int, b: int, prose: bool = False) -> str:
    """The excerpt ``text[a:b]`` with ``[MASK]`` for ``text[start:end]``.

    For ``prose``, paragraphs are put on one line each: hard-wrapped
    partial lines beside the mask would otherwise show how long the span is.
    """
    before, after = text[a:start], text[end:b]
    if prose:
        lead = "" if a == 0 else "... "
        tail = "" if b >= len(text) else " ..."
        # keep a paragraph break at the mask, but no wrap: the mask sits in running text
        joined = _reflow_around(before, after)
        return lead + joined + tail
    lead = "" if a == 0 else "...\n" if text[a - 1] == "\n" else "... "  # "..." marks a cut; lines stay whole
    tail = "" if b >= len(text) else "\n..." if text[b] == "\n" else " ..."
    return lead + before + MASK + after + tail


def _reflow_around(before: str, after: str) -> str:
    sep = "\0"  # stands for the mask while the text is reflowed
    gap_before = "\n\n" if re.search(r"\n[ \t]*\n\s*$", before) else " " if before.strip() else ""
    gap_after = "\n\n" if re.match(r"^\s*\n[ \t]*\n", after) else " " if after.strip() else ""
    out = reflow(before).strip() + gap_before + sep + gap_after + reflow(after).strip()
    return out.strip().replace(sep, MASK)


def normalize(s: str) -> str:
    """The comparison key of an option: whitespace collapsed, case folded."""
    return " ".join(s.split()).casefold()
