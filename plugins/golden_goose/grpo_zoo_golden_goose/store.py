"""The on-disk layout of a synthesized data set and how to read it back.

DIR/
  settings.json   generation settings, written when a synthesis succeeds
  records.jsonl   append-only: a settings header (a resume with other settings is refused), then one line
                  per processed source: its kept items and rejections
  tasks.jsonl     the formatted tasks (written when a synthesis or filter finishes)
  dataset/        the same rows as a ``datasets`` dataset (``save_to_disk``)
  summary.json    counts of kept and rejected items by reason, format settings
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from .format import format_item

RECORDS, TASKS, DATASET, SUMMARY, SETTINGS = "records.jsonl", "tasks.jsonl", "dataset", "summary.json", "settings.json"


class StoreError(ValueError):
    pass


def read_records(path: Path) -> list[dict]:
    """Every complete line of an append-only JSONL file; a torn last line (crash mid-write) is cut off."""
    if not path.exists():
        return []
    raw = path.read_bytes()
    keep = raw.rfind(b"\n") + 1
    if keep < len(raw):  # interrupted while writing the last line: drop it so the file stays valid
        with open(path, "r+b") as f:
            f.truncate(keep)
        raw = raw[:keep]
    rows = []
    for line in raw.decode("utf-8").splitlines():
        if line.strip():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


class RecordWriter:
    """Appends one JSON line per call and syncs it to disk, so an interruption loses at most that line."""

    def __init__(self, path: Path):
        self.f = open(path, "a", encoding="utf-8")

    def write(self, row: dict) -> None:
        self.f.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.f.flush()
        os.fsync(self.f.fileno())

    def close(self) -> None:
        self.f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_json(path: Path, obj) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, ensure_ascii=False))
    os.replace(tmp, path)


def write_outputs(out: Path, items: list[dict], fmt: dict, summary: dict) -> list[dict]:
    """Format ``items`` and write tasks.jsonl, dataset/ and summary.json atomically; returns the rows."""
    import datasets

    rows = [format_item(it, fmt["options"], fmt["seed"], fmt["distractor_pick"], fmt["answer_format"]) for it in items]
    tmp = out / (TASKS + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, out / TASKS)
    tmp_dir = out / (DATASET + ".tmp")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    if rows:
        data = datasets.Dataset.from_list(rows)
    else:
        data = datasets.Dataset.from_dict({k: [] for k in ("id", "prompt", "letter")})
    datasets.disable_progress_bars()
    try:
        data.save_to_disk(str(tmp_dir))
    finally:
        datasets.enable_progress_bars()
    shutil.rmtree(out / DATASET, ignore_errors=True)
    os.replace(tmp_dir, out / DATASET)
    write_json(out / SUMMARY, {**summary, "format": fmt, "tasks": len(rows)})
    return rows


ITEM_KEYS = ("id", "source_id", "domain", "generator", "prefix", "masked_text", "answer", "answer_option",
             "distractors", "span_start", "span_end", "excerpt_start", "excerpt_end")


def load_items(path: str | Path) -> list[dict]:
    """The items of a synthesized data set: DIR (dataset/ or tasks.jsonl), a saved dataset, or a tasks JSONL file."""
    import datasets

    p = Path(path).expanduser()
    if not p.exists():
        raise StoreError(f"{path}: no such data set (run `grpo-zoo goose synthesize --out {path}` first)")
    if p.is_dir() and (p / DATASET / "dataset_info.json").exists():
        rows = datasets.load_from_disk(str(p / DATASET)).to_list()
    elif p.is_dir() and (p / "dataset_info.json").exists():
        rows = datasets.load_from_disk(str(p)).to_list()
    elif p.is_dir() and (p / TASKS).exists():
        rows = read_records(p / TASKS)
    elif p.is_file():
        rows = read_records(p)
    elif p.is_dir() and (p / RECORDS).exists():
        raise StoreError(f"{path}: synthesis has not finished (no {TASKS}); rerun the same synthesize command to finish it")
    else:
        raise StoreError(f"{path}: not a Golden Goose data set (no {DATASET}/ or {TASKS})")
    missing = [k for k in ("id", "masked_text", "answer_option", "distractors") if rows and k not in rows[0]]
    if missing:
        raise StoreError(f"{path}: rows lack {missing}; is this a Golden Goose data set?")
    return [{k: r[k] for k in ITEM_KEYS if k in r} for r in rows]
