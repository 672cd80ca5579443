"""TRL-convention reward functions ([reward] functions, grpo_zoo.train(reward_funcs=...)) and
sequence-classification reward models ([[reward.models]])."""
from __future__ import annotations

import asyncio
import json
import math

import pytest
import torch

import grpo_zoo
from grpo_zoo.config import ConfigError
from grpo_zoo.context import make_context
from grpo_zoo.plugins import PluginHookError
from grpo_zoo.testing import BASE_CONFIG, merge
from grpo_zoo.types import Rollouts, Task

CALLS: list[dict] = []  # what the functions below were called with


def solution_match(prompts, completions, completion_ids, solution, trainer_state, **kwargs):
    """A TRL reward function: 1 when the completion contains the dataset's `solution` column."""
    CALLS.append(dict(fn="solution_match", prompts=prompts, completions=completions, completion_ids=completion_ids,
                      solution=solution, step=trainer_state.global_step, kwargs=sorted(kwargs)))
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [1.0 if s in t else 0.0 for s, t in zip(solution, texts)]


def maybe_none(prompts, completions, **kwargs):
    """None for completions it cannot judge (TRL's convention): here, those without a digit."""
    texts = [c if isinstance(c, str) else c[0]["content"] for c in completions]
    return [None if not any(ch.isdigit() for ch in t) else 0.5 for t in texts]


_events: dict[str, asyncio.Event] = {}


async def async_len(prompts, completions, completion_ids, **kwargs):
    # waits for async_parity to start: passes only when the two run concurrently (asyncio.gather)
    _events.setdefault("len", asyncio.Event()).set()
    await asyncio.wait_for(_events.setdefault("parity", asyncio.Event()).wait(), 5)
    CALLS.append(dict(fn="async_len", completion_ids=completion_ids, kwargs=sorted(kwargs)))
    return [float(len(ids)) for ids in completion_ids]


async def async_parity(prompts, completions, completion_ids, **kwargs):
    _events.setdefault("parity", asyncio.Event()).set()
    await asyncio.wait_for(_events.setdefault("len", asyncio.Event()).wait(), 5)
    return [float(len(ids) % 2) for ids in completion_ids]


@pytest.fixture(autouse=True)
def _fresh():
    CALLS.clear()
    _events.clear()
    yield


def _rollouts(tasks, per_task=2):
    n = len(tasks) * per_task
    comps = ["the answer is 12", "no idea", "12", "it is 7", "seven", "7!"][:n]
    return Rollouts(
        tasks=tasks,
        group=torch.arange(len(tasks)).repeat_interleave(per_task),
        prompt_text=["rendered"] * n,
        prompt_ids=[[1, 2]] * n,
        completion_ids=[[5] * (k + 1) for k in range(n)],
        completion_text=comps,
    )


def _ctx(functions, builtin=()):
    return make_context(merge(BASE_CONFIG, {"reward": {"builtin": list(builtin), "functions": functions}}))


TASKS = [
    Task(id="a", prompt="What is 3*4?", answer="12", metadata={"solution": "12", "level": 1}),
    Task(id="b", prompt=[{"role": "user", "content": "What is 3+4?"}], answer="7", metadata={"solution": "7", "level": 2}),
]


def test_sync_function_gets_trl_arguments_and_dataset_columns():
    ctx = _ctx(["tests.test_trl_rewards:solution_match"])
    ctx.step = 3
    r = _rollouts(TASKS)
    cols = ctx.hooks.rewards(ctx, r)
    assert list(cols) == ["solution_match"]  # the column is named after the function
    assert cols["solution_match"].tolist() == [1.0, 0.0, 0.0, 1.0]
    (call,) = CALLS
    # prompts as the dataset holds them, one per rollout; chat prompt -> chat completions (TRL's format)
    assert call["prompts"] == ["What is 3*4?", "What is 3*4?", TASKS[1].prompt, TASKS[1].prompt]
    assert call["completions"][:2] == ["the answer is 12", "no idea"]
    assert call["completions"][2] == [{"role": "assistant", "content": "12"}]
    assert call["completion_ids"] == [[5], [5, 5], [5, 5, 5], [5, 5, 5, 5]]
    assert call["solution"] == ["12", "12", "7", "7"]  # a dataset column, repeated per rollout
    assert call["step"] == 3
    assert call["kwargs"] == ["answer", "level", "log_extra", "log_metric"]


def test_async_functions_run_concurrently_next_to_sync_ones():
    ctx = _ctx(["tests.test_trl_rewards:async_len", "tests.test_trl_rewards:solution_match",
                "tests.test_trl_rewards:async_parity"], builtin=["correct"])
    cols = ctx.hooks.rewards(ctx, _rollouts(TASKS))
    assert list(cols) == ["correct", "async_len", "solution_match", "async_parity"]
    assert cols["async_len"].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert cols["async_parity"].tolist() == [1.0, 0.0, 1.0, 0.0]
    assert {c["fn"] for c in CALLS} == {"async_len", "solution_match"}


