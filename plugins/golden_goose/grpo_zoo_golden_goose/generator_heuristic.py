"""The offline heuristic generator: a baseline that needs no LLM (NOT the paper's method).

It masks a span of consecutive units (code lines, or sentences for passages
and math solutions) that carries content (not a heading, an import block or
licence boilerplate; among the candidate spans, one of those with the most
distinct content words) and whose text does not appear elsewhere in the
excerpt shown. The distractors are other spans *of the same document*, of
the same kind (unit type and count range) and similar length (within
``min_length_ratio``..``max_length_ratio`` of the answer), chosen so that they
cannot fit the gap for surface reasons: not adjacent to it, not overlapping
it or each other, not equal to the answer after normalization, and not
visible in the shown excerpt (an option already on screen could be ruled out
without reading). Only when a document has too few such spans are the
remaining distractors drawn from other documents of the corpus (nearest in
length), so short documents still yield items. The paper's generator is an
LLM that writes plausible, in-context-wrong distractors; this heuristic is
for offline demos, tests and the bench.
"""
from __future__ import annotations

import bisect
import math
import random
import re
from collections import defaultdict
from dataclasses import dataclass

from .segment import MASK, dedent_span, excerpt_bounds, line_units, normalize, python_string_lines, sentence_units
from .validate import Proposal, Rejected

DEFAULT_UNITS = {"code": (2, 3), "passage": (1, 2), "math": (1, 2)}
_COMMENT = ("#", "//", "/*", "*", "--")
_ALNUM = re.compile(r"[^\W_]", re.UNICODE)
_WORD = re.compile(r"[^\W\d_][\w]{2,}", re.UNICODE)
_ALNUM_WORD = re.compile(r"[^\W_]+", re.UNICODE)
# words that carry no content of their own (English function words, Python keywords and common builtins)
_STOP = frozenset("""
the and for are but not you all any can had her was one our out has him his how its may new now old see two way who
did get let put say she too use that with have this will your from they been were said each which their there what
about would these other into more some such than them then only over also when where while must shall should could
does done upon very just here being both same those after before under between through without within
def class return import from pass none true false self cls else elif try except finally raise with yield lambda
async await global nonlocal assert del break continue while for not and
""".split())
# a unit that is boilerplate (licence and copyright lines, imports, shebangs, dunder metadata) or a heading
_BOILER = re.compile(
    r"copyright|all rights reserved|licen[cs]e|spdx|warranty|^\s*#!|^\s*(?:from\s+\S+\s+)?import\s|__\w+__\s*=",
    re.I,
)
_UNDERLINE = re.compile(r"^\s*[=\-~^*+#]{3,}\s*$")
_HEADING = re.compile(r"^\s*(?:#{1,6}\s|[=\-~^*+#]{3,}\s*$)|^\s*[^.!?]{0,80}:\s*$")


def words(text: str) -> set[str]:
    return {w.casefold() for w in _ALNUM_WORD.findall(text)}


def overlap_share(option: str, context: set[str]) -> float:
    """Share of an option's distinct words that also occur in the visible context (a no-reasoning cue)."""
    w = words(option)
    return len(w & context) / max(len(w), 1)


