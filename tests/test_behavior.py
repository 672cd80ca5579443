"""Behaviour-policy correction (grpo_zoo.behavior): TRL 1.16's four modes against hand-computed
numbers, its wiring into the loss, and the ~0 mismatch of the built-in sampler."""
from __future__ import annotations

import math

import pytest
import torch

from grpo_zoo.behavior import BehaviorCorrection, behavior_logp, correction_weights
from grpo_zoo.hookspecs import hookimpl

# old (trainer) and behaviour (sampler) log-probs of 3 tokens + 1 padding position:
# log rho = old - mu = [-0.5, 0, +1], rho = [e^-0.5, 1, e]; sequence: rho = e^0.5
OLD = torch.tensor([[0.0, -1.0, -2.0, 0.0]])
MU = torch.tensor([[0.5, -1.0, -3.0, float("nan")]])
MASK = torch.tensor([[1, 1, 1, 0]], dtype=torch.bool)


def test_token_truncate_clamps_each_ratio():
    w, ratio = correction_weights(OLD, MU, MASK, "token_truncate", cap=2.0, cap_min=0.7)
    assert torch.allclose(ratio[0, :3], torch.tensor([math.exp(-0.5), 1.0, math.e]))
    assert torch.allclose(w, torch.tensor([[0.7, 1.0, 2.0, 1.0]]))  # padding: log rho 0 -> 1


def test_token_mask_zeroes_ratios_outside_the_bounds():
    w, _ = correction_weights(OLD, MU, MASK, "token_mask", cap=2.0, cap_min=0.7)
    assert torch.allclose(w, torch.tensor([[0.0, 1.0, 0.0, 1.0]]))
    w, _ = correction_weights(OLD, MU, MASK, "token_mask", cap=3.0)  # TRL's default: no lower bound
    assert torch.allclose(w, torch.tensor([[math.exp(-0.5), 1.0, math.e, 1.0]]))


def test_sequence_modes_use_one_ratio_per_sequence():
    w, ratio = correction_weights(OLD, MU, MASK, "sequence_truncate", cap=1.5)
    assert w.shape == (1, 1) and math.isclose(float(ratio), math.exp(0.5), rel_tol=1e-6)
    assert math.isclose(float(w), 1.5)
    w, _ = correction_weights(OLD, MU, MASK, "sequence_mask", cap=1.5)
    assert float(w) == 0.0
    w, _ = correction_weights(OLD, MU, MASK, "sequence_mask", cap=2.0)
    assert math.isclose(float(w), math.exp(0.5), rel_tol=1e-6)


def test_unknown_behaviour_logp_counts_as_ratio_one():
    mu = torch.tensor([[float("nan"), -1.0, -3.0, float("nan")]])
    w, _ = correction_weights(OLD, mu, MASK, "token_truncate", cap=10.0)
    assert torch.allclose(w, torch.tensor([[1.0, 1.0, math.e, 1.0]]))


def test_behavior_logp_pads_with_nan():
    out = behavior_logp([torch.tensor([-1.0, -2.0]), None], (2, 3), "cpu")
    assert out[0, :2].tolist() == [-1.0, -2.0] and torch.isnan(out[0, 2]) and torch.isnan(out[1]).all()


class _Cfg:
    behavior_correction, behavior_cap, behavior_cap_min = "token_mask", 2.0, 0.7


class _Rollouts:
    sample_logp = [torch.tensor([0.5, -1.0, -3.0])]


def test_metrics_are_kl_ratio_and_fraction_corrected():
    corr = BehaviorCorrection(_Cfg(), _Rollouts())
    w = corr.weight([0], OLD, MASK)
    assert torch.allclose(w, torch.tensor([[0.0, 1.0, 0.0, 1.0]]))
    m = corr.metrics()
    d = torch.tensor([-0.5, 0.0, 1.0])
    assert math.isclose(m["behavior/kl"], float((d.exp() - 1 - d).mean()), rel_tol=1e-6)
    assert math.isclose(m["behavior/logp_diff/mean"], 0.5, rel_tol=1e-6) and m["behavior/logp_diff/max"] == 1.0
    assert math.isclose(m["behavior/ratio/min"], math.exp(-0.5), rel_tol=1e-6)
    assert math.isclose(m["behavior/ratio/max"], math.e, rel_tol=1e-6)
    assert math.isclose(m["behavior/corrected_frac"], 2 / 3)


def test_correction_without_behaviour_logp_is_a_clear_error():
    class NoLogp:
        sample_logp = None

    with pytest.raises(ValueError, match="behavior_correction = 'token_mask'.*sample_logp"):
        BehaviorCorrection(_Cfg(), NoLogp())


def test_builtin_sampler_mismatch_is_about_zero(zoo_train_step):
    res = zoo_train_step(config={"loss": {"behavior_correction": "token_truncate"}}, steps=1)
    m = res.metrics[0]
    assert m["behavior/kl"] < 1e-6 and m["behavior/logp_diff/max"] < 1e-4
    assert abs(m["behavior/ratio/mean"] - 1) < 1e-4 and m["behavior/corrected_frac"] == 0.0


class HalfBehaviour:
    """Claims every sampled token had twice the trainer's probability: rho = 1/2 everywhere."""

    @hookimpl(wrapper=True)
    def zoo_generate(self, ctx, request):
        out = yield
        out.sample_logp = [lp + math.log(2.0) for lp in out.sample_logp]
        return out


@pytest.mark.parametrize("mode, factor", [("token_truncate", 0.5), ("sequence_mask", 0.0)])
def test_the_weight_multiplies_the_policy_loss(zoo_train_step, tmp_path, mode, factor):
    # Same seed, same rollouts: with mu=1 the ratio is 1 and the gradient is -A grad logp; the
    # weight 1/2 halves it, and sequence_mask (rho = 2^-len < cap_min) drops every sequence.
    base = {"train": {"grad_clip": 1e9}}  # grad_norm is reported, nothing is clipped
    plain = zoo_train_step(plugins={"half": HalfBehaviour()}, config=base, run_dir=tmp_path / "plain").metrics[0]
    cfg = {**base, "loss": {"behavior_correction": mode, "behavior_cap_min": 0.4 if mode == "token_truncate" else 0.9}}
    fixed = zoo_train_step(plugins={"half": HalfBehaviour()}, config=cfg, run_dir=tmp_path / "fixed").metrics[0]
    assert plain["grad_norm"] > 0
    assert math.isclose(fixed["grad_norm"], factor * plain["grad_norm"], rel_tol=1e-4, abs_tol=1e-9)
    assert math.isclose(plain["behavior/ratio/mean"], 0.5, rel_tol=1e-4)  # measured even with the correction off