def test_none_becomes_nan_in_its_column_only():
    ctx = _ctx(["tests.test_trl_rewards:maybe_none", "tests.test_trl_rewards:solution_match"])
    cols = ctx.hooks.rewards(ctx, _rollouts(TASKS))
    got = cols["maybe_none"].tolist()
    assert [math.isnan(v) for v in got] == [False, True, False, False]
    assert got[0] == 0.5
    assert not torch.isnan(cols["solution_match"]).any()


def test_function_from_a_file_path(tmp_path):
    f = tmp_path / "my_rewards.py"
    f.write_text("def short(completions, log_metric, log_extra, **kw):\n"
                 "    log_metric('short/calls', 1.0)\n"
                 "    log_extra('short/text', [c.upper() for c in completions])\n"
                 "    return [-float(len(c)) for c in completions]\n")
    ctx = _ctx([f"{f}:short"])
    r = _rollouts(TASKS[:1])
    cols = ctx.hooks.rewards(ctx, r)
    assert cols["short"].tolist() == [-16.0, -7.0]
    assert r.metrics == {"short/calls": 1.0}  # log_metric -> the step's metrics
    assert r.extras["reward_log_extra"] == {"short/text": ["THE ANSWER IS 12", "NO IDEA"]}


def test_bad_functions_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="package.module:function"):
        _ctx(["no_colon_here"])
    ctx = _ctx(["tests.test_trl_rewards:does_not_exist"])
    with pytest.raises(PluginHookError, match="does_not_exist.*cannot be loaded"):
        ctx.hooks.rewards(ctx, _rollouts(TASKS))
    f = tmp_path / "bad.py"
    f.write_text("def wrong_len(completions, **kw):\n    return [1.0]\n\ndef text(completions, **kw):\n    return ['x'] * len(completions)\n")
    for name, msg in [("wrong_len", "returned 1 rewards for 4 completions"), ("text", "returned 'x' at position 0")]:
        ctx = _ctx([f"{f}:{name}"])
        with pytest.raises(PluginHookError, match=msg):
            ctx.hooks.rewards(ctx, _rollouts(TASKS))
    ctx = _ctx(["tests.test_trl_rewards:solution_match", "tests.test_trl_rewards:solution_match"])
    with pytest.raises(PluginHookError, match="both named 'solution_match'"):
        ctx.hooks.rewards(ctx, _rollouts(TASKS))


def test_python_api_callables_and_manifest(tmp_path):
    """grpo_zoo.train with reward_funcs: real steps on the tiny model; the dataset column reaches the function."""
    data = tmp_path / "data.jsonl"
    rows = [{"prompt": f"Say {k}.", "solution": str(k), "answer": str(k)} for k in range(4)]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    seen = []

    def said_it(prompts, completions, solution, trainer_state, **kwargs):
        seen.append((trainer_state.global_step, list(prompts), list(solution)))
        return [float(len(c) % 3) for c in completions]  # mixed values: non-zero advantages

    async def async_len_local(completion_ids, **kwargs):
        return [float(len(ids)) for ids in completion_ids]

    config = merge(BASE_CONFIG, {
        "task": {"source": "hf", "path": str(data)},
        "reward": {"builtin": [], "functions": ["tests.test_trl_rewards:solution_match"]},
        "train": {"steps": 2},
    })
    metrics, run_dir = grpo_zoo.train(config, reward_funcs=[said_it, async_len_local], out=str(tmp_path / "run"), progress=False)
    assert [s[0] for s in seen] == [0, 1]
    for _, prompts, solution in seen:
        assert [p.split()[1].rstrip(".") for p in prompts] == solution  # each rollout got its own task's column
    assert [c["step"] for c in CALLS] == [0, 1] and CALLS[0]["solution"] == seen[0][2]
    for col in ("said_it", "async_len_local", "solution_match"):
        assert f"reward/{col}/mean" in metrics
    manifest = json.loads((run_dir / "manifest.json").read_text())
    entries = {e["column"]: e for e in manifest["reward_functions"]}
    assert entries["solution_match"]["spec"] == "tests.test_trl_rewards:solution_match"
    assert entries["solution_match"]["function"] == "tests.test_trl_rewards:solution_match"
    assert entries["solution_match"]["source"] == "reward.functions"
    assert entries["said_it"]["function"].endswith("test_python_api_callables_and_manifest.<locals>.said_it")
    assert entries["said_it"]["file"].endswith("test_trl_rewards.py")
    assert "reward_funcs" in [p["name"] for p in manifest["plugins"]]


