"""The plugin: contract kit, training on a synthesized data set, online synthesis, online filter, state, config errors."""
import json

import pytest

from grpo_zoo.config import ConfigError
from grpo_zoo.plugins import PluginError
from grpo_zoo.testing import roundtrip_state
from grpo_zoo.types import Rollouts
from grpo_zoo_golden_goose.config import GoldenGooseConfig
from grpo_zoo_golden_goose.plugin import GoldenGoose

SMALL = {"golden_goose": {}, "sampling": {"group_size": 3, "max_new_tokens": 6}}


def test_contract(zoo_check_plugin):
    hooks = zoo_check_plugin(GoldenGoose)
    assert {"zoo_task_source", "zoo_reward", "zoo_observe", "zoo_register_commands", "zoo_state_dict"} <= set(hooks)
    assert GoldenGooseConfig().options is None and GoldenGooseConfig().filter_k == 16  # None: stored or 9


def test_train_step_on_synthesized_dataset(zoo_train_step, code_set):
    out, summary = code_set
    cfg = {"golden_goose": {"dataset": str(out)}, "reward": {"builtin": []}}
    result = zoo_train_step(plugins={"golden_goose": GoldenGoose}, config=cfg, steps=2)
    m = result.last
    assert m["step"] == 1 and "reward/goose/correct/mean" in m
    for key in ("effective_frac", "solved_all_frac", "solved_none_frac", "accuracy", "letter_rate", "pool_size"):
        assert f"golden_goose/{key}" in m
    assert m["golden_goose/pool_size"] == summary["kept"]
    samples = [json.loads(x) for x in (result.run_dir / "samples.jsonl").read_text().splitlines()]
    assert samples and "Options:" in json.dumps(samples[0])
    # the tasks seen in training are the tasks.jsonl rows (same letters, same prompts)
    rows = {r["id"]: r for r in map(json.loads, (out / "tasks.jsonl").read_text().splitlines())}
    plugin = result.ctx.hooks.pm.get_plugin("golden_goose")
    for t in plugin.pool.all[:20]:
        assert t.answer == rows[t.id]["letter"] and t.prompt == rows[t.id]["prompt"]


def test_online_synthesis_from_stdlib(zoo_train_step):
    cfg = {"golden_goose": {"source": "stdlib:docstrings:json,textwrap,shlex,heapq,string,csv", "limit": 12,
                            "options": 4, "context_chars": 150}}
    result = zoo_train_step(plugins={"golden_goose": GoldenGoose}, config=cfg)
    plugin = result.ctx.hooks.pm.get_plugin("golden_goose")
    assert len(plugin.pool) >= 10 and all(t.metadata["golden_goose"]["n_options"] == 4 for t in plugin.pool.all)
    assert (result.run_dir / "golden_goose" / "tasks.jsonl").exists()  # synthesized into the run folder
    assert plugin.synthesis["kept"] == len(plugin.pool)
    assert "reward/goose/correct/mean" in result.last and "reward/correct/mean" in result.last


def _rollouts(tasks, per_task_texts):
    group, texts = [], []
    for g, ts in enumerate(per_task_texts):
        group += [g] * len(ts)
        texts += ts
    n = len(texts)
    return Rollouts(tasks=tasks, group=group, prompt_text=[""] * n, prompt_ids=[[1]] * n,
                    completion_ids=[[1]] * n, completion_text=texts)


def test_online_filter_drops_items_solved_k_of_k(zoo_context, code_set):
    out, _ = code_set
    plugin = GoldenGoose()
    ctx = zoo_context(plugins={"golden_goose": plugin},
                      config={"golden_goose": {"dataset": str(out), "filter_online": True, "filter_k": 4}})
    pool = ctx.hooks.task_source(ctx)
    n = len(pool)
    a, b, c = pool[0], pool[1], pool[2]
    right = lambda t: f"<answer>{t.answer}</answer>"  # noqa: E731
    wrong = lambda t: "<answer>Z</answer>"  # noqa: E731
    # a: 2 right then 2 right -> 4/4 over its last 4 rollouts: dropped; b: mixed; c: all wrong
    ctx.hooks.observe(ctx, _rollouts([a, b, c], [[right(a)] * 2, [right(b), wrong(b)], [wrong(c)] * 2]))
    assert len(pool) == n and plugin.last["golden_goose/effective_frac"] == pytest.approx(1 / 3)
    ctx.hooks.observe(ctx, _rollouts([a, b, c], [[right(a)] * 2, [right(b)] * 2, [wrong(c)] * 2]))
    assert a.id in pool.dropped and b.id not in pool.dropped and len(pool) == n - 1
    assert all(t.id != a.id for t in pool)
    assert plugin.last["golden_goose/solved_all_frac"] == pytest.approx(2 / 3)
    # the state (windows and dropped ids) survives a checkpoint round trip and rebuilds the pool
    state = roundtrip_state(ctx, "golden_goose")
    assert state["dropped"] == [a.id] and state["window"][b.id] == [1, 0, 1, 1]
    fresh = GoldenGoose()
    ctx2 = zoo_context(plugins={"golden_goose": fresh},
                       config={"golden_goose": {"dataset": str(out), "filter_online": True, "filter_k": 4}})
    pool2 = ctx2.hooks.task_source(ctx2)
    ctx2.hooks.load_state_dicts(ctx2, {"golden_goose": state})
    assert len(pool2) == n - 1 and a.id in pool2.dropped


