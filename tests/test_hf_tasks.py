"""task.source = "hf": save_to_disk folders (Dataset and DatasetDict), files through load_dataset,
chat-format prompts; every column carried on the Task."""
from __future__ import annotations

import json

import pytest

datasets = pytest.importorskip("datasets")

from grpo_zoo.config import TaskConfig  # noqa: E402
from grpo_zoo.context import make_context  # noqa: E402
from grpo_zoo.hf_tasks import hf_tasks  # noqa: E402
from grpo_zoo.plugins import PluginHookError  # noqa: E402
from grpo_zoo.testing import BASE_CONFIG, merge  # noqa: E402


def _source(task: dict):
    ctx = make_context(merge(BASE_CONFIG, {"task": task}))
    return ctx.hooks.task_source(ctx)


def test_dataset_dict_folder_with_split(tmp_path):
    dd = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"prompt": ["p0", "p1"], "answer": [1, 2], "solution": ["s0", "s1"]}),
        "test": datasets.Dataset.from_dict({"prompt": ["q0"], "answer": [9], "solution": ["t0"]}),
    })
    dd.save_to_disk(str(tmp_path / "dd"))
    test = _source({"source": "hf", "path": str(tmp_path / "dd"), "split": "test"})
    assert [(t.prompt, t.answer, t.metadata) for t in test] == [("q0", "9", {"answer": 9, "solution": "t0"})]
    train = _source({"source": "hf", "path": str(tmp_path / "dd")})  # default split: train
    assert [t.prompt for t in train] == ["p0", "p1"] and train[1].id == "dd/1"
    # source = "file" reads a DatasetDict folder too (it used to fail looking for dataset_info.json)
    assert [t.prompt for t in _source({"source": "file", "path": str(tmp_path / "dd"), "split": "test"})] == ["q0"]
    with pytest.raises(PluginHookError, match=r"task.split='dev'.*\['test', 'train'\]"):
        _source({"source": "hf", "path": str(tmp_path / "dd"), "split": "dev"})


def test_saved_dataset_folder(tmp_path):
    datasets.Dataset.from_dict({"prompt": ["a", "b"], "answer": ["1", "2"], "id": ["x", "y"]}).save_to_disk(str(tmp_path / "ds"))
    tasks = _source({"source": "hf", "path": str(tmp_path / "ds")})
    assert [(t.id, t.prompt, t.answer) for t in tasks] == [("x", "a", "1"), ("y", "b", "2")]
    assert tasks[0].metadata == {"answer": "1", "id": "x"}


def test_jsonl_file_and_folder_through_load_dataset(tmp_path):
    rows = [{"question": f"q{k}", "answer": str(k), "extra": {"k": k}} for k in range(3)]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for path in (tmp_path / "d" / "train.jsonl", tmp_path / "d"):  # a file; a folder (load_dataset infers json)
        tasks = _source({"source": "hf", "path": str(path), "prompt_column": "question"})
        assert [t.prompt for t in tasks] == ["q0", "q1", "q2"]
        assert tasks[2].metadata == {"answer": "2", "extra": {"k": 2}}
    # data_files picks files inside a folder, as load_dataset's data_files= does
    (tmp_path / "d" / "test.jsonl").write_text(json.dumps(rows[0]) + "\n")
    tasks = _source({"source": "hf", "path": str(tmp_path / "d"), "prompt_column": "question",
                     "data_files": {"train": "train.jsonl", "test": "test.jsonl"}, "split": "test"})
    assert [t.prompt for t in tasks] == ["q0"]


def test_chat_format_prompts(tmp_path):
    sys_turn = {"role": "system", "content": "Be brief."}
    rows = [
        {"prompt": [sys_turn, {"role": "user", "content": "2+2?"}], "answer": "4"},
        {"prompt": [{"role": "user", "content": "3+3?"}], "answer": "6"},
    ]
    f = tmp_path / "chat.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in rows))
    tasks = _source({"source": "hf", "path": str(f), "system_prompt": "ignored for chat prompts"})
    assert tasks[0].prompt == rows[0]["prompt"] and tasks[1].question() == "3+3?"
    ctx = make_context(merge(BASE_CONFIG, {"task": {"source": "hf", "path": str(f)}}))
    assert ctx.hooks.build_prompt(ctx, tasks[0]) == rows[0]["prompt"]  # used as it is
    # a `messages` column (conversation with the reference reply): the prompt stops before the reply
    convo = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}]
    g = tmp_path / "messages.jsonl"
    g.write_text(json.dumps(convo[0]) + "\n")
    (task,) = hf_tasks(TaskConfig(source="hf", path=str(g)))
    assert task.prompt == [{"role": "user", "content": "hi"}] and task.answer is None
    assert task.metadata["messages"] == convo[0]["messages"]  # still there for reward functions


def test_clear_errors(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_text(json.dumps({"text": "hi"}) + "\n")
    with pytest.raises(ValueError, match=r"no 'prompt' \(task.prompt_column\) nor 'messages' column; it has \['text'\]"):
        hf_tasks(TaskConfig(source="hf", path=str(f)))
    with pytest.raises(ValueError, match="needs task.path"):
        hf_tasks(TaskConfig(source="hf"))
    g = tmp_path / "bad.jsonl"
    g.write_text(json.dumps({"prompt": [{"role": "user"}]}) + "\n")
    with pytest.raises(ValueError, match="row 0: chat messages must be"):
        hf_tasks(TaskConfig(source="hf", path=str(g)))
    with pytest.raises(ValueError, match="could not load it offline"):
        hf_tasks(TaskConfig(source="hf", path=str(tmp_path / "missing-folder")))
