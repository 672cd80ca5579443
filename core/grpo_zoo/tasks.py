"""Built-in task sources: reasoning-gym generators and prompt/answer files read through ``datasets``."""
from __future__ import annotations

from pathlib import Path

from .answers import extract_answer
from .errors import TaskFileError
from .types import Task


def _final_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def reasoning_gym_tasks(name: str, size: int, seed: int, params: dict) -> list[Task]:
    import reasoning_gym

    try:
        data = reasoning_gym.create_dataset(name, size=size, seed=seed, **params)
    except (KeyError, ValueError, TypeError) as exc:
        raise ValueError(f"task.name={name!r} / task.params={params!r}: reasoning-gym refused: {exc}") from exc

    def scorer(entry):
        def score(text: str) -> float:
            answer = extract_answer(text) or _final_line(text)
            return float(data.score_answer(answer, entry))

        return score

    return [
        Task(id=f"{name}/{i}", prompt=e["question"], answer=str(e["answer"]), metadata=dict(e.get("metadata", {})), score=scorer(e))
        for i, e in enumerate(data)
    ]


def _data_files(path: Path) -> tuple[str, list[str]]:
    files = sorted(p for p in path.rglob("*") if p.suffix in {".jsonl", ".json", ".parquet"}) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"task.path={str(path)!r}: no .jsonl, .json or .parquet files found")
    kinds = {("parquet" if f.suffix == ".parquet" else "json") for f in files}
    if len(kinds) > 1:
        raise ValueError(f"task.path={str(path)!r} mixes Parquet and JSON files")
    return kinds.pop(), [str(f) for f in files]


def file_tasks(path: str, prompt_column: str = "prompt", answer_column: str = "answer", split: str | None = None) -> list[Task]:
    """``split`` picks one split of a folder written by ``DatasetDict.save_to_disk``."""
    import datasets

    p = Path(path).expanduser()
    if not p.exists():
        raise ValueError(f"task.path={path!r} does not exist")
    if p.is_dir() and (p / "dataset_info.json").exists():
        data = datasets.load_from_disk(str(p))
    elif p.is_dir() and (p / "dataset_dict.json").exists():
        splits = datasets.load_from_disk(str(p))
        if split not in splits:
            raise ValueError(f"{path!r} has splits {sorted(splits)}, not {split!r}")
        data = splits[split]
    else:
        kind, files = _data_files(p)
        data = datasets.load_dataset(kind, data_files=files, split="train")
    missing = [c for c in (prompt_column, answer_column) if c not in data.column_names]
    if missing:
        raise ValueError(f"task.path={path!r} lacks column(s) {missing}; it has {data.column_names}")
    extra = [c for c in data.column_names if c not in (prompt_column, answer_column, "id")]
    if len(data) == 0:
        raise TaskFileError(f"task.path={path!r} holds no rows")
    tasks = []
    for i, row in enumerate(data):
        problem = check_row(row, prompt_column, answer_column)
        if problem:  # Parquet and saved datasets: JSON files were checked line by line before the model loaded
            raise TaskFileError(f"task.path={path!r}, row {i + 1}: {problem}")
        tid = str(row["id"]) if "id" in row and row["id"] is not None else f"{p.stem}/{i}"
        tasks.append(Task(id=tid, prompt=row[prompt_column], answer=str(row[answer_column]), metadata={c: row[c] for c in extra}))
    return tasks


def check_row(row, prompt_column: str, answer_column: str) -> str | None:
    """What is wrong with one task row, or None. A missing or null answer would silently become the
    reference answer "None"; a null or empty prompt would fail much later in a prompt hook."""
    if not isinstance(row, dict):
        return f"expected a JSON object, got {type(row).__name__}"
    prompt = row.get(prompt_column)
    if prompt_column not in row:
        return f"no {prompt_column!r} field (task.prompt_column)"
    if prompt is None or (isinstance(prompt, (str, list)) and not prompt) or (isinstance(prompt, str) and not prompt.strip()):
        return f"{prompt_column!r} is {'null' if prompt is None else 'empty'}"
    if answer_column not in row:
        return f"no {answer_column!r} field (task.answer_column)"
    if row[answer_column] is None:
        return f"{answer_column!r} is null"
    return None


def _check_json_file(path: Path, prompt_column: str, answer_column: str) -> None:
    """Line-by-line check of a JSON Lines file (or a JSON array), errors naming file, line and column."""
    import json

    text = path.read_text(encoding="utf-8", errors="replace")
    if not text.strip():
        raise TaskFileError(f"task file {path} is empty")
    stripped = text.lstrip()
    if path.suffix == ".json" and stripped.startswith(("[", "{")):
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as exc:
            if stripped.startswith("["):
                raise TaskFileError(f"{path}, line {exc.lineno}, column {exc.colno}: malformed JSON ({exc.msg})") from None
            doc = None  # maybe JSON Lines in a .json file: checked below
        if isinstance(doc, list):
            if not doc:
                raise TaskFileError(f"task file {path} holds an empty list")
            for i, row in enumerate(doc):
                problem = check_row(row, prompt_column, answer_column)
                if problem:
                    raise TaskFileError(f"{path}, item {i + 1}: {problem}")
            return
        if isinstance(doc, dict):
            return  # a columnar JSON object: datasets reads it; rows are checked after loading
    rows = 0
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TaskFileError(f"{path}, line {n}, column {exc.colno}: malformed JSON ({exc.msg})") from None
        problem = check_row(row, prompt_column, answer_column)
        if problem:
            raise TaskFileError(f"{path}, line {n}: {problem}")
        rows += 1
    if not rows:
        raise TaskFileError(f"task file {path} has no rows")


def validate_task_files(config) -> None:
    """Check ``task.source = "file"`` inputs without loading a model (JSON/JSONL line by line)."""
    task = config.task
    if task.source != "file" or not task.path:
        return
    p = Path(task.path).expanduser()
    if not p.exists():
        raise TaskFileError(f"task.path={task.path!r} does not exist")
    if p.is_dir() and (p / "dataset_info.json").exists():
        return  # a saved datasets folder: rows are checked when it loads
    try:
        _, files = _data_files(p)
    except ValueError as exc:
        raise TaskFileError(str(exc)) from None
    for f in map(Path, files):
        if f.suffix in (".jsonl", ".json"):
            _check_json_file(f, task.prompt_column, task.answer_column)
