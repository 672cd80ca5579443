"""Built-in task sources: reasoning-gym generators and prompt/answer files read through ``datasets``."""
from __future__ import annotations

from pathlib import Path

from .answers import extract_answer
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
    tasks = []
    for i, row in enumerate(data):
        tid = str(row["id"]) if "id" in row and row["id"] is not None else f"{p.stem}/{i}"
        tasks.append(Task(id=tid, prompt=row[prompt_column], answer=str(row[answer_column]), metadata={c: row[c] for c in extra}))
    return tasks
