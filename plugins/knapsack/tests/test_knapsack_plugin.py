"""The plugin's hooks without a model: config, statistics, budgets, metrics, state."""
import pytest
import torch
from grpo_zoo import Rollouts, Task
from grpo_zoo.config import ConfigError
from grpo_zoo.plugins import PluginHookError
from grpo_zoo.testing import roundtrip_state

from grpo_zoo_knapsack.config import KnapsackConfig
from grpo_zoo_knapsack.plugin import KnapsackPlugin


def make_rollouts(tasks, group, **columns):
    n = len(group)
    return Rollouts(
        tasks=tasks,
        group=torch.tensor(group),
        prompt_text=["q"] * n,
        prompt_ids=[[1]] * n,
        completion_ids=[[2, 3]] * n,
        completion_text=["a"] * n,
        rewards={k: torch.tensor(v, dtype=torch.float32) for k, v in columns.items()},
    )


def plugin_of(ctx) -> KnapsackPlugin:
    return ctx.hooks.pm.get_plugin("knapsack")


def test_contract(zoo_check_plugin):
    hooks = zoo_check_plugin(KnapsackPlugin())
    assert {"zoo_observe", "zoo_plan_budget", "zoo_state_dict", "zoo_load_state_dict", "zoo_step_metrics"} <= set(hooks)


def test_entry_point_is_the_class():
    from grpo_zoo.plugins import installed_entry_points

    assert installed_entry_points()["knapsack"].load() is KnapsackPlugin


@pytest.mark.parametrize(
    "section, key",
    [
        ({"min_rollouts": 0}, "knapsack.min_rollouts"),
        ({"max_rollouts": 1}, "max_rollouts"),
        ({"total_budget": 0}, "knapsack.total_budget"),
        ({"estimate": "ema"}, "knapsack.estimate"),
        ({"leftover": "easy"}, "knapsack.leftover"),
        ({"solver": "greedy"}, "knapsack.solver"),
        ({"unknown_key": 1}, "knapsack.unknown_key"),
    ],
)
def test_bad_config_names_the_key(zoo_context, section, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        zoo_context(["knapsack"], {"knapsack": section})


def test_defaults():
    cfg = KnapsackConfig()
    assert (cfg.min_rollouts, cfg.max_rollouts, cfg.total_budget) == (2, 128, None)
    assert cfg.estimate == "last" and cfg.leftover == "hard" and cfg.solver == "fast"


def test_observe_counts_per_task_id_across_groups(zoo_context):
    ctx = zoo_context(["knapsack"])
    ctx.info["epoch"] = 0
    a, b = Task("a", "q"), Task("b", "q")
    # task a appears in groups 0 and 2 of the same step
    r = make_rollouts([a, b, a], [0, 0, 0, 1, 1, 2, 2], correct=[1, 0, 0, 1, 1, 0, 1])
    ctx.hooks.observe(ctx, r)
    table = plugin_of(ctx).table
    assert table.estimate("a") == pytest.approx(2 / 5)
    assert table.estimate("b") == 1.0
    assert table.estimate("c") is None


def test_estimate_modes_and_epochs(zoo_context):
    ctx = zoo_context(["knapsack"])
    t = Task("a", "q")
    table = plugin_of(ctx).table
    for epoch, rewards in [(0, [1, 0, 0, 0]), (1, [1, 1, 1, 0]), (1, [1, 0, 0, 0])]:
        ctx.info["epoch"] = epoch
        ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], correct=rewards))
        if epoch == 1 and rewards[1] == 1:
            assert table.estimate("a", "epoch") == 0.75  # the previous epoch's figures are replaced
    assert table.estimate("a", "epoch") == pytest.approx(4 / 8)  # both visits of epoch 1
    assert table.estimate("a", "last") == pytest.approx(1 / 4)
    assert table.estimate("a", "all") == pytest.approx(5 / 12)


def test_without_epoch_info_each_step_is_its_own_period(zoo_context):
    ctx = zoo_context(["knapsack"])
    t = Task("a", "q")
    for step, rewards in [(0, [1, 1]), (1, [0, 1])]:
        ctx.step = step
        ctx.hooks.observe(ctx, make_rollouts([t], [0, 0], correct=rewards))
    assert plugin_of(ctx).table.estimate("a") == 0.5