def test_online_filter_keeps_a_minimum_pool(zoo_context, code_set):
    out, _ = code_set
    plugin = GoldenGoose()
    ctx = zoo_context(plugins={"golden_goose": plugin},
                      config={"golden_goose": {"dataset": str(out), "filter_online": True, "filter_k": 1,
                                               "max_tasks": 5, "min_pool": 3}})
    pool = ctx.hooks.task_source(ctx)
    tasks = list(pool)
    ctx.hooks.observe(ctx, _rollouts(tasks, [[f"<answer>{t.answer}</answer>"] for t in tasks]))
    assert len(pool) == 3


def test_training_resumes_with_filter_state(zoo_train_step, code_set, tmp_path):
    out, _ = code_set
    cfg = {"golden_goose": {"dataset": str(out), "filter_online": True, "filter_k": 2, "max_tasks": 6},
           "train": {"checkpoint_every": 1}}
    first = zoo_train_step(plugins={"golden_goose": GoldenGoose}, config=cfg, steps=1, run_dir=tmp_path / "r")
    again = zoo_train_step(plugins={"golden_goose": GoldenGoose}, config=cfg, steps=2, run_dir=tmp_path / "r", resume=True)
    assert [m["step"] for m in again.metrics] == [0, 1]
    p1 = first.ctx.hooks.pm.get_plugin("golden_goose")
    p2 = again.ctx.hooks.pm.get_plugin("golden_goose")
    assert p1.window and set(p1.window) <= set(p2.window)  # restored from the checkpoint, then extended
    assert p1.pool.dropped <= p2.pool.dropped


@pytest.mark.parametrize(
    "section, message",
    [
        ({"dataset": "a", "source": "b"}, "both set"),
        ({"options": 1}, "options"),
        ({"options": 27}, "options"),
        ({"options": 12}, "golden_goose.distractors"),
        ({"filter_k": 0}, "filter_k"),
        ({"source": "stdlib:code", "generator": "llm"}, "generator_model"),
        ({"generator": "gpt"}, "generator"),
        ({"min_units": 3, "max_units": 2}, "min_units"),
        ({"answer_format": "json"}, "answer_format"),
        ({"typo_key": 1}, "typo_key"),
    ],
)
def test_config_errors_name_the_key(zoo_context, section, message):
    with pytest.raises(ConfigError, match=message):
        zoo_context(plugins={"golden_goose": GoldenGoose()}, config={"golden_goose": section})


def test_task_source_errors_name_the_key(zoo_context, tmp_path):
    ctx = zoo_context(plugins={"golden_goose": GoldenGoose()})
    with pytest.raises(PluginError, match="golden_goose.dataset"):
        ctx.hooks.task_source(ctx)
    ctx = zoo_context(plugins={"golden_goose": GoldenGoose()}, config={"golden_goose": {"dataset": str(tmp_path / "none")}})
    with pytest.raises(PluginError, match="golden_goose.dataset.*no such data set"):
        ctx.hooks.task_source(ctx)


def test_with_gdpo(zoo_train_step, code_set):
    """Another paper's plugin at the same time: GDPO normalizes goose/correct and the kit column separately."""
    pytest.importorskip("grpo_zoo_gdpo")
    out, _ = code_set
    cfg = {"golden_goose": {"dataset": str(out)}, "reward": {"builtin": []}}
    result = zoo_train_step(plugins=["golden_goose", "gdpo"], config=cfg)
    m = result.last
    assert "reward/goose/correct/mean" in m and "reward/kit/even_tokens/mean" in m
    assert any(k.startswith("gdpo/") for k in m) and "golden_goose/effective_frac" in m


def test_with_mc_grpo(zoo_train_step, code_set):
    pytest.importorskip("grpo_zoo_mc_grpo")
    out, _ = code_set
    result = zoo_train_step(plugins=["golden_goose", "mc_grpo"],
                            config={"golden_goose": {"dataset": str(out)}, "reward": {"builtin": []}})
    m = result.last
    assert "reward/goose/correct/mean" in m and any(k.startswith("mc_grpo/") for k in m)
    assert m["rollouts"] == (3 + 2) * 2  # mc_grpo adds one rollout per group, and one more for an odd group
