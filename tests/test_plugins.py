"""Plugin manager rules: conflicts and hook owners, wrappers, activation by name only,
GRPO_ZOO_DISABLE_PLUGINS, errors that name the plugin, per-run class instances, and
real kit training steps for each loss type."""
from __future__ import annotations

import math
import sys

import pytest
import torch

from grpo_zoo import cli
from grpo_zoo.context import make_context
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.plugins import (
    HookConflictError,
    PluginError,
    PluginHookError,
    build_manager,
    installed_entry_points,
    installed_plugins,
    load_plugin,
)
from grpo_zoo.testing import BASE_CONFIG, merge, roundtrip_state
from grpo_zoo.types import LossInputs, RolloutRequest, Rollouts, Task


def ctx_with(plugins: dict | None = None, config: dict | None = None):
    raw = merge(BASE_CONFIG, config or {})
    raw["plugins"] = list(plugins or {}) + raw.get("plugins", [])
    return make_context(raw, extra_plugins=plugins or {})


def scored_rollouts(rewards, group, num_tasks=None):
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    n = len(rewards)
    tasks = [Task(id=f"t{i}", prompt=f"q{i}", answer="1") for i in range(num_tasks or int(max(group)) + 1)]
    return Rollouts(
        tasks=tasks,
        group=torch.as_tensor(group),
        prompt_text=["p"] * n,
        prompt_ids=[[1, 2]] * n,
        completion_ids=[[3, 4, 5]] * n,
        completion_text=["1"] * n,
        rewards={"correct": rewards},
    )


def loss_inputs(seed=0):
    g = torch.Generator().manual_seed(seed)
    logp = -torch.rand(4, 5, generator=g, dtype=torch.float64)
    mask = torch.arange(5).unsqueeze(0) < torch.tensor([[5], [3], [4], [1]])
    return LossInputs(
        logp=logp,
        old_logp=logp + 0.1 * torch.randn(4, 5, generator=g, dtype=torch.float64),
        advantages=torch.tensor([1.0, -0.5, 0.0, 2.0], dtype=torch.float64),
        mask=mask,
        total_tokens=float(mask.sum()),
        total_sequences=4.0,
        max_completion_length=5,
    )


class CenterA:
    @hookimpl
    def zoo_group_center(self, ctx, values, groups):
        return torch.full_like(values, 10.0)

    @hookimpl
    def zoo_group_scale(self, ctx, values, groups, center):
        return torch.full_like(values, 2.0)


class CenterB:
    @hookimpl
    def zoo_group_center(self, ctx, values, groups):
        return torch.full_like(values, -10.0)


# ---------------------------------------------------------------- conflicts and owners


def test_conflict_error_names_both_plugins_the_hook_and_the_fix():
    with pytest.raises(HookConflictError) as err:
        ctx_with({"alpha": CenterA, "beta": CenterB})
    msg = str(err.value)
    assert "'alpha'" in msg and "'beta'" in msg
    assert "zoo_group_center" in msg
    assert "[run.hook_owners]" in msg and "group_center" in msg
    assert "drop one" in msg


@pytest.mark.parametrize("key", ["group_center", "zoo_group_center"])
def test_hook_owners_resolve_a_conflict(key):
    ctx = ctx_with({"alpha": CenterA, "beta": CenterB}, {"run": {"hook_owners": {key: "beta"}}})
    impls = [i.plugin_name for i in ctx.hooks.pm.hook.zoo_group_center.get_hookimpls()]
    assert "alpha" not in impls and "beta" in impls
    # alpha's other hooks stay active: only the contested one is excluded
    assert "alpha" in [i.plugin_name for i in ctx.hooks.pm.hook.zoo_group_scale.get_hookimpls()]
    values, groups = torch.tensor([0.0, 2.0]), scored_rollouts([0, 1], [0, 0]).groups
    assert ctx.normalize(values, groups).tolist() == [5.0, 6.0]  # (v - (-10)) / 2
    ctx2 = ctx_with({"alpha": CenterA, "beta": CenterB}, {"run": {"hook_owners": {key: "alpha"}}})
    assert ctx2.normalize(values, groups).tolist() == [-5.0, -4.0]