def test_success_column(zoo_context):
    t = Task("a", "q")
    cols = {"correct": [0.0, 0.0, 1.0, 1.0], "format": [1.0, 0.0, 1.0, 0.0]}
    # default: the `correct` column, whatever the weights (a format-only rollout is no success)
    ctx = zoo_context(["knapsack"], {"reward": {"weights": {"format": 0.5}}})
    ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], **cols))
    assert plugin_of(ctx).table.estimate("a") == 0.5
    ctx = zoo_context(["knapsack"], {"reward": {"weights": {"format": 5.0}}})
    ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], **cols))
    assert plugin_of(ctx).table.estimate("a") == 0.5
    # a named column and a threshold
    ctx = zoo_context(["knapsack"], {"knapsack": {"reward_column": "format", "success_threshold": 1.0}})
    ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], **cols))
    assert plugin_of(ctx).table.estimate("a") == 0.5
    # a single column, whatever its name
    ctx = zoo_context(["knapsack"])
    ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], score=[0.2, 0.7, 0.9, 0.4]))
    assert plugin_of(ctx).table.estimate("a") == 0.5
    ctx = zoo_context(["knapsack"], {"knapsack": {"reward_column": "nope"}})
    with pytest.raises(PluginHookError, match="knapsack.reward_column"):
        ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], **cols))
    # several columns, none called `correct`: the user must say which one decides success
    ctx = zoo_context(["knapsack"])
    with pytest.raises(PluginHookError, match=r"knapsack.reward_column must name the success column.*'length'"):
        ctx.hooks.observe(ctx, make_rollouts([t], [0, 0], style=[1.0, 0.0], length=[0.0, 1.0]))


@pytest.mark.parametrize(("mode", "expected"), [("last", 0.25), ("all", 5 / 8), ("epoch", 0.25)])
def test_plan_uses_the_configured_estimate(zoo_context, mode, expected):
    ctx = zoo_context(["knapsack"], {"knapsack": {"estimate": mode}})
    t = Task("a", "q")
    for step, rewards in [(0, [1, 1, 1, 1]), (1, [1, 0, 0, 0])]:
        ctx.step = step
        ctx.hooks.observe(ctx, make_rollouts([t], [0, 0, 0, 0], correct=rewards))
    ctx.step = 2
    ctx.hooks.plan_budget(ctx, [t, Task("b", "q")], 4)
    assert plugin_of(ctx).plan.estimates[0] == pytest.approx(expected)


def test_plan_budget_hook_and_metrics(zoo_context):
    ctx = zoo_context(["knapsack"])
    tasks = [Task(f"t{i}", "q") for i in range(4)]
    assert ctx.hooks.plan_budget(ctx, tasks, 4) == [4, 4, 4, 4]  # no estimates yet: uniform G
    ctx.info["epoch"] = 0
    r = make_rollouts(tasks, [g for g in range(4) for _ in range(4)], correct=[0, 0, 0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 1])
    ctx.hooks.observe(ctx, r)
    ctx.step = 1
    b = ctx.hooks.plan_budget(ctx, tasks, 4)
    assert b[0] == 2 and b[3] == 2 and sum(b) == 16 and b[1] + b[2] == 12
    m = ctx.hooks.step_metrics(ctx, r, 1)
    assert m["knapsack/budget_min"] == 2 and m["knapsack/budget_max"] == max(b)
    assert m["knapsack/budget_gini"] > 0
    assert m["knapsack/value"] >= m["knapsack/value_uniform"] > 0
    assert m["knapsack/estimated_frac"] == 1.0
    assert m["knapsack/tasks_p0"] == 1 and m["knapsack/tasks_p1"] == 1
    assert m["knapsack/frac_mixed"] == 0.5  # tasks 1 and 2 of the observed step


