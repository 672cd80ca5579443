"""Fault suite (finding 2): NaN/inf rewards, losses and gradients never reach the weights silently."""
from __future__ import annotations

import json

import pytest
import torch

from grpo_zoo import hookimpl
from grpo_zoo.errors import NonFiniteError
from grpo_zoo.trainer import checkpoint


class BadReward:
    """Column ``bad/r``: 1.0, except ``value`` for the first rollout of every ``every``-th call's group 0."""

    def __init__(self, value=float("nan"), all_groups=False):
        self.value, self.all_groups = value, all_groups

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        col = torch.ones(len(rollouts))
        bad = torch.ones(len(rollouts), dtype=torch.bool) if self.all_groups else rollouts.group == 0
        col[torch.nonzero(bad).flatten()[:1] if not self.all_groups else bad] = self.value
        return {"bad/r": col}


def strict_rows(path):
    """Parse JSONL refusing NaN/Infinity tokens (not JSON)."""
    def refuse(token):
        raise ValueError(f"non-JSON token {token}")
    return [json.loads(line, parse_constant=refuse) for line in path.read_text().splitlines()]


def final_params(run):
    from safetensors.torch import load_file

    return load_file(str(checkpoint.latest(run) / "model" / "model.safetensors"))


@pytest.mark.parametrize("value,word", [(float("nan"), "NaN"), (float("inf"), "inf")])
def test_nonfinite_reward_is_a_named_error_by_default(zoo_train_step, tmp_path, value, word):
    with pytest.raises(NonFiniteError) as err:
        zoo_train_step(plugins={"badr": BadReward(value)}, steps=2, run_dir=tmp_path / "run")
    msg = str(err.value)
    assert "'bad/r'" in msg and "plugin 'badr'" in msg and word in msg and "basic_arithmetic/" in msg
    assert "on_nonfinite" in msg
    assert not checkpoint.checkpoints(tmp_path / "run")


@pytest.mark.parametrize("policy", ["drop_group", "zero"])
@pytest.mark.parametrize("value", [float("nan"), float("-inf")])
def test_drop_group_and_zero_train_on_with_finite_weights(zoo_train_step, tmp_path, policy, value):
    run = tmp_path / "run"
    res = zoo_train_step(plugins={"badr": BadReward(value)}, steps=2, run_dir=run,
                         config={"reward": {"on_nonfinite": policy}, "train": {"lr": 1e-2}})
    rows = strict_rows(run / "metrics.jsonl")
    assert len(rows) == 2
    assert all(torch.isfinite(t).all() for t in final_params(run).values())
    assert all(r["loss"] is not None and r["reward/mean"] == r["reward/mean"] for r in rows)
    if policy == "drop_group":
        # group 0 (3 rollouts) is gone: 2 prompts x 3 - 3
        assert [r["rollouts"] for r in rows] == [3, 3] and [r["nonfinite/dropped_groups"] for r in rows] == [1, 1]
        assert [r["reward/bad/r/mean"] for r in rows] == [1.0, 1.0]
    else:
        assert [r["rollouts"] for r in rows] == [6, 6] and [r["nonfinite/zeroed"] for r in rows] == [1, 1]
        assert [r["reward/bad/r/mean"] for r in rows] == [pytest.approx(5 / 6)] * 2


def test_drop_group_of_every_group_is_an_error(zoo_train_step, tmp_path):
    with pytest.raises(NonFiniteError, match="every group"):
        zoo_train_step(plugins={"badr": BadReward(all_groups=True)}, run_dir=tmp_path / "run",
                       config={"reward": {"on_nonfinite": "drop_group"}})


class NanLoss:
    """A loss plugin whose loss is NaN from step ``start`` on."""

    def __init__(self, start):
        self.start = start

    @hookimpl
    def zoo_policy_loss(self, ctx, inputs):
        loss = -(inputs.logp - inputs.old_logp).exp() * inputs.advantages[:, None]
        return loss * float("nan") if ctx.step >= self.start else loss


def test_nonfinite_loss_skips_the_update_and_stops_after_max_bad_steps(zoo_train_step, tmp_path, capsys):
    run = tmp_path / "run"
    cfg = {"train": {"checkpoint_every": 1, "max_bad_steps": 2, "grad_clip": 0.0}}
    with pytest.raises(NonFiniteError, match=r"2 consecutive steps.*max_bad_steps"):
        zoo_train_step(plugins={"nanloss": NanLoss(start=1)}, steps=5, run_dir=run, config=cfg)
    rows = strict_rows(run / "metrics.jsonl")
    assert [r["step"] for r in rows] == [0, 1, 2]
    assert rows[0].get("nonfinite/skipped_updates") is None
    assert [r["nonfinite/skipped_updates"] for r in rows[1:]] == [1, 1] and rows[1]["loss"] is None
    assert "non-finite loss" in capsys.readouterr().err
    # the skipped steps left the weights exactly as step 0 made them, all finite
    from safetensors.torch import load_file

    ck = {p.name: load_file(str(p / "model" / "model.safetensors")) for p in checkpoint.checkpoints(run)}
    assert sorted(ck) == ["step-000000", "step-000001"]  # the run stopped in step 2, before its checkpoint
    a, b = ck["step-000000"], ck["step-000001"]
    assert all(torch.equal(a[k], b[k]) and torch.isfinite(a[k]).all() for k in a)


def test_a_checkpoint_is_never_written_with_nonfinite_weights(zoo_train_step, tmp_path):
    class Poison:
        @hookimpl
        def zoo_run_end(self, ctx, metrics):
            pass

        @hookimpl
        def zoo_step_metrics(self, ctx, rollouts, step):
            with torch.no_grad():
                next(ctx.engine.model.parameters()).view(-1)[0] = float("nan")
            return {}

    from grpo_zoo.errors import CheckpointError

    with pytest.raises(CheckpointError, match="NaN/inf"):
        zoo_train_step(plugins={"poison": Poison()}, run_dir=tmp_path / "run")
    assert not checkpoint.checkpoints(tmp_path / "run")
