"""Source texts: files, JSONL/Parquet tables, saved datasets and the Python standard library.

Every loader returns a ``datasets.Dataset`` with the columns ``id`` (stable,
unique), ``text`` (the text a span is cut from), ``prefix`` (shown unmasked
before it: a math question; empty otherwise) and ``domain`` (math, code or
passage).

Input forms (``--input`` / ``[golden_goose] source``):
- ``stdlib:code[:pkg1,pkg2]``: the standard library's own ``.py`` files, found
  through the running interpreter (``sysconfig.get_paths()["stdlib"]``);
  optional comma-separated top-level module/package names restrict it.
- ``stdlib:docstrings[:pkg1,...]``: the docstrings of its modules, classes and
  functions (read with ``ast``, never imported), passage domain.
- a plain text / code file, or a folder of them (one document per file;
  extension-less files such as LICENSE or README count when they are UTF-8 text);
- ``.jsonl``/``.json``/``.parquet`` files (or a folder of them) with a text
  column or a question/solution pair;
- a folder written by ``datasets.Dataset.save_to_disk``;
- ``hf:NAME[:CONFIG][@SPLIT]``: a dataset from the Hugging Face hub (needs network).
"""
from __future__ import annotations

import ast
import hashlib
import sysconfig
from dataclasses import dataclass
from pathlib import Path

DOMAINS = ("math", "code", "passage")
TEXT_SUFFIXES = {".txt", ".md", ".rst", ".text", ".tex"}
CODE_SUFFIXES = {".py", ".c", ".h", ".cc", ".cpp", ".js", ".ts", ".java", ".go", ".rs", ".rb", ".sh", ".pyi"}
TABLE_SUFFIXES = {".jsonl", ".json", ".parquet"}
QUESTION_COLUMNS = ("question", "problem", "prompt", "instruction", "query")
SOLUTION_COLUMNS = ("solution", "answer", "response", "output", "completion")
TEXT_COLUMNS = ("text", "content", "passage", "document", "body", "code")
# Parts of the standard library that are tests, vendored data or near-identical boilerplate.
STDLIB_SKIP = {
    "site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__", "lib2to3",
    "encodings", "pydoc_data", "ensurepip", "turtledemo", "idlelib", "lib-dynload",
}
STDLIB_MAX_BYTES = 400_000


class SourceError(ValueError):
    """A source could not be read; the message names the input."""


@dataclass
class Source:
    id: str
    text: str
    prefix: str = ""
    domain: str = "passage"


def stdlib_root() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def stdlib_files(packages: list[str] | None = None) -> list[Path]:
    root = stdlib_root()
    out = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part in STDLIB_SKIP or part.startswith("config-") for part in rel.parts[:-1]):
            continue
        if rel.parts[0] in STDLIB_SKIP or rel.name.startswith("test_"):
            continue
        if packages and rel.parts[0].removesuffix(".py") not in packages:
            continue
        try:
            if path.stat().st_size > STDLIB_MAX_BYTES:
                continue
        except OSError:
            continue
        out.append(path)
    return out


def _module_name(rel: Path) -> str:
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _read(path: Path) -> str | None:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return None


def _is_text(path: Path, probe: int = 8192) -> bool:
    """An extension-less file (LICENSE, README, COPYING, a script) counts as text when its start is UTF-8 without NULs."""
    try:
        with open(path, "rb") as f:
            head = f.read(probe)
    except OSError:
        return False
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        return exc.start >= len(head) - 3  # only a multi-byte character cut at the probe's end
    return True


def stdlib_code_rows(packages=None) -> list[dict]:
    root = stdlib_root()
    rows = []
    for path in stdlib_files(packages):
        text = _read(path)
        if text and text.strip():
            rows.append({"id": "stdlib/" + path.relative_to(root).as_posix(), "text": text, "prefix": "", "domain": "code"})
    return rows


