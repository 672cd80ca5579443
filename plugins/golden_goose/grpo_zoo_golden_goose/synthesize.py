"""The synthesis pipeline: sources -> generator -> validation -> append-only records -> tasks + dataset.

Resumable: each processed source is one synced line of ``records.jsonl``
(its kept items and its rejections together), and a rerun skips every source
already recorded. A torn last line is cut off on resume, so a source is either
fully recorded or redone, never half. Sources whose generator call failed
(``generator_error``) are not marked done and are retried on the next run.
"""
from __future__ import annotations

import random
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from .generator_heuristic import HeuristicGenerator, HeuristicOptions
from .generator_llm import LLMGenerator, LLMOptions, make_backend
from .sources import load_sources
from .store import RECORDS, SETTINGS, RecordWriter, read_records, write_json, write_outputs
from .validate import Rejected, Rules, check_shown, make_item, validate


class SynthesisError(ValueError):
    pass


@dataclass
class SynthesisConfig:
    input: str
    out: str
    domain: str = "auto"
    generator: str = "heuristic"
    model: str | None = None
    endpoint: str | None = None
    endpoint_model: str | None = None
    api: str = "chat"
    max_new_tokens: int = 1024
    temperature: float = 0.0
    limit: int | None = None
    per_source: int = 1
    seed: int = 0
    options: int = 9
    distractors: int = 10
    distractor_pick: str = "random"
    answer_format: str = "tag"
    min_units: int | None = None
    max_units: int | None = None
    min_chars: int = 20
    max_chars: int = 300
    context_chars: int = 600
    max_source_chars: int = 3000
    shuffle: bool = True
    text_column: str | None = None
    question_column: str | None = None
    solution_column: str | None = None
    id_column: str | None = None
    max_consecutive_errors: int = 5
    extra: dict = field(default_factory=dict)
    min_length_ratio: float = 0.5
    max_length_ratio: float = 2.0
    same_document_only: bool = False

    # settings that change which items a source yields: a resume must keep them
    GENERATION_KEYS = ("input", "domain", "generator", "model", "endpoint", "endpoint_model", "api", "temperature",
                       "per_source", "seed", "distractors", "min_units", "max_units", "min_chars", "max_chars",
                       "context_chars", "max_source_chars", "shuffle", "text_column", "question_column",
                       "solution_column", "id_column", "min_length_ratio", "max_length_ratio", "same_document_only")

    def generation_settings(self) -> dict:
        return {k: getattr(self, k) for k in self.GENERATION_KEYS}

    def format_settings(self) -> dict:
        return {"options": self.options, "seed": self.seed, "distractor_pick": self.distractor_pick, "answer_format": self.answer_format}

    def check(self) -> None:
        if self.generator not in ("heuristic", "llm"):
            raise SynthesisError(f"--generator must be heuristic or llm, got {self.generator!r}")
        if self.domain not in ("auto", "math", "code", "passage"):
            raise SynthesisError(f"--domain must be auto, math, code or passage, got {self.domain!r}")
        if not 2 <= self.options <= 26:
            raise SynthesisError(f"--options must be between 2 and 26, got {self.options}")
        if self.distractors < self.options - 1:
            raise SynthesisError(f"--distractors ({self.distractors}) must be at least --options - 1 ({self.options - 1})")
        if self.generator == "llm" and not (self.model or self.endpoint or "backend" in self.extra):
            raise SynthesisError("--generator llm needs --model M (a transformers model) or --endpoint URL")
        if self.limit is not None and self.limit < 1:
            raise SynthesisError(f"--limit must be >= 1, got {self.limit}")
        if self.per_source < 1:
            raise SynthesisError(f"--per-source must be >= 1, got {self.per_source}")
        if not 0 < self.min_length_ratio <= 1 <= self.max_length_ratio:
            raise SynthesisError(
                f"--min-length-ratio ({self.min_length_ratio}) must be in (0, 1] and --max-length-ratio "
                f"({self.max_length_ratio}) >= 1"
            )


