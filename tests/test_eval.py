"""Held-out evaluation: the pass@k estimator, the eval set and its overlap check, eval rows in a run
(kill -9 and resume), and `grpo-zoo eval` on a checkpoint and on a base model."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from grpo_zoo import cli, hookimpl
from grpo_zoo.config import ConfigError
from grpo_zoo.evaluation import EVAL_FILE, eval_tasks, evaluate, prompt_key
from grpo_zoo.passk import pass_at_k, pass_at_k_one
from grpo_zoo.trainer import checkpoint
from grpo_zoo.trainer.rundir import read_jsonl
from grpo_zoo.types import Rollouts


def exact_pass_at_k(n, c, k):
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


# ------------------------------------------------------------------------------------------------ the estimator
@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_pass_at_k_matches_the_binomial_formula(k):
    n = [5, 5, 8, 10, 6, 7]
    c = [0, 2, 8, 1, 5, 3]
    expected = sum(exact_pass_at_k(ni, ci, k) for ni, ci in zip(n, c)) / len(n)
    assert pass_at_k(n, c, k) == pytest.approx(expected, rel=1e-12)


def test_pass_at_1_is_the_mean_fraction_correct_and_edges():
    assert pass_at_k([4, 4, 2], [1, 4, 0], 1) == pytest.approx((0.25 + 1 + 0) / 3)
    assert pass_at_k_one(200, 3, 100) == pytest.approx(exact_pass_at_k(200, 3, 100), rel=1e-9)  # big n: no overflow
    assert pass_at_k_one(4, 2, 3) == 1.0  # every draw of 3 from 2 wrong + 2 right holds a right one
    with pytest.raises(ValueError, match="k = 5"):
        pass_at_k([4], [1], 5)
    with pytest.raises(ValueError, match="correct count 5"):
        pass_at_k([4], [5], 1)


# -------------------------------------------------------------------------------------------------- the config
@pytest.mark.parametrize(
    "section, message",
    [
        ({"every": 5}, "eval.every is set but eval.size = 0"),
        ({"size": 4, "samples": 4}, "greedy completions are identical"),
        ({"size": 4, "samples": 2, "temperature": 1.0, "k": [3]}, "eval.k = 3"),
        ({"size": 4, "source": "file"}, "needs eval.path"),
    ],
)
def test_eval_config_errors_name_the_key(zoo_context, section, message):
    with pytest.raises(ConfigError, match=message):
        zoo_context(config={"eval": section})


# ------------------------------------------------------------------------------------------------ the held-out set
def test_generated_eval_set_is_disjoint_from_training(zoo_context):
    # one-digit products: about a hundred distinct prompts, so another seed alone would repeat training prompts
    task = {"name": "products", "params": {"min_terms": 2, "max_terms": 2, "min_digits": 1, "max_digits": 1}, "size": 40}
    ctx = zoo_context(config={"task": task, "eval": {"size": 20}})
    train = ctx.hooks.task_source(ctx)
    held = eval_tasks(ctx, train)
    assert len(held) == 20 and len({prompt_key(t) for t in held}) == 20
    assert not {prompt_key(t) for t in held} & {prompt_key(t) for t in train}
    assert not {t.id for t in held} & {t.id for t in train}
    # the task space cannot give 200 held-out prompts: a clear error instead of a silent overlap
    ctx = zoo_context(config={"task": task, "eval": {"size": 200}})
    with pytest.raises(ConfigError, match="eval.size = 200: only"):
        eval_tasks(ctx, ctx.hooks.task_source(ctx))


def test_file_eval_set_overlapping_training_fails_naming_it(zoo_context, tmp_path):
    train = tmp_path / "train.jsonl"
    train.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"What is {i} + {i}?", "answer": str(2 * i)}) + "\n" for i in range(6)))
    held = tmp_path / "held.jsonl"
    rows = [{"id": "q1", "prompt": "What is 100 + 1?", "answer": "101"},  # same id as a training task
            {"id": "h2", "prompt": "What  is 3 + 3?", "answer": "6"},  # same prompt (up to whitespace)
            {"id": "h3", "prompt": "What is 7 * 7?", "answer": "49"}]
    held.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ctx = zoo_context(config={"task": {"source": "file", "path": str(train)},
                              "eval": {"size": 3, "source": "file", "path": str(held)}})
    with pytest.raises(ConfigError, match=r"overlaps the training set: 1 by id \('q1'\) and 1 by prompt text \('h2'"):
        eval_tasks(ctx, ctx.hooks.task_source(ctx))
    held.write_text(json.dumps(rows[2]) + "\n")
    assert [t.id for t in eval_tasks(ctx, ctx.hooks.task_source(ctx))] == ["h3"]


# ------------------------------------------------------------------------------- metrics from canned completions
class CannedBackend:
    """A backend whose completions are known: for task t, the first ``right[t]`` answers are correct."""

    def __init__(self, right):
        self.right = right
        self.seen = []

    @hookimpl
    def zoo_generate(self, ctx, request):
        self.seen.append((dict(request.extras), ctx.config.sampling.model_copy()))
        group, texts = [], []
        for g, (task, n) in enumerate(zip(request.tasks, request.budgets)):
            for j in range(n):
                group.append(g)
                texts.append(f"<answer>{task.answer}</answer>" if j < self.right[task.id] else "<answer>-1</answer>")
        ids = [[1] * (len(t) % 5 + 1) for t in texts]
        return Rollouts(tasks=list(request.tasks), group=torch.tensor(group), prompt_text=[""] * len(texts),
                        prompt_ids=[[0]] * len(texts), completion_ids=ids, completion_text=texts)


def test_evaluate_reports_pass_at_k_rewards_and_lengths(zoo_context, tmp_path):
    data = tmp_path / "held.jsonl"
    data.write_text("".join(json.dumps({"id": f"h{i}", "prompt": f"What is {i} * 13?", "answer": str(13 * i)}) + "\n" for i in range(4)))
    right = {"h0": 0, "h1": 1, "h2": 4, "h3": 2}
    backend = CannedBackend(right)
    ctx = zoo_context(
        plugins={"canned": backend},
        config={"reward": {"builtin": ["correct", "format"]}, "sampling": {"temperature": 0.7, "max_new_tokens": 8},
                "eval": {"size": 4, "source": "file", "path": str(data), "samples": 4, "temperature": 0.5,
                         "k": [2, 4], "max_new_tokens": 30}},
    )
    m = evaluate(ctx, eval_tasks(ctx, ctx.hooks.task_source(ctx)))
    n, c = [4] * 4, [right[f"h{i}"] for i in range(4)]
    assert m["eval/pass@1"] == pytest.approx(sum(x / 4 for x in c) / 4)
    assert m["eval/pass@2"] == pytest.approx(sum(exact_pass_at_k(4, x, 2) for x in c) / 4)
    assert m["eval/pass@4"] == pytest.approx(3 / 4)
    assert m["eval/reward/correct"] == pytest.approx(sum(c) / 16)
    assert m["eval/reward/format"] == 1.0 and m["eval/reward/mean"] == pytest.approx(1 + sum(c) / 16)
    texts = [f"<answer>{13 * i}</answer>" if j < right[f"h{i}"] else "<answer>-1</answer>" for i in range(4) for j in range(4)]
    assert m["eval/completion_len"] == pytest.approx(sum(len(t) % 5 + 1 for t in texts) / 16)
    assert m["eval/tasks"] == 4
    extras, sampling = backend.seen[-1]
    assert extras["eval"] is True and (sampling.temperature, sampling.max_new_tokens) == (0.5, 30)
    assert ctx.config.sampling.temperature == 0.7  # the run's own settings are back
    assert "generated" not in ctx.info  # evaluation does not count as spent rollouts


def test_greedy_eval_is_top_k_1(zoo_context, tmp_path):
    data = tmp_path / "held.jsonl"
    data.write_text(json.dumps({"id": "h0", "prompt": "2 + 2?", "answer": "4"}) + "\n")
    backend = CannedBackend({"h0": 1})
    ctx = zoo_context(plugins={"canned": backend}, config={"eval": {"size": 1, "source": "file", "path": str(data)}})
    m = evaluate(ctx, eval_tasks(ctx, ctx.hooks.task_source(ctx)))
    assert m["eval/pass@1"] == 1.0 and "eval/pass@4" not in m
    assert backend.seen[-1][1].top_k == 1


# ----------------------------------------------------------------------------------------------- during training
EVAL_RUN = {"eval": {"size": 3, "every": 1, "max_new_tokens": 4},
            "task": {"size": 8}, "train": {"checkpoint_every": 2, "lr": 1e-2}}


def test_training_logs_eval_before_during_and_after(zoo_train_step):
    res = zoo_train_step(config=EVAL_RUN, steps=3)
    rows = read_jsonl(res.run_dir / EVAL_FILE)
    assert [r["step"] for r in rows] == [0, 1, 2, 3]
    assert rows[0]["rollouts"] == 0 and rows[-1]["rollouts"] == sum(m["rollouts"] for m in res.metrics) == 18
    assert all(m["generated"] == m["rollouts"] for m in res.metrics)  # plain GRPO: every completion is trained on
    assert all(0 <= r["eval/pass@1"] <= 1 and r["eval/tasks"] == 3 for r in rows)
    assert (res.run_dir / "plots" / "eval.png").stat().st_size > 0


def test_eval_only_before_and_after_by_default(zoo_train_step):
    res = zoo_train_step(config={"eval": {"size": 2, "max_new_tokens": 3}, "task": {"size": 8}}, steps=3)
    assert [r["step"] for r in read_jsonl(res.run_dir / EVAL_FILE)] == [0, 3]


KILLER = textwrap.dedent("""
    import os, signal, sys
    from grpo_zoo import hookimpl
    from grpo_zoo.context import make_context
    from grpo_zoo.testing import BASE_CONFIG, KitReward, merge
    from grpo_zoo.trainer.loop import Trainer

    class KillAt:
        @hookimpl
        def zoo_observe(self, ctx, rollouts):
            if ctx.step == 3:  # step 2 and its eval row are written, the last checkpoint is after step 1
                os.kill(os.getpid(), signal.SIGKILL)

    raw = merge(BASE_CONFIG, {config})
    raw["train"]["steps"] = 4
    raw["plugins"] = ["kit_reward", "kill"]
    ctx = make_context(raw, extra_plugins={{"kit_reward": KitReward(), "kill": KillAt()}})
    Trainer(ctx, sys.argv[1], progress=False).run()
