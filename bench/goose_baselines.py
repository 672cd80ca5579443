"""No-reasoning baselines on Golden Goose items from the heuristic generator (issue 21).

A multiple-choice item is only a reasoning task if an option cannot be picked from surface cues. This bench
synthesizes items (heuristic generator, 9 options, chance 1/9) from offline texts of three kinds and scores
three baselines that never read the task for meaning:

- ``overlap``: the option sharing the largest share of its words with the visible context (the masked excerpt);
  the generator balances this very statistic (the answer's rank on it is made uniform), so it is not held out;
- ``lexical``: held out, the lexical score of ``bench/goose_options.py`` (identifiers of 3+ characters shared
  with the context, divided by sqrt(1 + the option's identifiers)): a different statistic of the same cue;
- ``fewest``: the option with the smallest share (the reverse cue: distractors picked to defeat ``overlap`` must
  not leave the answer at the bottom instead);
- ``longest``: the longest option;
- ``unseen``: any option whose text does not appear in the visible context (an option on screen was not removed).

Ties are split evenly (an item scores 1/|tied| when the answer is among the tied options), so each figure is
an expected accuracy. The goal in issue 21: every baseline at most 1.5x chance (0.167) on every kind.

Texts (all on this machine, nothing downloaded):
- ``prose``: the docstrings of each standard-library module joined into one document per module;
- ``legal``: licence texts shipped with installed packages (``*.dist-info/**/LICEN[CS]E*``, ``COPYING``) and
  ``/usr/share/common-licenses`` when present, one document per distinct text;
- ``code``: the standard library's ``.py`` files (``stdlib:code``).

Run: python bench/goose_baselines.py [--limit 150] [--context-chars 600] [--same-document-only]. The last line is one JSON object.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import re
import site
import sys
import tempfile
import time
from pathlib import Path

from grpo_zoo_golden_goose.format import format_item
from grpo_zoo_golden_goose.segment import MASK, normalize
from grpo_zoo_golden_goose.sources import docstrings, stdlib_files, stdlib_root
from grpo_zoo_golden_goose.store import load_items
from grpo_zoo_golden_goose.synthesize import SynthesisConfig, synthesize

OPTIONS = 9
WORD = re.compile(r"[^\W_]+", re.UNICODE)
IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")


def words(text: str) -> set[str]:
    return {w.casefold() for w in WORD.findall(text)}


def write_prose(folder: Path, min_chars: int = 3000) -> int:
    root, n = stdlib_root(), 0
    for path in stdlib_files():
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        docs = [d for _, d in docstrings(text, path.stem) if len(d) >= 80]
        body = "\n\n".join(docs)
        if len(body) >= min_chars:
            name = path.relative_to(root).as_posix().replace("/", "__")
            (folder / f"{name}.txt").write_text(body, encoding="utf-8")
            n += 1
    return n


def write_legal(folder: Path, min_chars: int = 3000) -> int:
    dirs = [Path(p) for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    files = [f for d in dirs for f in d.glob("*.dist-info/**/*") if f.is_file() and re.match(r"(LICEN[CS]E|COPYING)", f.name, re.I)]
    common = Path("/usr/share/common-licenses")
    if common.is_dir():
        files += [f for f in common.iterdir() if f.is_file()]
    seen, n = set(), 0
    for f in sorted(files):
        try:
            text = f.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        key = hashlib.sha256(normalize(text).encode()).hexdigest()
        if len(text) < min_chars or key in seen:
            continue
        seen.add(key)
        (folder / f"LICENSE-{n:03d}").write_text(text, encoding="utf-8")  # extension-less on purpose
        n += 1
    return n


def baselines(row: dict) -> dict[str, float]:
    context = row["masked_text"].replace(MASK, " ")
    ctx_words, ctx_norm = words(context), normalize(context)
    opts, answer = row["options"], row["answer_index"]

    def share(scores):
        best = max(scores)
        tied = [i for i, s in enumerate(scores) if s == best]
        return (1.0 / len(tied)) if answer in tied else 0.0

    overlap = [len(words(o) & ctx_words) / max(len(words(o)), 1) for o in opts]
    fewest = [-x for x in overlap]  # the reverse cue: distractors chosen to beat "most overlap" must not make
    # "least overlap" a winner
    ctx_ids = set(IDENT.findall(context))
    lexical = [len(set(IDENT.findall(o)) & ctx_ids) / (len(set(IDENT.findall(o))) + 1) ** 0.5 for o in opts]
    longest = [len(" ".join(o.split())) for o in opts]
    unseen = [0.0 if normalize(o) in ctx_norm else 1.0 for o in opts]
    return {"overlap": share(overlap), "fewest": share(fewest), "lexical": share(lexical), "longest": share(longest), "unseen": share(unseen)}


def run_kind(kind: str, source: str, tmp: Path, limit: int, context_chars: int, seed: int, same_only: bool) -> dict:
    out = tmp / f"out-{kind}"
    summary = synthesize(SynthesisConfig(input=source, out=str(out), limit=limit, context_chars=context_chars, seed=seed,
                                         domain="code" if kind == "code" else "passage", same_document_only=same_only),
                         progress=False, log=lambda *_: None)
    items = load_items(out)
    rows = [format_item(it, OPTIONS, seed=seed) for it in items]
    acc = {"overlap": 0.0, "fewest": 0.0, "lexical": 0.0, "longest": 0.0, "unseen": 0.0}
    for r in rows:
        for k, v in baselines(r).items():
            acc[k] += v
    n = max(len(rows), 1)
    own = [len(it["distractors"]) and sum(1 for d in it["distractors"] if normalize(d) in normalize(
        _source_text(source, it)) ) / len(it["distractors"]) for it in items]
    return {"sources": summary["sources"], "items": len(rows), "rejected": summary["rejected_by_reason"],
            "same_document_distractor_share": round(sum(own) / n, 3),
            **{k: round(v / n, 3) for k, v in acc.items()}}


_TEXTS: dict = {}


def _source_text(source: str, item: dict) -> str:
    if source not in _TEXTS:
        from grpo_zoo_golden_goose.sources import load_source_rows

        _TEXTS[source] = {r["id"]: r["text"] for r in load_source_rows(source)}
    return _TEXTS[source].get(item["source_id"], "")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--limit", type=int, default=150, help="documents per kind (a seeded sample)")
    ap.add_argument("--context-chars", type=int, default=600)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--same-document-only", action="store_true", help="no distractors topped up from other documents")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = {"options": OPTIONS, "chance": round(1 / OPTIONS, 3), "target": round(1.5 / OPTIONS, 3),
              "context_chars": args.context_chars, "same_document_only": args.same_document_only, "python": sys.version.split()[0], "kinds": {}}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "prose").mkdir()
        (tmp / "legal").mkdir()
        docs = {"prose": write_prose(tmp / "prose"), "legal": write_legal(tmp / "legal")}
        kinds = {"prose": str(tmp / "prose"), "legal": str(tmp / "legal"), "code": "stdlib:code"}
        for kind, source in kinds.items():
            if kind in docs and docs[kind] == 0:
                result["kinds"][kind] = {"items": 0, "note": "no texts of this kind found on this machine"}
                continue
            result["kinds"][kind] = run_kind(kind, source, tmp, args.limit, args.context_chars, args.seed,
                                          args.same_document_only)
    print(f"{'kind':<7} {'docs':>5} {'items':>6} {'overlap':>8} {'fewest':>7} {'lexical':>8} {'longest':>8} {'unseen':>7} {'same-doc':>9}   (chance "
          f"{result['chance']}, target <= {result['target']})")
    for kind, r in result["kinds"].items():
        if r["items"]:
            print(f"{kind:<7} {r['sources']:>5} {r['items']:>6} {r['overlap']:>8} {r['fewest']:>7} {r['lexical']:>8} {r['longest']:>8} {r['unseen']:>7} "
                  f"{r['same_document_distractor_share']:>9}")
    result["worst"] = max((r[k] for r in result["kinds"].values() if r["items"] for k in ("overlap", "fewest", "lexical", "longest", "unseen")),
                          default=None)
    result["within_target"] = result["worst"] is not None and result["worst"] <= result["target"]
    result["seconds"] = round(time.perf_counter() - t0, 1)
    return result


if __name__ == "__main__":
    print(json.dumps(main()))