def _columns(cfg: SynthesisConfig) -> dict:
    return {k: getattr(cfg, k) for k in ("text_column", "question_column", "solution_column", "id_column") if getattr(cfg, k)}


def make_generator(cfg: SynthesisConfig, sources):
    ratios = {"min_length_ratio": cfg.min_length_ratio, "max_length_ratio": cfg.max_length_ratio}
    if cfg.generator == "heuristic":
        opts = HeuristicOptions(cfg.distractors, cfg.min_units, cfg.max_units, cfg.min_chars, cfg.max_chars,
                                context_chars=cfg.context_chars, seed=cfg.seed,
                                same_document_only=cfg.same_document_only, **ratios)
        return HeuristicGenerator(sources, opts), Rules(cfg.distractors, cfg.min_chars, cfg.max_chars, **ratios)
    backend = cfg.extra.get("backend") or make_backend(
        cfg.model, cfg.endpoint, cfg.endpoint_model, cfg.api, cfg.max_new_tokens, cfg.temperature
    )
    rules = Rules(max(cfg.distractors, cfg.options - 1), min_chars=min(cfg.min_chars, 10), max_chars=max(cfg.max_chars, 800),
                  **ratios)
    return LLMGenerator(backend, LLMOptions(cfg.distractors, cfg.max_source_chars)), rules


def order(n: int, seed: int, shuffle: bool) -> list[int]:
    idx = list(range(n))
    if shuffle:
        random.Random(f"{seed}|order").shuffle(idx)
    return idx


def _done(records: list[dict]) -> list[dict]:
    """Records of sources that were processed for good (not a header, not a generator error to retry)."""
    return [r for r in records if "source_id" in r and not any(x["reason"] == "generator_error" for x in r["rejected"])]


def _check_settings(out: Path, cfg: SynthesisConfig, overwrite: bool) -> bool:
    """Refuse to continue a synthesis made with other settings; True when records.jsonl holds its settings header.

    The settings that made the records are the header line of ``records.jsonl`` (written with the first
    record), or ``settings.json`` of a finished run. Nothing is written here: a run that fails before it
    records a source leaves no settings behind, so a corrected rerun into the same folder is not refused.
    Records holding only generator errors protect nothing and are cleared.
    """
    import json

    if overwrite:
        for name in (RECORDS, SETTINGS):
            (out / name).unlink(missing_ok=True)
        return False
    records = read_records(out / RECORDS)
    header = next((r["settings"] for r in records if "settings" in r and "source_id" not in r), None)
    if not _done(records):
        (out / RECORDS).unlink(missing_ok=True)
        return False
    before = header
    if before is None and (out / SETTINGS).exists():
        before = json.loads((out / SETTINGS).read_text())
    now = cfg.generation_settings()
    if before is not None:
        diff = {k: (before.get(k), v) for k, v in now.items() if before.get(k) != v}
        if diff:
            lines = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
            raise SynthesisError(f"{out} was synthesized with other settings ({lines}); use another --out or --overwrite")
    return header is not None


def process_source(gen, rules: Rules, row: dict, cfg: SynthesisConfig) -> dict:
    """One source -> its record: kept items and rejection reasons."""
    rng = random.Random(f"{cfg.seed}|{row['id']}")
    items, rejected, ids = [], [], set()
    for prop in gen.propose(row, rng, cfg.per_source):
        try:
            if isinstance(prop, Rejected):
                raise prop
            s, e, distractors = validate(prop, row["text"], rules, row["domain"])
            item = make_item(row, s, e, distractors, gen.name, cfg.context_chars)
            check_shown(item)
            if item["id"] in ids:
                raise Rejected("duplicate_item")
            ids.add(item["id"])
            items.append(item)
        except Rejected as rej:
            rejected.append({"reason": rej.reason, "detail": rej.detail})
    return {"source_id": row["id"], "items": items, "rejected": rejected}


