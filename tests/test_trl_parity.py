"""Parity with Hugging Face TRL 1.16, run through TRL's own code (never a re-typed copy).

Losses: a ``trl.GRPOTrainer`` is created without its ``__init__`` (``object.__new__``)
and given only the attributes its ``compute_loss``/``_compute_loss`` read; its
``_get_per_token_logps_and_entropies`` is replaced by a stub that returns our
float64 leaf tensor of log-probs, so TRL computes its loss on exactly our inputs.
We compare the loss value and the gradient w.r.t. the log-probs with core's
built-in ``zoo_policy_loss`` + ``zoo_kl`` + ``zoo_aggregate_loss``.

Advantages: a real (tiny, random-weight) ``GRPOTrainer`` runs its own
``_generate_and_score_completions`` (real generation, TRL's reward plumbing
and its advantage code) with reward functions that return fixed columns; its
returned ``advantages`` are compared with ``advantage.aggregation`` =
``sum_then_normalize`` / ``normalize_then_sum``.
"""
from __future__ import annotations

from collections import defaultdict
from types import SimpleNamespace

import pytest
import torch

trl = pytest.importorskip("trl")
from trl import GRPOConfig, GRPOTrainer  # noqa: E402

from grpo_zoo.context import make_context  # noqa: E402
from grpo_zoo.testing import BASE_CONFIG, merge  # noqa: E402
from grpo_zoo.types import LossInputs, Rollouts, Task  # noqa: E402

TOL = dict(rtol=1e-6, atol=1e-6)

LOSS_TYPES = ["grpo", "dapo", "dr_grpo", "bnpo", "gspo", "cispo", "sapo"]
# loss types whose importance ratio may be per token or per sequence (gspo is always per sequence)
LEVEL_TYPES = ["grpo", "dapo", "dr_grpo", "bnpo", "cispo", "sapo"]
SAPO_TEMPS = dict(sapo_temperature_pos=0.9, sapo_temperature_neg=1.3)  # not TRL's defaults: the two must differ


def test_trl_version():
    assert trl.__version__.startswith("1.16"), f"parity is pinned to TRL 1.16, found {trl.__version__}"


# --------------------------------------------------------------------------- losses


def _accelerator():
    from accelerate import Accelerator

    return Accelerator(cpu=True)


def _trl_loss_trainer(
    loss_type: str, beta: float, eps_low: float, eps_high: float, max_len: int, ga_steps: int = 1, level=None, bias_kl=True
):
    """A GRPOTrainer shell with just what compute_loss reads (no model, no __init__).

    ``bias_kl`` is TRL's use_bias_correction_kl (default True in TRL 1.16)."""
    tr = object.__new__(GRPOTrainer)
    level = "sequence" if loss_type == "gspo" else (level or "token")
    tr.loss_type = "grpo" if loss_type == "gspo" else loss_type
    tr.importance_sampling_level = level
    tr.epsilon_low, tr.epsilon_high, tr.beta = eps_low, eps_high, beta
    tr.top_entropy_quantile = 1.0
    tr.off_policy_mask_threshold = None
    tr.use_vllm = False
    tr.vllm_importance_sampling_correction = False
    tr.aux_loss_enabled = False
    tr._entropy_bonus_enabled = False
    tr.max_completion_length = max_len
    tr.current_gradient_accumulation_steps = ga_steps
    tr.model = SimpleNamespace(training=True)
    tr.accelerator = _accelerator()
    tr.state = SimpleNamespace(global_step=0)
    tr.args = SimpleNamespace(
        delta=None,
        use_bias_correction_kl=bias_kl,
        steps_per_generation=ga_steps,
        report_to=[],
        **SAPO_TEMPS,
    )
    tr._metrics = {"train": defaultdict(list), "eval": defaultdict(list)}
    return tr