def docstrings(text: str, module: str) -> list[tuple[str, str]]:
    """(qualified name, cleaned docstring) of a module's source, without importing it."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    out = []

    def visit(node, qual):
        doc = ast.get_docstring(node, clean=True)
        if doc:
            out.append((qual, doc))
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                visit(child, f"{qual}.{child.name}")

    visit(tree, module)
    return out


def stdlib_docstring_rows(packages=None, min_chars: int = 160) -> list[dict]:
    root = stdlib_root()
    rows, seen = [], set()
    for path in stdlib_files(packages):
        text = _read(path)
        if not text:
            continue
        for qual, doc in docstrings(text, _module_name(path.relative_to(root))):
            key = " ".join(doc.split())
            if len(doc) < min_chars or key in seen:  # short ones carry no span; copies (overloads) add nothing
                continue
            seen.add(key)
            rows.append({"id": "stdlib-doc/" + qual, "text": doc, "prefix": "", "domain": "passage"})
    return rows


def _files_under(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    return sorted(p for p in path.rglob("*") if p.is_file() and not any(s.startswith(".") for s in p.relative_to(path).parts))


def _text_rows(files: list[Path], root: Path) -> list[dict]:
    """One document per file through the ``datasets`` text builder."""
    import datasets

    data = datasets.load_dataset("text", data_files=[str(f) for f in files], sample_by="document", split="train")
    texts = data["text"]
    if len(texts) != len(files):  # the builder skipped a file (empty): read them one by one
        texts = [_read(f) or "" for f in files]
    rows = []
    for f, text in zip(files, texts):
        rel = f.relative_to(root).as_posix() if f != root else f.name
        domain = "code" if f.suffix in CODE_SUFFIXES or (not f.suffix and text.startswith("#!")) else "passage"
        if text and text.strip():
            rows.append({"id": rel, "text": text, "prefix": "", "domain": domain})
    return rows


def _pick(columns: list[str], wanted: str | None, choices: tuple[str, ...]) -> str | None:
    if wanted:
        if wanted not in columns:
            raise SourceError(f"column {wanted!r} not found; the data has {columns}")
        return wanted
    return next((c for c in choices if c in columns), None)


def table_rows(data, label: str, text_column=None, question_column=None, solution_column=None, id_column=None) -> list[dict]:
    """Rows of a ``datasets.Dataset``: a text column, or a question/solution pair (math domain)."""
    cols = list(data.column_names)
    q = _pick(cols, question_column, QUESTION_COLUMNS)
    s = _pick(cols, solution_column, SOLUTION_COLUMNS)
    t = _pick(cols, text_column, TEXT_COLUMNS)
    idc = _pick(cols, id_column, ("id",))
    if text_column or not (q and s):
        if t is None:
            raise SourceError(
                f"{label}: no text column (looked for {', '.join(TEXT_COLUMNS)}) and no question/solution pair; "
                f"columns are {cols}; pass --text-column or --question-column/--solution-column"
            )
        domain = "code" if t == "code" else "passage"
        rows = [
            {
                "id": f"{label}#{r[idc] if idc else i}",
                "text": str(r[t] or ""),
                "prefix": str(r.get("prefix") or ""),
                "domain": r.get("domain") or domain,
            }
            for i, r in enumerate(data)
        ]
    else:
        rows = [
            {"id": f"{label}#{r[idc] if idc else i}", "text": str(r[s] or ""), "prefix": str(r[q] or ""), "domain": "math"}
            for i, r in enumerate(data)
        ]
    return [r for r in rows if r["text"].strip()]


def _table_files(files: list[Path], label: str) -> list[dict]:
    import datasets

    kinds = {("parquet" if f.suffix == ".parquet" else "json") for f in files}
    if len(kinds) > 1:
        raise SourceError(f"{label}: mixes Parquet and JSON files; give one kind")
    return datasets.load_dataset(kinds.pop(), data_files=[str(f) for f in files], split="train")


def _hub(spec: str):
    import datasets

    name, _, split = spec.partition("@")
    name, _, config = name.partition(":")
    try:
        return datasets.load_dataset(name, config or None, split=split or "train")
    except Exception as exc:  # offline, unknown name, ...
        raise SourceError(f"hf:{spec}: cannot load from the hub: {exc}") from exc


def load_source_rows(spec: str, **columns) -> list[dict]:
    """Every source row of ``spec`` (see the module docstring), as dicts with id/text/prefix/domain."""
    import datasets

    if spec.startswith("stdlib:"):
        _, kind, *rest = spec.split(":", 2)
        packages = [p.strip() for p in rest[0].split(",") if p.strip()] if rest else None
        if kind == "code":
            rows = stdlib_code_rows(packages)
        elif kind in ("docstrings", "docs", "passage"):
            rows = stdlib_docstring_rows(packages)
        else:
            raise SourceError(f"{spec}: unknown stdlib source {kind!r}; use stdlib:code or stdlib:docstrings")
        if not rows:
            raise SourceError(f"{spec}: no standard-library sources found under {stdlib_root()}")
        return rows
    if spec.startswith("hf:"):
        return table_rows(_hub(spec[3:]), spec, **columns)
    path = Path(spec).expanduser()
    if not path.exists():
        raise SourceError(f"input {spec!r} does not exist (give a file, a folder, stdlib:code, stdlib:docstrings or hf:NAME)")
    if path.is_dir() and ((path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists()):
        data = datasets.load_from_disk(str(path))
        if isinstance(data, datasets.DatasetDict):
            data = data["train"] if "train" in data else data[next(iter(data))]
        return table_rows(data, path.name, **columns)
    files = _files_under(path)
    tables = [f for f in files if f.suffix in TABLE_SUFFIXES]
    texts = [f for f in files if f.suffix in TEXT_SUFFIXES | CODE_SUFFIXES
             or (path.is_file() and f.suffix not in TABLE_SUFFIXES) or (not f.suffix and _is_text(f))]
    rows: list[dict] = []
    if tables:
        rows += table_rows(_table_files(tables, spec), path.stem, **columns)
    if texts:
        rows += _text_rows(texts, path if path.is_dir() else path.parent)
    if not rows:
        raise SourceError(f"input {spec!r}: no readable text, JSONL, JSON or Parquet files")
    return rows


def load_sources(spec: str, domain: str = "auto", **columns):
    """The sources of ``spec`` as a ``datasets.Dataset`` (columns id, text, prefix, domain)."""
    import datasets

    rows = load_source_rows(spec, **columns)
    if domain != "auto":
        if domain not in DOMAINS:
            raise SourceError(f"domain must be auto or one of {DOMAINS}, got {domain!r}")
        for r in rows:
            r["domain"] = domain
    seen: dict[str, int] = {}
    for r in rows:  # ids must be unique for resume; disambiguate repeats deterministically
        n = seen.get(r["id"], 0)
        seen[r["id"]] = n + 1
        if n:
            r["id"] = f"{r['id']}~{n}"
    return datasets.Dataset.from_list(rows) if rows else datasets.Dataset.from_dict({"id": [], "text": [], "prefix": [], "domain": []})


def fingerprint(rows) -> str:
    """A short digest of the source ids (records which corpus a synthesis came from)."""
    h = hashlib.sha256()
    for rid in rows:
        h.update(rid.encode() + b"\0")
    return h.hexdigest()[:16]