def test_hook_owner_must_be_a_claimant_and_hook_must_exist():
    with pytest.raises(HookConflictError, match="only 'alpha', 'beta' implement it"):
        ctx_with({"alpha": CenterA, "beta": CenterB}, {"run": {"hook_owners": {"group_center": "gamma"}}})
    # an owner that does not implement the hook is an error even without a conflict (not silently ignored)
    with pytest.raises(HookConflictError, match="names 'beta' for zoo_group_center, but only 'alpha' implement it"):
        ctx_with({"alpha": CenterA}, {"run": {"hook_owners": {"group_center": "beta"}}})
    with pytest.raises(HookConflictError, match="names 'alpha' for zoo_policy_loss, but no active plugin implements"):
        ctx_with({"alpha": CenterA}, {"run": {"hook_owners": {"policy_loss": "alpha"}}})
    assert ctx_with({"alpha": CenterA}, {"run": {"hook_owners": {"group_center": "alpha"}}})  # a lone owner is fine
    with pytest.raises(PluginError, match="unknown hook"):
        ctx_with({"alpha": CenterA}, {"run": {"hook_owners": {"no_such_hook": "alpha"}}})
    with pytest.raises(PluginError, match="unknown hook"):  # an all-call hook has no owner
        ctx_with({"alpha": CenterA}, {"run": {"hook_owners": {"reward": "alpha"}}})


def test_plugin_answers_before_builtin_and_none_falls_through():
    class Maybe:
        @hookimpl
        def zoo_plan_budget(self, ctx, tasks, group_size):
            return None if len(tasks) == 1 else [group_size + i for i in range(len(tasks))]

    ctx = ctx_with({"maybe": Maybe})
    tasks = [Task(id=str(i), prompt="q") for i in range(3)]
    assert ctx.hooks.plan_budget(ctx, tasks, 4) == [4, 5, 6]
    assert ctx.hooks.plan_budget(ctx, tasks[:1], 4) == [4]  # the built-in answers


def test_same_name_twice_is_an_error():
    with pytest.raises(PluginError, match="named twice"):
        build_manager(["alpha", "alpha"], extra={"alpha": CenterA()})


# ---------------------------------------------------------------- wrappers


class FakeBackend:
    """zoo_generate without a model: completion i of task t is str(i % 2)."""

    @hookimpl
    def zoo_generate(self, ctx, request):
        group, text, prompts = [], [], []
        for t, (prompt, budget) in enumerate(zip(request.prompts, request.budgets)):
            for i in range(budget):
                group.append(t)
                text.append(str(i % 2))
                prompts.append(prompt if isinstance(prompt, str) else prompt[-1]["content"])
        n = len(group)
        return Rollouts(
            tasks=request.tasks,
            group=torch.tensor(group),
            prompt_text=prompts,
            prompt_ids=[[1]] * n,
            completion_ids=[[2, 3]] * n,
            completion_text=text,
        )


def make_wrapper(tag, log):
    class Wrap:
        @hookimpl(wrapper=True)
        def zoo_rollout(self, ctx, request):
            log.append(f"{tag}:before")
            request.prompts = [f"{p} [{tag}]" for p in request.prompts]
            result = yield
            log.append(f"{tag}:after")
            result.metrics[f"{tag}/seen"] = float(len(result))
            return result

    return Wrap


