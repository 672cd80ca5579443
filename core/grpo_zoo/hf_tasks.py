"""``task.source = "hf"``: tasks from Hugging Face ``datasets``, offline.

- a folder written by ``save_to_disk``: a ``Dataset``, or a ``DatasetDict`` (``task.split`` picks
  the split);
- a ``.jsonl``/``.json``/``.parquet``/``.csv`` file: read with the matching ``datasets`` builder;
- anything else (a folder of data files, a dataset script folder, a hub name present in the local
  cache): ``datasets.load_dataset(path, name=config_name, split=split, data_files=data_files)``.
  Hub names load from the local cache only when ``HF_HUB_OFFLINE=1`` / ``HF_DATASETS_OFFLINE=1``
  are set (grpo-zoo never downloads; set them on machines without network).

Every column is carried on the task: the prompt column becomes ``Task.prompt`` (text, or a list
of chat messages), the answer column (when present) ``Task.answer``, and every column except the
prompt, answer included under its own name, goes into ``Task.metadata``, from where reward functions
get them as keyword arguments (TRL's convention). A dataset with no prompt column but a
``messages`` column (chat turns) uses those turns as the prompt, minus a final assistant turn (the
reference reply, still available as the ``messages`` column).
"""
from __future__ import annotations

from pathlib import Path

from .types import Task

_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


def is_dataset_dict_folder(path: str | None) -> bool:
    return bool(path) and (Path(path).expanduser() / "dataset_dict.json").is_file()


def load_rows(path: str, split: str = "train", config_name: str | None = None, data_files=None):
    """One split of a dataset as a ``datasets.Dataset``."""
    import datasets

    p = Path(path).expanduser()
    if p.is_dir() and (p / "dataset_dict.json").is_file():
        dd = datasets.load_from_disk(str(p))
        if split not in dd:
            raise ValueError(f"task.split={split!r}: {path!r} has splits {sorted(dd)}")
        return dd[split]
    if p.is_dir() and (p / "state.json").is_file() and (p / "dataset_info.json").is_file():
        return datasets.load_from_disk(str(p))  # a single saved Dataset: it is its own split
    if p.is_file():
        builder = _BUILDERS.get(p.suffix)
        if builder is None:
            raise ValueError(f"task.path={path!r}: a file must be one of {sorted(_BUILDERS)}")
        return datasets.load_dataset(builder, data_files={split: str(p)}, split=split)
    try:
        data = datasets.load_dataset(path, name=config_name, split=split, data_files=data_files)
    except (FileNotFoundError, ValueError, ConnectionError) as exc:
        raise ValueError(
            f"task.path={path!r} (split={split!r}, config_name={config_name!r}): datasets could not load it "
            f"offline: {type(exc).__name__}: {exc}"
        ) from exc
    if isinstance(data, datasets.DatasetDict):  # split=None is not possible here, but keep the error clear
        raise ValueError(f"task.split: {path!r} has splits {sorted(data)}; name one")
    return data


def _chat(value, where: str) -> list[dict]:
    if not all(isinstance(m, dict) and "role" in m and "content" in m for m in value):
        raise ValueError(f"{where}: chat messages must be {{'role': ..., 'content': ...}} objects")
    return [dict(m) for m in value]


def _prompt(row: dict, prompt_column: str, where: str):
    if prompt_column in row:
        value = row[prompt_column]
        if isinstance(value, str):
            return value
        if isinstance(value, list):
            return _chat(value, where)
        raise ValueError(f"{where}: column {prompt_column!r} holds {type(value).__name__}, expected text or chat messages")
    messages = _chat(row["messages"], where)
    if messages and messages[-1]["role"] == "assistant":
        messages = messages[:-1]
    if not messages:
        raise ValueError(f"{where}: 'messages' has no turn before the assistant's reply")
    return messages


def hf_tasks(cfg) -> list[Task]:
    """Tasks from ``task.path`` per the module docstring; ``cfg`` is the ``[task]`` section."""
    if not cfg.path:
        raise ValueError("task.source = 'hf' needs task.path (a dataset folder, file or cached hub name)")
    data = load_rows(cfg.path, cfg.split, cfg.config_name, cfg.data_files)
    columns = data.column_names
    if cfg.prompt_column not in columns and "messages" not in columns:
        raise ValueError(f"task.path={cfg.path!r} has no {cfg.prompt_column!r} (task.prompt_column) nor 'messages' column; it has {columns}")
    stem = Path(cfg.path.rstrip("/")).stem or "task"
    tasks = []
    for i, row in enumerate(data):
        where = f"task.path={cfg.path!r} row {i}"
        answer = row.get(cfg.answer_column)
        tid = row.get("id")
        tasks.append(
            Task(
                id=str(tid) if tid is not None else f"{stem}/{i}",
                prompt=_prompt(row, cfg.prompt_column, where),
                answer=None if answer is None else str(answer),
                metadata={c: row[c] for c in columns if c != cfg.prompt_column},
            )
        )
    return tasks