def test_example_trl_reward_config_runs_unchanged_on_the_tiny_model(tmp_path, monkeypatch):
    """examples/trl_reward.toml with its reward file, 1 step on the tiny model (the real model: see the docs)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the config names its files relative to the repository root
    over = ["model=tiny-random", "train.steps=1", "sampling.group_size=2", "sampling.max_new_tokens=4", "train.prompts_per_step=2"]
    metrics, run_dir = grpo_zoo.train(str(root / "examples" / "trl_reward.toml"), out=str(tmp_path / "run"), overrides=over, progress=False)
    assert {"reward/format_reward/mean", "reward/accuracy_reward/mean"} <= set(metrics)
    assert math.isfinite(metrics["loss"])
    # the functions answer on TRL-shaped arguments (chat completions, a dataset column per completion)
    import importlib.util

    spec = importlib.util.spec_from_file_location("trl_rewards_example", root / "examples" / "trl_rewards.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    row = json.loads((root / "examples" / "data" / "products.jsonl").read_text().splitlines()[0])
    comps = [[{"role": "assistant", "content": row["solution"]}], [{"role": "assistant", "content": "I think 5"}]]
    assert mod.accuracy_reward(comps, solution=[row["solution"]] * 2) == [1.0, 0.0]
    assert mod.format_reward(comps) == [1.0, 0.0]


@pytest.mark.parametrize("chat", [False, True])
def test_arguments_have_the_shape_trl_gives(tmp_path, chat):
    """A real (tiny) trl.GRPOTrainer calls a recording function; grpo-zoo calls it for the same dataset:
    the same keyword names, the same prompt and completion formats, the column values per completion."""
    trl = pytest.importorskip("trl")
    from datasets import Dataset

    from grpo_zoo.hf_tasks import hf_tasks
    from grpo_zoo.config import TaskConfig
    from grpo_zoo.trainer.models import load_model_and_tokenizer

    prompts = [[{"role": "user", "content": f"q{k}"}] if chat else f"q{k}" for k in range(2)]
    rows = {"prompt": prompts, "solution": ["s0", "s1"], "level": [1, 2]}
    seen = {}

    def record(prompts, completions, completion_ids, **kwargs):
        seen.setdefault("calls", []).append(dict(prompts=prompts, completions=completions, completion_ids=completion_ids, **kwargs))
        return [0.0] * len(completions)

    model, tok = load_model_and_tokenizer("tiny-random")
    args = trl.GRPOConfig(output_dir=str(tmp_path / "trl"), num_generations=2, per_device_train_batch_size=4,
                          max_completion_length=3, report_to=[], use_cpu=True, bf16=False, save_strategy="no")
    trainer = trl.GRPOTrainer(model=model, reward_funcs=[record], args=args,
                              train_dataset=Dataset.from_dict(rows), processing_class=tok)
    inputs = [{"prompt": prompts[p], "solution": rows["solution"][p], "level": rows["level"][p]} for p in range(2) for _ in range(2)]
    trainer._generate_and_score_completions(inputs)
    theirs = seen["calls"].pop()

    f = tmp_path / "d.jsonl"
    f.write_text("".join(json.dumps({k: rows[k][i] for k in rows}) + "\n" for i in range(2)))
    tasks = hf_tasks(TaskConfig(source="hf", path=str(f)))
    ctx = make_context(merge(BASE_CONFIG, {"reward": {"builtin": []}}))
    r = Rollouts(tasks=tasks, group=torch.tensor([0, 0, 1, 1]), prompt_text=[""] * 4, prompt_ids=[[1]] * 4,
                 completion_ids=[list(map(int, c)) for c in theirs["completion_ids"]],
                 completion_text=[c if isinstance(c, str) else c[0]["content"] for c in theirs["completions"]])
    from grpo_zoo.reward_functions import score_functions

    score_functions(ctx, r, [record])
    ours = seen["calls"].pop()
    assert sorted(ours) == sorted(theirs)
    for key in ("prompts", "completions", "completion_ids", "solution", "level"):
        assert ours[key] == theirs[key], key
    assert type(ours["trainer_state"]) is type(theirs["trainer_state"])


@pytest.mark.parametrize("policy", ["error", "drop_group"])
def test_none_follows_reward_on_nonfinite(tmp_path, policy):
    """TRL's convention: a function may return None for a rollout it cannot score. With
    reward.on_nonfinite = "drop_group" its group leaves the step and training goes on with finite
    weights; with the default ("error") the run stops naming the column."""
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"Say {k}.", "answer": str(k)}) + "\n" for k in range(4)))

    def picky(prompts, completions, **kwargs):  # cannot score the prompt "Say 0."
        return [None if p == "Say 0." else float(len(c) % 3) for p, c in zip(prompts, completions)]

    config = merge(BASE_CONFIG, {"task": {"source": "hf", "path": str(data), "shuffle": False},
                                 "reward": {"builtin": [], "on_nonfinite": policy}, "train": {"steps": 1}})
    if policy == "error":
        with pytest.raises(Exception, match="picky"):
            grpo_zoo.train(config, reward_funcs=[picky], out=str(tmp_path / "run"), progress=False)
        return
    metrics, run_dir = grpo_zoo.train(config, reward_funcs=[picky], out=str(tmp_path / "run"), progress=False)
    assert metrics["nonfinite/dropped_groups"] >= 1
    assert math.isfinite(metrics["reward/picky/mean"])