""")


def test_eval_rows_survive_kill_9_and_resume_without_duplicates(zoo_train_step, tmp_path):
    full = zoo_train_step(config=EVAL_RUN, steps=4, run_dir=tmp_path / "full")
    out = tmp_path / "killed"
    script = tmp_path / "killer.py"
    script.write_text(KILLER.format(config=repr(EVAL_RUN)))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, str(script), str(out)], env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert [r["step"] for r in read_jsonl(out / EVAL_FILE)] == [0, 1, 2, 3]  # row 3 is past the checkpoint
    assert checkpoint.latest(out).name == "step-000001"
    zoo_train_step(config=EVAL_RUN, steps=4, run_dir=out, resume=True)
    rows = read_jsonl(out / EVAL_FILE)
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    want = read_jsonl(full.run_dir / EVAL_FILE)
    for a, b in zip(rows, want):  # the replayed evaluations equal those of the uninterrupted run
        for k in ("eval/pass@1", "eval/reward/mean", "eval/completion_len", "rollouts", "generated", "tokens"):
            assert a[k] == pytest.approx(b[k]), (a["step"], k)


# ------------------------------------------------------------------------------------------------ grpo-zoo eval
def test_cli_eval_on_a_run_a_checkpoint_and_a_base_model(zoo_train_step, tmp_path, capsys):
    res = zoo_train_step(config=EVAL_RUN, steps=2, kit_reward=False)  # the CLI loads installed plugins only
    last = read_jsonl(res.run_dir / EVAL_FILE)[-1]
    # the run folder's latest checkpoint, with the run's own config: the trainer's final evaluation again
    assert cli.main(["eval", str(res.run_dir), "--json"]) == 0
    got = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert got["model"].endswith("step-000001/model")
    for k in ("eval/pass@1", "eval/reward/mean", "eval/completion_len"):
        assert got[k] == pytest.approx(last[k]), k
    # a checkpoint folder
    ckpt = checkpoint.latest(res.run_dir)
    assert cli.main(["eval", str(ckpt), "--json", "--set", "eval.size=2"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["eval/tasks"] == 2
    # a base model by name, with a config file
    cfg = tmp_path / "eval.toml"
    cfg.write_text('[task]\nsize = 8\n[sampling]\nmax_new_tokens = 4\n[eval]\nsize = 3\n')
    assert cli.main(["eval", "tiny-random", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert "eval/pass@1" in out and "tiny-random" in out
    # evaluation off: a one-line error naming the key
    assert cli.main(["eval", "tiny-random"]) == 2
    assert "eval.size = 0" in capsys.readouterr().err


def test_evaluation_leaves_training_unchanged(zoo_train_step, tmp_path):
    """The same run with and without [eval]: identical training metrics (eval has its own random stream)."""
    plain = zoo_train_step(config={k: v for k, v in EVAL_RUN.items() if k != "eval"}, steps=3, run_dir=tmp_path / "a")
    evald = zoo_train_step(config=EVAL_RUN, steps=3, run_dir=tmp_path / "b")
    assert not (plain.run_dir / EVAL_FILE).exists()
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("time/")} for r in rows]  # noqa: E731
    assert strip(plain.metrics) == strip(evald.metrics)
    from grpo_zoo.evaluation import summary_line

    first, last = read_jsonl(evald.run_dir / EVAL_FILE)[::3]
    assert summary_line(evald.run_dir) == (f"eval/pass@1: {first['eval/pass@1']:.4f} at step 0 -> "
                                           f"{last['eval/pass@1']:.4f} at step 3 (3 held-out tasks)")


def test_plot_command_redraws_the_eval_plot(zoo_train_step, capsys):
    res = zoo_train_step(config={"eval": {"size": 2, "max_new_tokens": 3}, "task": {"size": 8}}, steps=1)
    (res.run_dir / "plots" / "eval.png").unlink()
    assert cli.main(["plot", str(res.run_dir)]) == 0
    assert (res.run_dir / "plots" / "eval.png").stat().st_size > 0 and "eval.png" in capsys.readouterr().out


def test_eval_from_a_dataset_split_and_task_source_errors(zoo_context, tmp_path):
    import datasets

    rows = lambda lo, hi: {"id": [f"r{i}" for i in range(lo, hi)], "prompt": [f"What is {i} - 1?" for i in range(lo, hi)],  # noqa: E731
                           "answer": [str(i - 1) for i in range(lo, hi)]}
    folder = tmp_path / "dd"
    datasets.DatasetDict({"train": datasets.Dataset.from_dict(rows(0, 6)),
                          "test": datasets.Dataset.from_dict(rows(6, 9))}).save_to_disk(str(folder))
    train_file = tmp_path / "train.jsonl"
    train_file.write_text("".join(json.dumps({"id": i, "prompt": p, "answer": a}) + "\n" for i, p, a in zip(*rows(0, 6).values())))
    task = {"source": "file", "path": str(train_file)}
    ctx = zoo_context(config={"task": task, "eval": {"size": 8, "source": "file", "path": str(folder)}})
    assert [t.id for t in eval_tasks(ctx, ctx.hooks.task_source(ctx))] == ["r6", "r7", "r8"]  # the "test" split
    ctx = zoo_context(config={"task": task, "eval": {"size": 8, "source": "file", "path": str(folder), "split": "dev"}})
    with pytest.raises(ConfigError, match=r"has splits \['test', 'train'\], not 'dev'"):
        eval_tasks(ctx, ctx.hooks.task_source(ctx))
    ctx = zoo_context(config={"task": task, "eval": {"size": 8}})  # source = "task" needs a generator
    with pytest.raises(ConfigError, match="eval.source = 'task' needs task.source = 'reasoning_gym'"):
        eval_tasks(ctx, ctx.hooks.task_source(ctx))