def test_explicit_total_budget(zoo_context):
    ctx = zoo_context(["knapsack"], {"knapsack": {"total_budget": 10, "min_rollouts": 1}})
    assert ctx.hooks.plan_budget(ctx, [Task(f"t{i}", "q") for i in range(4)], 4) == [3, 3, 2, 2]
    ctx = zoo_context(["knapsack"], {"knapsack": {"total_budget": 5}})
    with pytest.raises(PluginHookError, match="min_rollouts"):
        ctx.hooks.plan_budget(ctx, [Task(f"t{i}", "q") for i in range(4)], 4)


def test_state_roundtrip(zoo_context):
    ctx = zoo_context(["knapsack"])
    ctx.info["epoch"] = 3
    ctx.hooks.observe(ctx, make_rollouts([Task("a", "q")], [0, 0, 0], correct=[1, 0, 0]))
    state = roundtrip_state(ctx, "knapsack")
    assert state["version"] == 1 and "a" in state["rows"]
    fresh = zoo_context(["knapsack"])
    fresh.hooks.load_state_dicts(fresh, {"knapsack": state})
    table = plugin_of(fresh).table
    assert table.estimate("a") == pytest.approx(1 / 3)
    assert table.rows["a"].period == ("epoch", 3)


def test_with_igrpo_budgets_are_valued_by_the_refinements(zoo_context):
    """iGRPO returns only the refinements of a budget (N - floor(N / 2) by default): knapsack values
    that group, whose success rate is what it observed (the returned, trained rollouts)."""
    pytest.importorskip("grpo_zoo_igrpo")
    from grpo_zoo_knapsack import value

    ctx = zoo_context(["knapsack", "igrpo"], {"igrpo": {"min_refinements": 1}})
    assert [ctx.hooks.trained_rollouts(ctx, n) for n in (2, 3, 4, 5, 6)] == [1, 2, 2, 3, 3]
    tasks = [Task(f"t{i}", "q") for i in range(4)]
    ctx.info["epoch"] = 0
    r = make_rollouts(tasks, [g for g in range(4) for _ in range(4)], correct=[0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])
    ctx.hooks.observe(ctx, r)
    ctx.step = 1
    b = ctx.hooks.plan_budget(ctx, tasks, 4)
    plan = plugin_of(ctx).plan
    p = [0.25, 0.25, 0.5, 0.75]
    assert plan.estimates.tolist() == p
    want = sum(float(value(n - n // 2, q)) for n, q in zip(b, p))
    assert plan.value() == pytest.approx(want, rel=1e-12)
    # the optimum over refinement groups: brute force over every split of the 16 rollouts
    import itertools

    best = max(
        sum(float(value(n - n // 2, q)) for n, q in zip(alloc, p))
        for alloc in itertools.product(range(2, 13), repeat=4)
        if sum(alloc) <= 16
    )
    assert plan.value() == pytest.approx(best, rel=1e-12)
    # counting every rollout as trained (the plain value) would rank plans differently
    assert plan.value() < sum(float(value(n, q)) for n, q in zip(b, p))


def test_with_igrpo_and_mc_grpo_the_refinement_groups_are_odd(zoo_context):
    pytest.importorskip("grpo_zoo_igrpo")
    pytest.importorskip("grpo_zoo_mc_grpo")
    ctx = zoo_context(["knapsack", "mc_grpo", "igrpo"], {"igrpo": {"min_refinements": 1}})
    tasks = [Task(f"t{i}", "q") for i in range(4)]
    ctx.info["epoch"] = 0
    r = make_rollouts(tasks, [g for g in range(4) for _ in range(4)], correct=[0, 0, 0, 1, 1, 0, 0, 0, 1, 1, 0, 0, 1, 1, 1, 0])
    ctx.hooks.observe(ctx, r)
    ctx.step = 1
    sampled = ctx.hooks.plan_budget(ctx, tasks, 4)
    planned = plugin_of(ctx).plan.budgets.tolist()
    for n, s in zip(planned, sampled):
        group = ctx.hooks.trained_rollouts(ctx, s)
        assert group % 2 == 1 and s >= n + 1
        assert group - 1 >= n - n // 2  # the pivot aside, at least what knapsack valued is trained
        assert ctx.hooks.trained_rollouts(ctx, s - 1) < n - n // 2 + 1 or ctx.hooks.trained_rollouts(ctx, s - 1) % 2 == 0  # and no fewer draws would do