def test_wrappers_never_conflict_and_both_run():
    log: list[str] = []
    plugins = {"backend": FakeBackend, "outer": make_wrapper("outer", log), "inner": make_wrapper("inner", log)}
    ctx = ctx_with(plugins)
    tasks = [Task(id="a", prompt="q1", answer="1"), Task(id="b", prompt="q2", answer="0")]
    request = RolloutRequest(tasks=tasks, prompts=["q1", "q2"], budgets=[3, 2])
    rollouts = ctx.hooks.rollout(ctx, request)  # zoo_rollout: wrappers around the built-in ctx.sample
    # pluggy calls the last registered wrapper outermost
    assert log == ["inner:before", "outer:before", "outer:after", "inner:after"]
    assert rollouts.prompt_text[0] == "q1 [inner] [outer]"
    assert rollouts.metrics == {"outer/seen": 5.0, "inner/seen": 5.0}
    # the built-in zoo_reward scored what our zoo_generate produced
    assert rollouts.rewards["correct"].tolist() == [0.0, 1.0, 0.0, 1.0, 0.0]


# ---------------------------------------------------------------- installed, named, blocked


def _numbers(ctx):
    """Advantages and a loss value computed through every advantage and loss hook."""
    r = scored_rollouts([1, 0, 0, 1, 1, 0.5], [0, 0, 0, 1, 1, 2])
    ctx.compute_advantages(r)
    inputs = loss_inputs()
    per_token = ctx.hooks.policy_loss(ctx, inputs)
    loss = ctx.hooks.aggregate_loss(ctx, per_token, inputs)
    return r.advantages.clone(), r.in_loss.clone(), loss.detach()


def test_installed_but_unnamed_plugin_changes_nothing(install_fake_plugin):
    before_ctx = ctx_with()
    before = _numbers(before_ctx)
    module = install_fake_plugin("sneaky")
    assert "sneaky" in installed_entry_points()
    info = {p.name: p for p in installed_plugins()}["sneaky"]
    assert (info.distribution, info.version, info.builtin) == ("grpo-zoo-sneaky", "0.3.0", False)
    after_ctx = ctx_with()
    after = _numbers(after_ctx)
    assert module not in sys.modules, "an unnamed plugin must not even be imported by a run"
    assert "sneaky" not in after_ctx.plugin_names
    assert before_ctx.plugin_names == after_ctx.plugin_names
    for a, b in zip(before, after):
        assert torch.equal(a, b)
    assert before_ctx.config.model_dump() == after_ctx.config.model_dump()
    # ...while naming it does change the numbers (the fixture plugin is effective)
    named = make_context(merge(BASE_CONFIG, {"plugins": ["sneaky"]}))
    assert "sneaky" in named.plugin_names
    changed = _numbers(named)
    assert not torch.equal(changed[0], before[0]) and not torch.equal(changed[2], before[2])
    assert named.config.sneaky.strength == 2.0


def test_installed_but_unnamed_plugin_changes_nothing_in_a_training_run(zoo_train_step, install_fake_plugin, tmp_path):
    cfg = {"loss": {"num_iterations": 2}}
    before = zoo_train_step(config=cfg, run_dir=tmp_path / "before")
    install_fake_plugin("sneaky")
    after = zoo_train_step(config=cfg, run_dir=tmp_path / "after")

    def strip(m):
        return {k: v for k, v in m.items() if not k.startswith("time/")}

    assert strip(before.last) == strip(after.last)
    import json

    manifest = json.loads((tmp_path / "after" / "manifest.json").read_text())
    assert "sneaky" not in {p["name"] for p in manifest["plugins"]}


def test_disable_plugins_blocks_loading(install_fake_plugin, monkeypatch, capsys):
    module = install_fake_plugin("sneaky")
    monkeypatch.setenv("GRPO_ZOO_DISABLE_PLUGINS", "other, sneaky")
    assert "sneaky" not in installed_entry_points()
    assert "sneaky" not in {p.name for p in installed_plugins()}
    cli.build_parser()  # the CLI imports installed plugins for their commands: not a blocked one
    assert module not in sys.modules
    with pytest.raises(PluginError, match="blocked by GRPO_ZOO_DISABLE_PLUGINS"):
        make_context(merge(BASE_CONFIG, {"plugins": ["sneaky"]}))
    with pytest.raises(PluginError, match="GRPO_ZOO_DISABLE_PLUGINS"):
        load_plugin("sneaky")
    monkeypatch.delenv("GRPO_ZOO_DISABLE_PLUGINS")
    cli.build_parser()
    assert module in sys.modules  # unblocked: its zoo_register_commands was collected
    assert cli.main(["sneaky-hello"]) == 0
    assert "sneaky command ran" in capsys.readouterr().out