def _trl_loss(tr, logp, old_logp, ref_logp, adv, mask, num_items_in_batch):
    """TRL's compute_loss on given log-probs; returns (loss, d loss / d logp)."""
    leaf = logp.detach().clone().requires_grad_(True)
    entropies = torch.zeros_like(leaf)

    def fake_logps(model, input_ids, attention_mask, logits_to_keep, **kwargs):
        assert logits_to_keep == leaf.shape[1]
        return leaf, entropies, None

    tr._get_per_token_logps_and_entropies = fake_logps
    B, T = mask.shape
    inputs = {
        "prompt_ids": torch.zeros(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.zeros(B, T, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": adv,
        "num_items_in_batch": torch.tensor(float(num_items_in_batch), dtype=torch.float64),
    }
    if old_logp is not None:
        inputs["old_per_token_logps"] = old_logp
    if ref_logp is not None:
        inputs["ref_per_token_logps"] = ref_logp
    # each loss family logs its own figure: proof that TRL took the branch of this loss type
    metric = {"cispo": "cispo_clip_ratio", "sapo": "entropy"}.get(tr.loss_type, "clip_ratio/region_mean")
    logged = len(tr._metrics["train"][metric])
    loss = tr.compute_loss(SimpleNamespace(training=True), inputs)
    assert len(tr._metrics["train"][metric]) == logged + 1, "TRL's branch for this loss type ran"
    if tr.loss_type == "sapo":
        assert len(tr._metrics["train"]["clip_ratio/region_mean"]) == 0, "sapo took the clipped branch"
    loss.backward()
    return loss.detach(), leaf.grad


def _zoo_ctx(loss_type, beta, eps_low, eps_high, num_iterations=1, loss_options=None, **advantage):
    """``loss_options``: extra [loss] keys (importance_sampling_level, kl_bias_correction); unset keys keep
    grpo-zoo's defaults, which must be TRL's."""
    cfg = merge(
        BASE_CONFIG,
        {
            "loss": {
                "type": loss_type,
                "beta": beta,
                "epsilon_low": eps_low,
                "epsilon_high": eps_high,
                "num_iterations": num_iterations,
                **SAPO_TEMPS,
                **(loss_options or {}),
            },
            "advantage": advantage,
        },
    )
    return make_context(cfg)


def _zoo_loss(ctx, logp, old_logp, ref_logp, adv, mask, total_tokens, total_seqs, max_len, n_micro=1):
    """The built-in hooks composed as trainer/step.py composes them; returns (loss, d loss / d logp)."""
    leaf = logp.detach().clone().requires_grad_(True)
    inputs = LossInputs(
        logp=leaf,
        old_logp=leaf.detach() if old_logp is None else old_logp,
        advantages=adv,
        mask=mask.bool(),
        ref_logp=ref_logp,
        total_tokens=float(total_tokens),
        total_sequences=float(total_seqs),
        max_completion_length=max_len,
        num_micro_batches=n_micro,
    )
    per_token = ctx.hooks.policy_loss(ctx, inputs)  # zoo_policy_loss
    if ctx.config.loss.beta > 0:
        per_token = per_token + ctx.config.loss.beta * ctx.hooks.kl(ctx, inputs)  # zoo_kl
    loss = ctx.hooks.aggregate_loss(ctx, per_token, inputs)  # zoo_aggregate_loss
    loss.backward()
    return loss.detach(), leaf.grad


def _random_batch(seed, B=6, T=7, off_policy=False, with_ref=False, empty_row=False):
    g = torch.Generator().manual_seed(seed)
    f64 = dict(dtype=torch.float64)
    logp = -torch.rand(B, T, generator=g, **f64) * 3 - 0.05
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T  # one full-length row
    if empty_row:
        lengths[-1] = 0
    mask = torch.arange(T).unsqueeze(0) < lengths.unsqueeze(1)
    adv = torch.randn(B, generator=g, **f64)
    adv[1] = 0.0  # a zero advantage (a pivot / all-equal group)
    # num_iterations > 1: old log-probs from sampling time, far enough to trip both clip sides
    old = logp + torch.randn(B, T, generator=g, **f64) * 0.4 if off_policy else None
    ref = logp + torch.randn(B, T, generator=g, **f64) * 0.3 if with_ref else None
    return logp, old, ref, adv, mask


CASES = [
    # (beta, off_policy (num_iterations > 1), eps_low, eps_high, empty_row)
    (0.0, False, 0.2, 0.2, False),
    (0.0, True, 0.2, 0.2, False),
    (0.04, False, 0.2, 0.2, False),
    (0.04, True, 0.2, 0.28, False),
    (0.1, True, 0.1, 0.3, True),
]


def _check_against_trl(loss_type, beta, off_policy, eps_low, eps_high, empty_row, level=None, bias_kl=None):
    """TRL and grpo-zoo on three random batches. ``level``/``bias_kl`` None: both sides at their defaults."""
    max_len = 9  # max_completion_length > T: dr_grpo's normalizer is the configured length, not the pad width
    options = {}
    if level is not None:
        options["importance_sampling_level"] = level
    if bias_kl is not None:
        options["kl_bias_correction"] = bias_kl
    trl_kwargs = {"level": level} | ({} if bias_kl is None else {"bias_kl": bias_kl})
    for seed in range(3):
        logp, old, ref, adv, mask = _random_batch(seed, off_policy=off_policy, with_ref=beta > 0, empty_row=empty_row)
        tr = _trl_loss_trainer(loss_type, beta, eps_low, eps_high, max_len, **trl_kwargs)
        trl_loss, trl_grad = _trl_loss(tr, logp, old, ref, adv, mask, num_items_in_batch=mask.sum())
        ctx = _zoo_ctx(loss_type, beta, eps_low, eps_high, num_iterations=2 if off_policy else 1, loss_options=options)
        B = mask.shape[0]
        zoo_loss, zoo_grad = _zoo_loss(ctx, logp, old, ref, adv, mask, mask.sum(), B, max_len)
        assert trl_loss.dtype == torch.float64 and zoo_loss.dtype == torch.float64
        torch.testing.assert_close(zoo_loss, trl_loss, **TOL)
        torch.testing.assert_close(zoo_grad, trl_grad, **TOL)
        assert trl_grad.abs().sum() > 0, "degenerate case: no gradient"
        if off_policy and (level or "token") == "token" and loss_type != "cispo":  # the clip branches are exercised
            ratio = torch.exp(logp - old)[mask]
            assert ((ratio < 1 - eps_low) | (ratio > 1 + eps_high)).any()
        if off_policy and loss_type == "cispo":  # some ratios are capped at epsilon_high, some not
            ratio = torch.exp(logp - old)[mask]
            assert (ratio > eps_high).any() and (ratio < eps_high).any()


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta,off_policy,eps_low,eps_high,empty_row", CASES)
def test_loss_matches_trl(loss_type, beta, off_policy, eps_low, eps_high, empty_row):
    """Both sides at their defaults (TRL 1.16: use_bias_correction_kl=True, importance_sampling_level="token")."""
    if loss_type == "cispo":
        eps_high = 1.0 + eps_high  # cispo's epsilon_high is the ratio cap itself (TRL recommends 5.0)
    _check_against_trl(loss_type, beta, off_policy, eps_low, eps_high, empty_row)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
@pytest.mark.parametrize("beta,off_policy,eps_low,eps_high,empty_row", [c for c in CASES if c[0] > 0])
def test_loss_matches_trl_without_kl_bias_correction(loss_type, beta, off_policy, eps_low, eps_high, empty_row):
    _check_against_trl(loss_type, beta, off_policy, eps_low, 1.2 if loss_type == "cispo" else eps_high, empty_row, bias_kl=False)


@pytest.mark.parametrize("loss_type", LEVEL_TYPES)
@pytest.mark.parametrize("bias_kl", [True, False])
@pytest.mark.parametrize("beta,off_policy,eps_low,eps_high,empty_row", [CASES[1], CASES[3], CASES[4]])
def test_sequence_level_matches_trl(loss_type, bias_kl, beta, off_policy, eps_low, eps_high, empty_row):
    """importance_sampling_level = "sequence" with every loss type, as TRL allows."""
    if beta == 0 and not bias_kl:
        pytest.skip("the KL option has no effect at beta = 0")
    _check_against_trl(
        loss_type, beta, off_policy, eps_low, 1.1 if loss_type == "cispo" else eps_high, empty_row, "sequence", bias_kl
    )


def test_kl_bias_correction_default_is_trls():
    from grpo_zoo.config import LossConfig

    assert LossConfig().kl_bias_correction is GRPOConfig.__dataclass_fields__["use_bias_correction_kl"].default
    assert LossConfig().importance_sampling_level == GRPOConfig.__dataclass_fields__["importance_sampling_level"].default
    assert LossConfig().sapo_temperature_pos == GRPOConfig.__dataclass_fields__["sapo_temperature_pos"].default
    assert LossConfig().sapo_temperature_neg == GRPOConfig.__dataclass_fields__["sapo_temperature_neg"].default


def test_gspo_alias_is_sequence_level():
    """type = "gspo" is grpo at sequence level whatever importance_sampling_level says (no state to go stale
    when a plugin or test assigns loss.type)."""
    # the alias and its spelled-out form give the same numbers
    logp, old, ref, adv, mask = _random_batch(5, off_policy=True, with_ref=True)
    seq = _zoo_ctx("grpo", 0.04, 0.2, 0.2, 2, loss_options={"importance_sampling_level": "sequence"})
    want = _zoo_loss(seq, logp, old, ref, adv, mask, mask.sum(), 6, 9)
    for level in ("token", "sequence"):
        gspo = _zoo_ctx("gspo", 0.04, 0.2, 0.2, 2, loss_options={"importance_sampling_level": level})
        got = _zoo_loss(gspo, logp, old, ref, adv, mask, mask.sum(), 6, 9)
        torch.testing.assert_close(got, want, rtol=0, atol=0)
    token = _zoo_loss(_zoo_ctx("grpo", 0.04, 0.2, 0.2, 2), logp, old, ref, adv, mask, mask.sum(), 6, 9)
    assert not torch.allclose(token[0], want[0])  # the two levels differ on this batch


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_matches_trl_with_gradient_accumulation(loss_type):
    """Two equal micro-batches: TRL's accumulation normalizers vs our explicit totals."""
    beta, max_len = 0.04, 9
    logp, old, ref, adv, mask = _random_batch(7, B=8, off_policy=True, with_ref=True)
    halves = [slice(0, 4), slice(4, 8)]
    eps_high = 1.2 if loss_type == "cispo" else 0.2
    tr = _trl_loss_trainer(loss_type, beta, 0.2, eps_high, max_len, ga_steps=2)
    ctx = _zoo_ctx(loss_type, beta, 0.2, eps_high, num_iterations=2)
    total_tokens, total_seqs = mask.sum(), mask.shape[0]
    trl_total, zoo_total = 0.0, 0.0
    trl_grads, zoo_grads = [], []
    for h in halves:
        lt, gt = _trl_loss(tr, logp[h], old[h], ref[h], adv[h], mask[h], num_items_in_batch=total_tokens)
        lz, gz = _zoo_loss(ctx, logp[h], old[h], ref[h], adv[h], mask[h], total_tokens, total_seqs, max_len, n_micro=2)
        trl_total, zoo_total = trl_total + lt, zoo_total + lz
        trl_grads.append(gt)
        zoo_grads.append(gz)
    torch.testing.assert_close(zoo_total, trl_total, **TOL)
    torch.testing.assert_close(torch.cat(zoo_grads), torch.cat(trl_grads), **TOL)


def test_loss_ratio_one_gives_minus_mean_advantage_like_trl():
    """num_iterations = 1: old = detached current log-prob, TRL takes the same path (no old logps given)."""
    logp, _, _, adv, mask = _random_batch(3)
    tr = _trl_loss_trainer("grpo", 0.0, 0.2, 0.2, 9)
    trl_loss, _ = _trl_loss(tr, logp, None, None, adv, mask, mask.sum())
    torch.testing.assert_close(trl_loss, -adv.mean(), **TOL)
    zoo_loss, _ = _zoo_loss(_zoo_ctx("grpo", 0.0, 0.2, 0.2), logp, None, None, adv, mask, mask.sum(), 6, 9)
    torch.testing.assert_close(zoo_loss, trl_loss, **TOL)


# --------------------------------------------------------------------------- advantages


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from grpo_zoo.trainer.models import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer("tiny-random")
    return model, tok, tmp_path_factory.mktemp("trl-parity")


def _trl_advantages(tiny_model, rewards: torch.Tensor, weights: list[float], G: int, aggregation: str, scale: str):
    """TRL's _generate_and_score_completions on a real tiny GRPOTrainer; rewards[i, k] for rollout i, column k."""
    model, tok, out_dir = tiny_model
    n, K = rewards.shape
    P = n // G

    def column(k):
        def reward(prompts, completions, **kwargs):
            assert len(completions) == n
            return rewards[:, k].tolist()

        reward.__name__ = f"col{k}"
        return reward

    from datasets import Dataset

    args = GRPOConfig(
        output_dir=str(out_dir),
        num_generations=G,
        per_device_train_batch_size=n,
        max_completion_length=2,
        report_to=[],
        use_cpu=True,
        bf16=False,
        multi_objective_aggregation=aggregation,
        scale_rewards=scale,
        reward_weights=weights,
        save_strategy="no",
    )
    prompts = [f"question {p}" for p in range(P)]
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[column(k) for k in range(K)],
        args=args,
        train_dataset=Dataset.from_dict({"prompt": prompts}),
        processing_class=tok,
    )
    inputs = [{"prompt": prompts[p]} for p in range(P) for _ in range(G)]  # RepeatSampler's layout
    # TRL allocates its reward table with the default dtype: float64 makes its arithmetic exact enough to
    # compare at 1e-6 (rewards and weights below are dyadic, so float32 holds them exactly).
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        out = trainer._generate_and_score_completions(inputs)
    finally:
        torch.set_default_dtype(previous)
    assert out["advantages"].dtype == torch.float64
    return out["advantages"]


def _zoo_advantages(rewards: torch.Tensor, weights: list[float], G: int, aggregation: str, scale: str):
    n, K = rewards.shape
    P = n // G
    names = [f"col{k}" for k in range(K)]
    ctx = make_context(
        merge(
            BASE_CONFIG,
            {"advantage": {"aggregation": aggregation, "scale": scale}, "reward": {"weights": dict(zip(names, weights))}},
        )
    )
    tasks = [Task(id=f"t{p}", prompt=f"question {p}") for p in range(P)]
    rollouts = Rollouts(
        tasks=tasks,
        group=torch.arange(P).repeat_interleave(G),
        prompt_text=[""] * n,
        prompt_ids=[[0]] * n,
        completion_ids=[[1]] * n,
        completion_text=[""] * n,
        rewards={name: rewards[:, k].float() for k, name in enumerate(names)},
    )
    # compute_advantages casts to float32 for the trainer; read the float64 answer of the hook itself
    return ctx.hooks.aggregate_rewards(ctx, rollouts, ctx.reward_weights(rollouts))  # zoo_aggregate_rewards


def _random_rewards(seed, n, K):
    g = torch.Generator().manual_seed(seed)
    r = torch.randint(0, 9, (n, K), generator=g).double() / 8  # dyadic: exact in float32
    r[:3] = 0.5  # the first group has zero spread in every column
    return r


ADV_CASES = [
    # (aggregation, scale, G, K, weights)
    ("sum_then_normalize", "group", 3, 2, [1.0, 0.5]),
    ("sum_then_normalize", "batch", 3, 2, [1.0, 0.5]),
    ("sum_then_normalize", "none", 3, 2, [1.0, 0.5]),
    ("sum_then_normalize", "group", 4, 3, [2.0, 1.0, 0.25]),
    ("sum_then_normalize", "group", 2, 1, [1.0]),
    ("normalize_then_sum", "group", 3, 2, [1.0, 0.5]),
    ("normalize_then_sum", "group", 4, 3, [2.0, 1.0, 0.25]),
    ("normalize_then_sum", "group", 2, 2, [1.0, 1.0]),
]


@pytest.mark.parametrize("aggregation,scale,G,K,weights", ADV_CASES)
def test_advantages_match_trl(tiny_model, aggregation, scale, G, K, weights):
    P = 4
    for seed in range(2):
        rewards = _random_rewards(seed, P * G, K)
        theirs = _trl_advantages(tiny_model, rewards, weights, G, aggregation, scale)
        ours = _zoo_advantages(rewards, weights, G, aggregation, scale)
        torch.testing.assert_close(ours.double(), theirs, **TOL)
        assert theirs.abs().max() > 0.1


def test_normalize_then_sum_gdpo_collapse_vectors_through_trl(tiny_model):
    """ALGORITHMS.md section 2 example: GDPO keeps (0,1) and (0,2) apart; TRL agrees with us."""
    # G = 2; prompts with two binary rewards giving totals (0,1), (0,2), (1,2)
    r1 = torch.tensor([0.0, 1.0, 0.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    r2 = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 1.0], dtype=torch.float64)
    rewards = torch.stack([r1, r2], 1)
    theirs = _trl_advantages(tiny_model, rewards, [1.0, 1.0], 2, "normalize_then_sum", "group")
    ours = _zoo_advantages(rewards, [1.0, 1.0], 2, "normalize_then_sum", "group")
    torch.testing.assert_close(ours.double(), theirs, **TOL)
    # the (0,2) group gets twice the spread of the (0,1) group before the batch step
    assert float(theirs[3] - theirs[2]) == pytest.approx(2 * float(theirs[1] - theirs[0]), rel=1e-6)
