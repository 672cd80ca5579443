"""Durable run-folder files: atomic rewrites, fsynced appends, JSONL that survives a torn last line.

A crash (kill -9, power cut, full disk) can interrupt any write. Rewrites go
through a temporary sibling, fsync and rename, so a reader sees the old file or
the new one, never half of either. Appends are flushed and fsynced, so what a
step logged survives the crash; the last line can still be torn, which readers
drop with a warning (a torn line anywhere else is an error naming file and line).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import sys
from pathlib import Path

from ..errors import CorruptFileError


def warn(message: str) -> None:
    print(f"grpo-zoo: warning: {message}", file=sys.stderr)


@contextlib.contextmanager
def naming(path: Path):
    """Re-raise an OSError without a file name (ENOSPC in write(), fsync) with ``path`` in it."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and exc.errno is not None:
            raise type(exc)(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise


def fsync_dir(path: Path) -> None:
    """Make a rename or a new entry in ``path`` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover (Windows)
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover (some filesystems refuse fsync on directories)
        pass
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    with naming(path):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file under ``root`` and every folder, deepest first (before renaming it into place)."""
    for folder, _, files in os.walk(root, topdown=False):
        for name in files:
            fsync_file(Path(folder) / name)
        fsync_dir(Path(folder))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with naming(path):
        try:
            with open(tmp, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
    fsync_dir(path.parent)


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def replace_folder(folder: Path, write) -> Path:
    """``write(tmp)`` fills a temporary sibling folder, which then takes the place of ``folder``:
    readers see the old folder or the complete new one, never a half-written one."""
    folder = Path(folder)
    tmp = folder.with_name(f".tmp-{folder.name}-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    write(tmp)
    if folder.exists():
        shutil.rmtree(folder)
    os.replace(tmp, folder)
    return folder


def finite_json(value):
    """``value`` with every NaN/inf float replaced by None, so the JSON is valid (RFC 8259 has no NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(v) for v in value]
    return value


def dumps(value, **kw) -> str:
    return json.dumps(finite_json(value), allow_nan=False, **kw)


def append_lines(path: Path, lines: list[str]) -> None:
    """Append whole lines and fsync them: a crash loses at most the line being written."""
    path = Path(path)
    with naming(path), open(path, "a") as f:
        f.write("".join(line + "\n" for line in lines))
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSONL file. A torn last line (a crash mid-append) is dropped with a warning;
    an unreadable line elsewhere raises CorruptFileError naming the file, line and column."""
    path = Path(path)
    if not path.exists():
        return []
    lines = path.read_text(errors="replace").split("\n")
    rows = []
    last = max((i for i, ln in enumerate(lines) if ln.strip()), default=-1)
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if i == last:
                warn(f"{path}: dropping the torn last line {i + 1} (a crash or a full disk cut it: {exc.msg})")
                break
            raise CorruptFileError(
                f"{path}, line {i + 1}, column {exc.colno}: not valid JSON ({exc.msg}); fix or delete that line"
            ) from None
    return rows