def test_unknown_plugin_error_says_how_to_install():
    with pytest.raises(PluginError, match="not installed.*pip install grpo-zoo-no-such-plugin"):
        make_context(merge(BASE_CONFIG, {"plugins": ["no_such_plugin"]}))
    with pytest.raises(PluginError, match="unknown built-in"):
        load_plugin("builtin.nope")


def test_plugin_that_fails_to_import_names_itself(install_fake_plugin):
    install_fake_plugin("broken", source="raise RuntimeError('boom at import')\n")
    with pytest.raises(PluginError, match="plugin 'broken' failed to load.*boom at import"):
        make_context(merge(BASE_CONFIG, {"plugins": ["broken"]}))


# ---------------------------------------------------------------- errors name the plugin


class Raises:
    @hookimpl
    def zoo_group_center(self, ctx, values, groups):
        raise ValueError("centre exploded")

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        raise KeyError("metrics exploded")

    @hookimpl
    def zoo_state_dict(self, ctx):
        raise RuntimeError("state exploded")


def test_plugin_raising_in_a_first_hook_is_named():
    ctx = ctx_with({"boom": Raises})
    with pytest.raises(PluginHookError) as err:
        ctx.compute_advantages(scored_rollouts([1, 0], [0, 0]))
    assert err.value.plugin == "boom" and err.value.hook == "zoo_group_center"
    assert "plugin 'boom' failed in hook zoo_group_center: ValueError: centre exploded" in str(err.value)
    assert isinstance(err.value.original, ValueError)


def test_plugin_raising_in_all_call_and_per_plugin_hooks_is_named():
    ctx = ctx_with({"boom": Raises})
    with pytest.raises(PluginHookError, match="'boom' failed in hook zoo_step_metrics"):
        ctx.hooks.step_metrics(ctx, scored_rollouts([1], [0]), 0)
    with pytest.raises(PluginHookError, match="'boom' failed in hook zoo_state_dict"):
        ctx.hooks.per_plugin("zoo_state_dict", ctx=ctx)


def test_plugin_raising_in_reward_and_wrapper_is_named():
    class BadReward:
        @hookimpl
        def zoo_reward(self, ctx, rollouts):
            return {"bad": [1.0]}  # wrong length

    class BadWrap:
        @hookimpl(wrapper=True)
        def zoo_rollout(self, ctx, request):
            result = yield
            raise RuntimeError("post-processing failed")

    request = RolloutRequest(tasks=[Task(id="a", prompt="q", answer="1")], prompts=["q"], budgets=[2])
    ctx = ctx_with({"backend": FakeBackend, "bad_reward": BadReward})
    with pytest.raises(PluginHookError, match="'bad_reward' failed in hook zoo_reward.*1 values for 2 rollouts"):
        ctx.hooks.rollout(ctx, request)
    ctx = ctx_with({"backend": FakeBackend, "bad_wrap": BadWrap})
    with pytest.raises(PluginHookError, match="'bad_wrap' failed in hook zoo_rollout"):
        ctx.hooks.rollout(ctx, request)


def test_duplicate_reward_column_names_the_plugin_that_repeats_it():
    class Dup:
        @hookimpl
        def zoo_reward(self, ctx, rollouts):
            return {"correct": torch.ones(len(rollouts))}

    ctx = ctx_with({"backend": FakeBackend, "dup": Dup})
    request = RolloutRequest(tasks=[Task(id="a", prompt="q", answer="1")], prompts=["q"], budgets=[2])
    with pytest.raises(PluginHookError) as err:
        ctx.hooks.rollout(ctx, request)
    assert err.value.plugin == "dup" and "'correct'" in str(err.value) and "builtin.reward" in str(err.value)


