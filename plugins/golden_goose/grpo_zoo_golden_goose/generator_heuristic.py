"""The offline heuristic generator: a baseline that needs no LLM (NOT the paper's method).

It masks a span of consecutive units (code lines, or sentences for passages
and math solutions) and draws the distractors from spans of the same number
of units cut from *other* sources of the corpus, closest in length to the
true span. The paper's generator is an LLM that writes plausible,
in-context-wrong distractors; corpus distractors are usually wrong for
surface reasons (other identifiers, other topic), so these tasks are easier
for a strong model and mainly serve offline demos and tests.
"""
from __future__ import annotations

import bisect
import random
import re
from collections import defaultdict
from dataclasses import dataclass

from .segment import MASK, dedent_span, line_units, normalize, python_string_lines, sentence_units
from .validate import Proposal, Rejected

DEFAULT_UNITS = {"code": (2, 3), "passage": (1, 2), "math": (1, 2)}
_COMMENT = ("#", "//", "/*", "*", "--")
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)


@dataclass
class HeuristicOptions:
    distractors: int = 10
    min_units: int | None = None
    max_units: int | None = None
    min_chars: int = 20
    max_chars: int = 300
    max_span_fraction: float = 0.6
    pool_sources: int = 2000
    pool_per_source: int = 30
    seed: int = 0

    def units(self, domain: str) -> tuple[int, int]:
        lo, hi = DEFAULT_UNITS.get(domain, (1, 2))
        lo = self.min_units or lo
        hi = max(self.max_units or hi, lo)
        return lo, hi


def _code_units(text: str) -> list[tuple[int, int] | None]:
    strings = python_string_lines(text)
    units = line_units(text)
    out = []
    for n, u in enumerate(units):
        if u is None or n in strings:
            out.append(None)
            continue
        line = text[u[0] : u[1]]
        bare = line.strip()
        if bare.startswith(_COMMENT) or len(_ALNUM.findall(bare)) < 3 or '"""' in line or "'''" in line:
            out.append(None)
        else:
            out.append(u)
    return out


def _prose_units(text: str) -> list[tuple[int, int] | None]:
    out = []
    for s, e in sentence_units(text):
        piece = text[s:e]
        letters = sum(c.isalpha() for c in piece)
        ok = ">>>" not in piece and letters >= 10 and letters >= 0.5 * len(piece.replace(" ", ""))
        out.append((s, e) if ok else None)
    return out


def candidate_spans(text: str, domain: str, opts: HeuristicOptions) -> list[tuple[int, int, int]]:
    """Every (start, end, units) span of ``text`` that the heuristic may mask."""
    units = _code_units(text) if domain == "code" else _prose_units(text)
    alnum = [0 if u is None else len(_ALNUM.findall(text, u[0], u[1])) for u in units]
    lo, hi = opts.units(domain)
    limit = min(opts.max_chars, opts.max_span_fraction * len(text.strip()))
    out = []
    for i in range(len(units)):
        if units[i] is None:
            continue
        total = 0
        for k in range(1, hi + 1):
            if i + k > len(units) or units[i + k - 1] is None:
                break
            total += alnum[i + k - 1]
            s, e = units[i][0], units[i + k - 1][1]
            if e - s > limit:
                break
            if k < lo:
                continue
            if domain != "code" and "\n\n" in text[s:e]:
                break
            if e - s >= opts.min_chars and total >= 8:
                out.append((s, e, k))
    return out


class HeuristicGenerator:
    """Masks one span per call; distractors are spans from other sources of similar length."""

    name = "heuristic"

    def __init__(self, sources, opts: HeuristicOptions | None = None):
        self.opts = opts or HeuristicOptions()
        self._cands: dict[str, list] = {}
        self.pool = self._build_pool(sources)

    def candidates(self, row) -> list[tuple[int, int, int]]:
        got = self._cands.pop(row["id"], None)  # computed while building the pool; used once more at most
        return got if got is not None else candidate_spans(row["text"], row["domain"], self.opts)

    def _build_pool(self, sources) -> dict:
        rng = random.Random(f"{self.opts.seed}|pool")
        n = len(sources)
        picked = sorted(rng.sample(range(n), min(n, self.opts.pool_sources)))
        raw: dict = defaultdict(list)
        seen: set = set()
        for i in picked:
            row = sources[i]
            cands = candidate_spans(row["text"], row["domain"], self.opts)
            self._cands[row["id"]] = cands
            local = random.Random(f"{self.opts.seed}|pool|{row['id']}")
            for s, e, k in local.sample(cands, min(len(cands), self.opts.pool_per_source)):
                shown = dedent_span(row["text"], s, e, row["domain"])
                key = normalize(shown)
                if key in seen:
                    continue
                seen.add(key)
                raw[(row["domain"], k)].append((len(shown), shown, row["id"], key))
        pool = {}
        for bucket, items in raw.items():
            items.sort(key=lambda t: (t[0], t[3]))
            pool[bucket] = ([t[0] for t in items], items)
        return pool

    def pool_size(self) -> int:
        return sum(len(v[1]) for v in self.pool.values())

    def _draw(self, domain, k, length, source_id, banned: set, source_norm: str, rng, want: int) -> list[str]:
        """Up to 3 * want nearest-in-length candidates of a bucket, then a seeded sample of ``want``."""
        if (domain, k) not in self.pool:
            return []
        lengths, items = self.pool[(domain, k)]
        hi = bisect.bisect_left(lengths, length)
        lo = hi - 1
        found: list[str] = []
        while len(found) < 3 * want and (lo >= 0 or hi < len(items)):
            take_lo = hi >= len(items) or (lo >= 0 and length - lengths[lo] <= lengths[hi] - length)
            idx = lo if take_lo else hi
            if take_lo:
                lo -= 1
            else:
                hi += 1
            _, shown, sid, key = items[idx]
            if sid == source_id or key in banned or key in source_norm:
                continue
            banned.add(key)
            found.append(shown)
        return rng.sample(found, min(want, len(found)))

    def propose(self, source: dict, rng: random.Random, count: int = 1) -> list:
        text, domain = source["text"], source["domain"]
        cands = list(self.candidates(source))
        if not cands:
            return [Rejected("no_span")]
        rng.shuffle(cands)
        chosen: list[tuple[int, int, int]] = []
        for s, e, k in cands:
            if all(e <= a or s >= b for a, b, _ in chosen):
                chosen.append((s, e, k))
            if len(chosen) == count:
                break
        source_norm = normalize(text)
        out = []
        for s, e, k in chosen:
            shown = dedent_span(text, s, e, domain)
            banned = {normalize(shown)}
            lo, hi = self.opts.units(domain)
            distractors: list[str] = []
            for kk in [k] + [x for x in range(lo, hi + 1) if x != k]:  # other unit counts only to top up
                want = self.opts.distractors - len(distractors)
                distractors += self._draw(domain, kk, len(shown), source["id"], banned, source_norm, rng, want)
                if len(distractors) >= self.opts.distractors:
                    break
            out.append(Proposal(text[:s] + MASK + text[e:], text[s:e], distractors, 0, len(text), distractors_shown=True))
        return out
