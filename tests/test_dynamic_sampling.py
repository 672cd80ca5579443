"""Dynamic sampling: zoo_accept_groups filters scored groups and core refills the step from the curriculum."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo import hookimpl
from grpo_zoo.config import ConfigError
from grpo_zoo.segments import segment_all_equal
from grpo_zoo.trainer import dynamic_sampling
from grpo_zoo.trainer.step import collect

from .dynamic_helpers import BatchSpy, BudgetSpy, FakeBackend, ObserveSpy, RejectFlat, ScriptedReward, is_flat

NO_BUILTIN = {"reward": {"builtin": []}}


def _ctx(zoo_context, plugins, config=None, step=0):
    from grpo_zoo.testing import merge

    ctx = zoo_context(plugins=plugins, config=merge(NO_BUILTIN, config or {}))
    ctx.source = ctx.hooks.task_source(ctx)
    ctx.step = step
    return ctx


def _step(ctx):
    tasks = ctx.hooks.select_tasks(ctx, ctx.source, ctx.step, ctx.config.train.prompts_per_step)
    return tasks, collect(ctx, tasks, ctx.source)


def test_every_group_accepted_keeps_the_batch_as_it_was(zoo_context):
    backend = FakeBackend()
    ctx = _ctx(zoo_context, {"fake": backend, "scripted": ScriptedReward()}, {"sampling": {"max_gen_batches": 4}})
    tasks, out = _step(ctx)
    assert [t.id for t in out.tasks] == [t.id for t in tasks]
    assert len(backend.requests) == 1 and len(out) == 3 * len(tasks)
    assert out.metrics["dynamic_sampling/batches"] == 1 and out.metrics["dynamic_sampling/groups_rejected"] == 0


def test_refill_keeps_prompts_per_step_accepted_groups(zoo_context):
    backend, spy = FakeBackend(), ObserveSpy()
    cfg = {"train": {"prompts_per_step": 4}, "sampling": {"max_gen_batches": 10}}
    ctx = _ctx(zoo_context, {"fake": backend, "scripted": ScriptedReward(), "rule": RejectFlat(), "obs": spy}, cfg)
    tasks, out = _step(ctx)
    assert any(is_flat(t.id) for t in tasks)  # the scripted pool makes the first batch short
    m = out.metrics
    assert m["dynamic_sampling/groups_kept"] == 4 and len(out.tasks) == 4 and len(out) == 12
    assert not any(is_flat(t.id) for t in out.tasks)
    assert not bool(segment_all_equal(out.rewards["scripted"], out.groups).any())
    drawn = [t.id for r in backend.requests for t in r.tasks]
    assert len(drawn) == len(set(drawn)) == m["dynamic_sampling/groups_drawn"]  # refills exclude earlier draws
    assert m["dynamic_sampling/batches"] == len(backend.requests) >= 2
    assert m["dynamic_sampling/groups_rejected"] == sum(is_flat(t) for t in drawn)
    assert m["dynamic_sampling/rollouts_spent"] == 3 * len(drawn)
    # refill batches sample with random streams of their own
    assert ctx.sample_round == 0
    # observe sees every scored group, with the accepted mask
    dynamic_sampling.observe(ctx, out)
    ids, accepted, n = spy.seen[-1]
    assert ids == drawn and n == 3 * len(drawn)
    assert accepted.tolist() == [not is_flat(t) for t in drawn]


def test_refill_batches_get_their_own_seeds(zoo_context):
    seeds = []

    class SeedSpy(FakeBackend):
        @hookimpl
        def zoo_generate(self, ctx, request):
            seeds.append(ctx.sampling_seed(request))
            return FakeBackend.zoo_generate(self, ctx, request)

    cfg = {"train": {"prompts_per_step": 4}, "sampling": {"max_gen_batches": 10}}
    ctx = _ctx(zoo_context, {"fake": SeedSpy(), "scripted": ScriptedReward(), "rule": RejectFlat()}, cfg)
    first = ctx.sampling_seed(type("R", (), {"extras": {}})())
    _step(ctx)
    assert len(seeds) >= 2 and seeds[0] == first and len(set(seeds)) == len(seeds)


class AcceptOnly:
    """Accepts only the groups whose task id is in ``ids`` (none when empty)."""

    def __init__(self, ids=()):
        self.ids = set(ids)

    @hookimpl
    def zoo_accept_groups(self, ctx, rollouts):
        return torch.tensor([t.id in self.ids for t in rollouts.tasks], dtype=torch.bool)


def _cap_run(zoo_context, mode, accept_first=True):
    cfg = {"train": {"prompts_per_step": 3}, "sampling": {"max_gen_batches": 2, "at_cap": mode}}
    probe = _ctx(zoo_context, {"fake": FakeBackend(), "scripted": ScriptedReward()}, cfg)
    first = probe.hooks.select_tasks(probe, probe.source, 0, 3)
    rule = AcceptOnly([first[1].id] if accept_first else [])
    backend = FakeBackend()
    ctx = _ctx(zoo_context, {"fake": backend, "scripted": ScriptedReward(), "rule": rule}, cfg)
    return first, backend, _step(ctx)[1]


def test_at_cap_keep_fewer(zoo_context):
    first, backend, out = _cap_run(zoo_context, "keep_fewer")
    assert [t.id for t in out.tasks] == [first[1].id] and len(out) == 3
    m = out.metrics
    assert m["dynamic_sampling/batches"] == 2 and m["dynamic_sampling/groups_short"] == 2
    assert m["dynamic_sampling/groups_drawn"] == 5  # 3, then the 2 missing


def test_at_cap_pad_with_rejected_groups_in_draw_order(zoo_context):
    first, backend, out = _cap_run(zoo_context, "pad")
    assert [t.id for t in out.tasks] == [first[0].id, first[1].id, first[2].id]
    assert out.metrics["dynamic_sampling/groups_padded"] == 2 and out.metrics["dynamic_sampling/groups_short"] == 0


def test_at_cap_error_names_the_keys(zoo_context):
    with pytest.raises(dynamic_sampling.DynamicSamplingError, match=r"max_gen_batches = 2.*at_cap = 'error'"):
        _cap_run(zoo_context, "error")


def test_keep_fewer_with_nothing_accepted_pads(zoo_context):
    _, _, out = _cap_run(zoo_context, "keep_fewer", accept_first=False)
    assert len(out.tasks) == 3 and out.metrics["dynamic_sampling/groups_padded"] == 3


def test_knapsack_refills_respect_the_step_total(zoo_context):
    pytest.importorskip("grpo_zoo_knapsack")
    spy = BudgetSpy()
    total = 13
    cfg = {
        "train": {"prompts_per_step": 4},
        "sampling": {"max_gen_batches": 10},
        "knapsack": {"total_budget": total, "min_rollouts": 2, "reward_column": "scripted"},
        "task": {"size": 40},
    }
    plugins = {"knapsack": None, "fake": FakeBackend(), "scripted": ScriptedReward(), "rule": RejectFlat(), "bspy": spy}
    from grpo_zoo_knapsack.plugin import KnapsackPlugin

    plugins["knapsack"] = KnapsackPlugin()
    refills = 0
    for step in range(3):
        ctx = _ctx(zoo_context, plugins, cfg, step=step) if step == 0 else ctx
        ctx.step = step
        spy.calls.clear()
        tasks, out = _step(ctx)
        dynamic_sampling.observe(ctx, out)
        assert spy.calls[0][0] is None and sum(spy.calls[0][1]) == total
        kept_planned = 0
        accepted = out.extras["dynamic_sampling"]["accepted"].tolist()
        pos = 0
        for k, (left, budgets) in enumerate(spy.calls):
            if k:
                refills += 1
                assert left == total - kept_planned and sum(budgets) <= left
            kept_planned += sum(b for b, ok in zip(budgets, accepted[pos : pos + len(budgets)]) if ok)
            pos += len(budgets)
        assert len(out) <= total  # the kept groups never exceed the step total
        # zoo_observe fed knapsack's table with the rejected groups too
        assert all(plugins["knapsack"].table.estimate(t, "last") is not None
                   for t in [t.id for t in out.extras["dynamic_sampling"]["scored"].tasks])
    assert refills >= 1


def test_refill_through_igrpo_and_hints_wrappers(zoo_train_step):
    pytest.importorskip("grpo_zoo_igrpo")
    hints = pytest.importorskip("grpo_zoo_hints.testing")
    batch, obs, rule = BatchSpy(), ObserveSpy(), RejectFlat()
    res = zoo_train_step(
        plugins={"igrpo": "igrpo", "hints": hints.ScriptedHints, "scripted": ScriptedReward(), "rule": rule,
                 "spy": batch, "obs": obs},
        config={"sampling": {"max_gen_batches": 8},
                "hints": {"hinter_model": "tiny-random", "hinter_max_new_tokens": 6, "replace_if": "always",
                          "reward_column": "correct"}},
        steps=1,
        kit_reward=False,
    )
    m = res.last
    drawn = m["dynamic_sampling/groups_drawn"]
    assert m["dynamic_sampling/batches"] >= 2 and m["dynamic_sampling/groups_kept"] == 2
    assert rule.calls == m["dynamic_sampling/batches"]
    # iGRPO drafted every group of every batch (1 draft each at G = 3), hints saw every batch's hard groups
    assert m["igrpo/drafts_count"] == drawn
    assert m["hint/hard_total"] == drawn  # the tiny model never answers right: every group is hard
    assert len(batch.batch.tasks) == 2 and not any(is_flat(t.id) for t in batch.batch.tasks)
    ids, accepted, _ = obs.seen[-1]
    assert len(ids) == drawn and int(accepted.sum()) == m["dynamic_sampling/groups_accepted"]


def test_resume_mid_run_reproduces_with_dynamic_sampling(zoo_train_step, tmp_path):
    from .test_resume import assert_same_metrics

    cfg = {"sampling": {"max_gen_batches": 6}, "task": {"size": 12}, "reward": {"builtin": []},
           "train": {"checkpoint_every": 1, "lr": 1e-2}}

    def plugins():
        return {"scripted": ScriptedReward(), "rule": RejectFlat(), "spy": BatchSpy()}

    full = zoo_train_step(plugins=plugins(), config=cfg, steps=3, run_dir=tmp_path / "full", kit_reward=False)
    assert sum(r["dynamic_sampling/batches"] for r in full.metrics) > 3  # refills happened
    part = tmp_path / "part"
    zoo_train_step(plugins=plugins(), config=cfg, steps=1, run_dir=part, kit_reward=False)
    res = zoo_train_step(plugins=plugins(), config=cfg, steps=3, run_dir=part, resume=True, kit_reward=False)
    assert_same_metrics(res.metrics, full.metrics)
    a = res.ctx.engine.model.state_dict()
    b = full.ctx.engine.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_accept_groups_answer_is_checked(zoo_context):
    class Bad:
        @hookimpl
        def zoo_accept_groups(self, ctx, rollouts):
            return [1, 0]

    ctx = _ctx(zoo_context, {"fake": FakeBackend(), "scripted": ScriptedReward(), "bad": Bad()})
    with pytest.raises(Exception, match="bad.*zoo_accept_groups.*bool tensor"):
        _step(ctx)