def summarize(records: list[dict]) -> tuple[list[dict], dict]:
    """Items (unique ids, the last record of a source wins) and the kept/rejected counts."""
    last = {}
    for r in records:
        if "source_id" in r:  # not the settings header
            last[r["source_id"]] = r
    items, seen, reasons = [], set(), Counter()
    for r in last.values():
        for it in r["items"]:
            if it["id"] not in seen:
                seen.add(it["id"])
                items.append(it)
        reasons.update(x["reason"] for x in r["rejected"])
    counts = {"sources": len(last), "kept": len(items), "rejected": sum(reasons.values())}
    return items, {**counts, "rejected_by_reason": dict(sorted(reasons.items()))}


def synthesize(cfg: SynthesisConfig, progress: bool = True, overwrite: bool = False, log=print) -> dict:
    """Run (or continue) a synthesis into ``cfg.out``; returns the summary."""
    cfg.check()
    out = Path(cfg.out).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    has_header = _check_settings(out, cfg, overwrite)
    t0 = time.perf_counter()
    sources = load_sources(cfg.input, cfg.domain, **_columns(cfg))
    idx = order(len(sources), cfg.seed, cfg.shuffle)
    if cfg.limit:
        idx = idx[: cfg.limit]
    records = read_records(out / RECORDS)
    done = {r["source_id"] for r in _done(records)}
    ids = sources["id"]
    todo = [i for i in idx if ids[i] not in done]
    if todo:
        gen, rules = make_generator(cfg, sources)
    bar = tqdm(todo, desc="goose synthesize", unit="src", disable=not progress, initial=len(idx) - len(todo), total=len(idx))
    errors_in_a_row = 0
    kept_now = 0
    with RecordWriter(out / RECORDS) as writer:
        for i in bar:
            row = sources[i]
            rec = process_source(gen, rules, row, cfg)
            if not has_header:  # the settings go with the first record: they are what a resume must match
                writer.write({"settings": cfg.generation_settings()})
                has_header = True
            writer.write(rec)
            records.append(rec)
            kept_now += len(rec["items"])
            bar.set_postfix(kept=kept_now, refresh=False)
            failed = any(x["reason"] == "generator_error" for x in rec["rejected"])
            errors_in_a_row = errors_in_a_row + 1 if failed else 0
            if errors_in_a_row >= cfg.max_consecutive_errors:
                raise SynthesisError(
                    f"{errors_in_a_row} generator calls failed in a row (last: {rec['rejected'][-1]['detail']}); "
                    f"fix the model/endpoint and rerun the same command to continue"
                )
    items, summary = summarize(records)
    summary.update({
        "input": cfg.input, "generator": cfg.generator, "sources_available": len(sources), "sources_selected": len(idx),
        "sources_processed_now": len(todo), "seconds": round(time.perf_counter() - t0, 2), "python": sys.version.split()[0],
    })
    write_outputs(out, items, cfg.format_settings(), summary)
    write_json(out / SETTINGS, cfg.generation_settings())  # only once the synthesis has succeeded
    log(format_summary(summary, out))
    return summary


def format_summary(s: dict, out: Path | None = None) -> str:
    lines = [
        f"golden goose: {s['kept']} tasks kept, {s['rejected']} rejected, from {s['sources']} sources "
        f"({s.get('sources_processed_now', 0)} processed now, {s.get('sources_available', '?')} available)",
    ]
    for reason, n in (s.get("rejected_by_reason") or {}).items():
        lines.append(f"  rejected {reason}: {n}")
    if out is not None:
        lines.append(f"  written: {out / 'tasks.jsonl'}, {out / 'dataset'}, {out / 'summary.json'}")
    return "\n".join(lines)


def config_from_args(args) -> SynthesisConfig:
    fields = {f for f in SynthesisConfig.__dataclass_fields__}
    kw = {k: v for k, v in vars(args).items() if k in fields and v is not None}
    return SynthesisConfig(**kw)


__all__ = ["SynthesisConfig", "SynthesisError", "synthesize", "config_from_args"]