@dataclass
class HeuristicOptions:
    distractors: int = 10
    min_units: int | None = None
    max_units: int | None = None
    min_chars: int = 20
    max_chars: int = 300
    max_span_fraction: float = 0.6
    min_length_ratio: float = 0.5  # distractor length / answer length, as shown
    max_length_ratio: float = 2.0
    context_chars: int = 600  # the excerpt shown around the mask (0 = the whole text): distractors stay out of it
    same_document_only: bool = False  # never top up from other documents (short documents are then rejected)
    locality: int = 6  # distractors come from the locality * distractors candidate spans nearest to the mask
    pool_sources: int = 2000
    pool_per_source: int = 30
    seed: int = 0

    def length_ok(self, length: int, answer_length: int) -> bool:
        return self.min_length_ratio * answer_length <= length <= self.max_length_ratio * answer_length

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
    """Masks contentful spans; distractors are other spans of the same document (other documents only to top up)."""

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
            if not self.opts.length_ok(len(shown), length):
                continue

            banned.add(key)
            found.append(shown)
        return rng.sample(found, min(want, len(found)))

    def propose(self, source: dict, rng: random.Random, count: int = 1) -> list:
        text, domain = source["text"], source["domain"]
        cands = list(self.candidates(source))
        if not cands:
            return [Rejected("no_span")]
        chosen = self._pick_spans(source, cands, rng, count)
        if not chosen:
            return [Rejected("no_span", "every candidate span is boilerplate, a heading or repeated in its context")]
        source_norm = normalize(text)
        out = []
        for s, e, k, pool in chosen:
            shown = dedent_span(text, s, e, domain)
            distractors = self._same_source(pool, rng)
            banned = {normalize(shown), *map(normalize, distractors)}
            lo, hi = self.opts.units(domain)
            tops = [] if self.opts.same_document_only else [k] + [x for x in range(lo, hi + 1) if x != k]
            for kk in tops:  # other documents only to top up
                want = self.opts.distractors - len(distractors)
                if want <= 0:
                    break
                distractors += self._draw(domain, kk, len(shown), source["id"], banned, source_norm, rng, want)
            out.append(Proposal(text[:s] + MASK + text[e:], text[s:e], distractors, 0, len(text), distractors_shown=True))
        return out

    # --- which span to mask ------------------------------------------------------------------------

    def _visible(self, source: dict, s: int, e: int) -> str:
        """The normalized text shown around a mask at [s, e) (the prefix included); the mask itself is a NUL."""
        text = source["text"]
        a, b = excerpt_bounds(text, s, e, self.opts.context_chars, by_lines=source["domain"] == "code")
        return normalize((source.get("prefix") or "") + "\n" + text[a:s] + "\n\0\n" + text[e:b])

    @staticmethod
    def content(text: str) -> int:
        """Distinct content words of a span: what a reader must reason about to pick it."""
        return len({w.casefold() for w in _WORD.findall(text)} - _STOP)

    @staticmethod
    def boilerplate(text: str, s: int, e: int) -> bool:
        """Every line of the span is licence/import/metadata boilerplate or a heading."""
        lines = [ln for ln in text[s:e].splitlines() if ln.strip()]
        underlined = {i for i in range(len(lines) - 1) if _UNDERLINE.match(lines[i + 1])}  # reST "Title\n====="
        return all(_BOILER.search(ln) or _HEADING.search(ln) or i in underlined for i, ln in enumerate(lines))

    def _pick_spans(self, source: dict, cands, rng: random.Random, count: int, tries: int = 12) -> list[tuple]:
        """Up to ``count`` non-overlapping spans (with their distractor pools), drawn from the upper half by content
        (see :meth:`content`). A span is taken when its document offers enough distractors on both sides of its
        word overlap with the context (half the distractors at least as high, half lower); after ``tries`` spans
        without one, the span that came closest."""
        text = source["text"]
        ok = []
        for s, e, k in cands:
            if self.boilerplate(text, s, e):
                continue
            if normalize(text[s:e]) in self._visible(source, s, e):
                continue  # the answer would be on screen elsewhere in the excerpt
            ok.append((self.content(text[s:e]), s, e, k))
        if not ok:
            return []
        ok.sort(key=lambda t: (-t[0], t[1]))
        top = ok[: max(count, (len(ok) + 1) // 2)]  # the contentful half, at least ``count``
        rng.shuffle(top)
        chosen: list[tuple] = []
        need = self.opts.distractors  # each side can supply every distractor: any split of the draw below is met
        while len(chosen) < count:
            best, tried = None, 0
            for _, s, e, k in top:
                if not all(e <= a or s >= b for a, b, *_ in chosen):
                    continue
                pool = self._pool(source, cands, s, e, dedent_span(text, s, e, source["domain"]), self._visible(source, s, e))
                above = sum(1 for t in pool if t[5])
                both = min(above, len(pool) - above)
                if best is None or both > best[0]:
                    best = (both, (s, e, k, pool))
                tried += 1
                if both >= need or tried >= tries:
                    break
            if best is None:
                break
            chosen.append(best[1])
        return chosen

    # --- distractors from the same document -----------------------------------------------------------

    def _pool(self, source, cands, s, e, shown, visible) -> list[tuple]:
        """Other spans of this document that cannot fit the gap for surface reasons (see the module docstring),
        nearest to the mask first, as (gap, start, end, shown, key, at-least-the-answer's-overlap, distance)."""
        text, domain = source["text"], source["domain"]
        key = normalize(shown)
        context = words(visible)
        target = overlap_share(shown, context)
        target_n = len(words(shown) & context)
        pool = []
        for cs, ce, _ in cands:
            if not (ce <= s or cs >= e):
                continue  # overlaps the answer
            between = text[ce:s] if ce <= s else text[e:cs]
            if not between.strip():
                continue  # adjacent: it continues the text right at the gap
            d = dedent_span(text, cs, ce, domain)
            dk = normalize(d)
            if dk == key or dk in key or key in dk or dk in visible or not self.opts.length_ok(len(d), len(shown)):
                continue
            if self.boilerplate(text, cs, ce):
                continue
            dw = words(d)
            share, shared = len(dw & context) / max(len(dw), 1), len(dw & context)
            # close to the answer in length and word overlap with the context (the cues a guesser would use)
            gap = abs(share - target) + 0.5 * abs(math.log(len(d) / len(shown))) + 0.1 * abs(shared - target_n)
            pool.append((gap, cs, ce, d, dk, (share, shared) >= (target, target_n), min(abs(cs - e), abs(s - ce))))
        want = self.opts.distractors
        # the nearest spans outside the excerpt first: they share the document's local vocabulary (same function,
        # same section), so they are the plausible ones
        pool.sort(key=lambda t: (t[6], t[1]))
        pool = pool[: self.opts.locality * want]
        pool.sort(key=lambda t: (t[0], t[1]))
        return pool

    def _same_source(self, pool: list[tuple], rng) -> list[str]:
        """``distractors`` spans of ``pool``: close matches, with the answer's overlap rank made uniform."""
        want = self.opts.distractors
        # The answer's overlap rank among the options is made uniform: with u ~ U(0, 1), each distractor is drawn
        # from those overlapping the context at least as much as the answer with probability u, so the number
        # above it is uniform over 0..want (a Beta(1,1)-binomial). Always picking distractors on one side would
        # let "highest overlap" (or "not the highest") find the answer.
        u = rng.random()
        n_above = sum(rng.random() < u for _ in range(want))
        near: list = []
        for side, need in ((True, n_above), (False, want - n_above)):
            got = 0
            for item in pool:  # the closest matches, neither overlapping nor equal to one another
                if got >= need:
                    break
                if item[5] != side or any(not (item[2] <= o[1] or item[1] >= o[2]) or item[4] == o[4] for o in near):
                    continue
                near.append(item)
                got += 1
        for item in pool:  # one side ran short: fill from the other
            if len(near) >= want:
                break
            if item in near or any(not (item[2] <= o[1] or item[1] >= o[2]) or item[4] == o[4] for o in near):
                continue
            near.append(item)
        picked = rng.sample(near, min(want, len(near)))
        picked.sort(key=lambda t: t[1])
        return [t[3] for t in picked]
