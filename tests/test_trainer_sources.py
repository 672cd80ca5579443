"""Task sources (reasoning-gym by name with params, JSONL and Parquet files) and the built-in rewards."""
from __future__ import annotations

import json

import pytest

from grpo_zoo.answers import answers_match, extract_answer
from grpo_zoo.builtins.rewards import correctness
from grpo_zoo.tasks import file_tasks, reasoning_gym_tasks
from grpo_zoo.types import Task


def test_reasoning_gym_by_name_with_params():
    tasks = reasoning_gym_tasks("basic_arithmetic", 8, 3, {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    again = reasoning_gym_tasks("basic_arithmetic", 8, 3, {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1})
    assert [t.prompt for t in tasks] == [t.prompt for t in again]  # seeded
    assert len(tasks) == 8 and tasks[0].id == "basic_arithmetic/0"
    for t in tasks:
        assert t.score is not None and t.answer is not None
        assert abs(int(t.answer)) < 100  # two one-digit terms
        # the generator's own scorer is the reward: right, tagged, plain final line, wrong
        assert t.score(f"Let me think.\n<answer>{t.answer}</answer>") == 1.0
        assert t.score(f"So the result is\n{t.answer}") == 1.0
        assert t.score("<answer>no idea</answer>") == 0.0


def test_reasoning_gym_bad_params_name_the_keys():
    with pytest.raises(ValueError, match="task.name='basic_arithmetic'"):
        reasoning_gym_tasks("basic_arithmetic", 4, 0, {"no_such_param": 1})
    with pytest.raises(ValueError, match="no_such_task"):
        reasoning_gym_tasks("no_such_task", 4, 0, {})


def _rows():
    return [{"prompt": f"What is {i} + 1?", "answer": str(i + 1), "level": i % 2} for i in range(5)]


def test_jsonl_tasks(tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    tasks = file_tasks(str(path))
    assert [t.prompt for t in tasks] == [r["prompt"] for r in _rows()]
    assert tasks[2].answer == "3" and tasks[2].metadata == {"level": 0} and tasks[2].id == "tasks/2"


def test_parquet_tasks_with_other_column_names(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"question": r["prompt"], "solution": r["answer"]} for r in _rows()]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "tasks.parquet")
    tasks = file_tasks(str(tmp_path / "tasks.parquet"), "question", "solution")
    assert [t.answer for t in tasks] == ["1", "2", "3", "4", "5"]
    with pytest.raises(ValueError, match="lacks column"):
        file_tasks(str(tmp_path / "tasks.parquet"))


def test_file_source_trains(zoo_train_step, tmp_path):
    path = tmp_path / "tasks.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    res = zoo_train_step(config={"task": {"source": "file", "path": str(path)}}, steps=1)
    assert res.last["rollouts"] == 6 and "reward/correct/mean" in res.last


def test_reasoning_gym_source_in_config(zoo_context):
    ctx = zoo_context(config={"task": {"name": "chain_sum", "size": 5, "params": {"min_terms": 2, "max_terms": 3}}})
    tasks = ctx.hooks.task_source(ctx)
    assert len(tasks) == 5 and tasks[0].id.startswith("chain_sum/")


@pytest.mark.parametrize(
    "text, gold, ok",
    [
        ("The answer is <answer>42</answer>.", "42", True),
        ("<answer> 42.0 </answer>", "42", True),
        ("first 3, then 41, so 42", "42", True),  # the last number
        ("<answer>1,234</answer>", "1234", True),
        ("\\boxed{\\frac{1}{2}}", "0.5", True),
        ("<answer>\\frac{3}{4}</answer>", "3/4", True),  # math-verify
        ("<answer>x^2 + 2x</answer>", "2x + x^2", True),
        ("<answer>43</answer>", "42", False),
        ("no number here", "42", False),
        ("<answer>Paris</answer>", "paris", True),  # exact text, case-insensitive
    ],
)
def test_answer_match(text, gold, ok):
    assert answers_match(extract_answer(text), gold) is ok
    assert correctness(Task(id="t", prompt="q", answer=gold), text) == float(ok)


def test_format_and_length_rewards(zoo_context):
    import torch

    from grpo_zoo.builtins.rewards import zoo_reward
    from grpo_zoo.types import Rollouts

    ctx = zoo_context(config={"reward": {"builtin": ["correct", "format", "length"], "length_target": 4}})
    task = Task(id="t", prompt="q", answer="7")
    r = Rollouts(
        tasks=[task],
        group=torch.zeros(3, dtype=torch.long),
        prompt_text=["p"] * 3,
        prompt_ids=[[1]] * 3,
        completion_ids=[[5], [5, 5, 5, 5, 5, 5], [5, 5]],
        completion_text=["<answer>7</answer>", "7", "<answer>8</answer>"],
    )
    cols = zoo_reward(ctx=ctx, rollouts=r)
    assert cols["correct"].tolist() == [1.0, 1.0, 0.0]
    assert cols["format"].tolist() == [1.0, 0.0, 1.0]
    assert cols["length"].tolist() == [0.75, 0.0, 0.5]