# ---------------------------------------------------------------- class plugins: one instance per run


class Counting:
    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        self.seen = getattr(self, "seen", 0) + len(rollouts)

    @hookimpl
    def zoo_state_dict(self, ctx):
        return {"seen": getattr(self, "seen", 0)}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.seen = state["seen"]


def test_class_plugin_gets_a_fresh_instance_per_run():
    c1, c2 = ctx_with({"count": Counting}), ctx_with({"count": Counting})
    p1, p2 = c1.hooks.pm.get_plugin("count"), c2.hooks.pm.get_plugin("count")
    assert isinstance(p1, Counting) and isinstance(p2, Counting) and p1 is not p2
    c1.hooks.observe(c1, scored_rollouts([1, 0, 1], [0, 0, 1]))
    assert c1.hooks.per_plugin("zoo_state_dict", ctx=c1)["count"] == {"seen": 3}
    assert c2.hooks.per_plugin("zoo_state_dict", ctx=c2)["count"] == {"seen": 0}
    assert roundtrip_state(c1, "count") == {"seen": 3}  # zoo_load_state_dict restores it


def test_entry_point_class_is_instantiated_per_run(install_fake_plugin):
    install_fake_plugin("sneaky")
    a = make_context(merge(BASE_CONFIG, {"plugins": ["sneaky"]}))
    b = make_context(merge(BASE_CONFIG, {"plugins": ["sneaky"]}))
    pa, pb = a.hooks.pm.get_plugin("sneaky"), b.hooks.pm.get_plugin("sneaky")
    assert pa is not pb and type(pa) is type(pb)
    a.normalize(torch.tensor([1.0, 2.0]), scored_rollouts([0, 0], [0, 0]).groups)
    assert (pa.calls, pb.calls) == (1, 0)


# ---------------------------------------------------------------- real kit steps


class Recorder:
    """Lifecycle hooks seen in a real run."""

    def __init__(self):
        self.events: list[str] = []

    @hookimpl
    def zoo_run_start(self, ctx):
        self.events.append("run_start")

    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        self.events.append(f"observe:{len(rollouts)}")

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        self.events.append(f"step_metrics:{step}")
        return {"rec/in_loss": float(rollouts.in_loss.sum())}

    @hookimpl
    def zoo_state_dict(self, ctx):
        self.events.append("state_dict")
        return {"events": len(self.events)}

    @hookimpl
    def zoo_run_end(self, ctx, metrics):
        self.events.append("run_end")


@pytest.mark.parametrize(
    "loss_type,beta,num_iterations",
    [("grpo", 0.0, 1), ("dapo", 0.04, 2), ("dr_grpo", 0.0, 2), ("bnpo", 0.0, 1), ("gspo", 0.04, 2)],
)
def test_kit_training_step_for_each_loss_type(zoo_train_step, loss_type, beta, num_iterations):
    rec = Recorder()
    result = zoo_train_step(
        plugins={"rec": rec},
        config={"loss": {"type": loss_type, "beta": beta, "num_iterations": num_iterations}},
    )
    m = result.last
    assert m["step"] == 0 and m["rollouts"] == 6
    for key in ("loss", "grad_norm", "reward/mean", "advantage/abs_mean"):
        assert math.isfinite(m[key]), key
    assert m["grad_norm"] > 0, "the kit reward gives mixed rewards, so the policy gets a gradient"
    assert m["rec/in_loss"] == 6.0
    if beta > 0:
        assert m["kl"] >= 0
    assert result.ctx.config.loss.type == loss_type
    assert rec.events[0] == "run_start" and rec.events[-1] == "run_end"
    assert "observe:6" in rec.events and "step_metrics:0" in rec.events and "state_dict" in rec.events
