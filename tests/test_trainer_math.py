"""Trainer numerics: completion-only log-probs, gradient accumulation, num_iterations, the reference model."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo import hookimpl
from grpo_zoo.context import make_context
from grpo_zoo.testing import BASE_CONFIG, KitReward, merge
from grpo_zoo.trainer.engine import Engine
from grpo_zoo.trainer.loop import Trainer
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.trainer.step import collect, policy_update


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model_and_tokenizer("tiny-random")
    return model.eval(), tok


def _full_forward_logp(model, p, c, temperature=1.0):
    ids = torch.tensor([p + c])
    logits = model(input_ids=ids).logits[0].float() / temperature
    logp = torch.log_softmax(logits, -1)
    pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
    return logp[pos, torch.tensor(c)]


@pytest.mark.parametrize("temperature", [1.0, 0.7])
def test_completion_only_logprobs_equal_full_forward(tiny, temperature):
    model, tok = tiny
    engine = Engine(model, tok, temperature=temperature)
    g = torch.Generator().manual_seed(0)
    prompts = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in (5, 11, 2, 7)]
    comps = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in (6, 1, 9, 3)]
    with torch.no_grad():
        logp, mask = engine.logprobs(prompts, comps)
    assert logp.shape == mask.shape == (4, 9)
    assert mask.sum(-1).tolist() == [6, 1, 9, 3]
    for i, (p, c) in enumerate(zip(prompts, comps)):
        with torch.no_grad():
            want = _full_forward_logp(model, p, c, temperature)
        torch.testing.assert_close(logp[i, : len(c)], want, atol=1e-5, rtol=1e-5)
        assert torch.all(logp[i, len(c) :] == 0)


def test_logprobs_match_what_generate_sampled_with_left_padding(tiny):
    """The loss scores tokens in the same context generate() sampled them in (positions despite padding)."""
    model, tok = tiny
    engine = Engine(model, tok)
    prompts = [engine.encode(engine.render([{"role": "user", "content": q}])) for q in ("Hi", "What is 12 + 30 - 7?")]
    plen = max(map(len, prompts))
    ids = torch.full((2, plen), tok.pad_token_id)
    attn = torch.zeros_like(ids)
    for r, p in enumerate(prompts):
        ids[r, plen - len(p) :] = torch.tensor(p)
        attn[r, plen - len(p) :] = 1
    torch.manual_seed(0)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=attn, do_sample=True, top_k=0, max_new_tokens=6,
                             output_logits=True, return_dict_in_generate=True, pad_token_id=tok.pad_token_id)
        comps = out.sequences[:, plen:].tolist()
        sampled = torch.stack([torch.log_softmax(l.float(), -1) for l in out.logits], 1)  # [B, T, V]
        want = sampled.gather(-1, out.sequences[:, plen:, None]).squeeze(-1)
        got, _ = engine.logprobs(prompts, comps)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


# ------------------------------------------------------------------ gradient accumulation
class GradCapture:
    """Optimizer stand-in: records the gradients at step() and leaves the weights alone."""

    def __init__(self, params):
        self.params = list(params)
        self.grads = None

    def zero_grad(self, set_to_none=True):
        for p in self.params:
            p.grad = None

    def step(self):
        self.grads = [p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p) for p in self.params]


class NoSchedule:
    def step(self):
        pass

    def get_last_lr(self):
        return [0.0]


def _trainer(tmp_path, config):
    raw = merge(BASE_CONFIG, config)
    raw["plugins"] = ["kit_reward"]
    ctx = make_context(raw, extra_plugins={"kit_reward": KitReward()})
    return Trainer(ctx, tmp_path / "run", progress=False)


@pytest.fixture(scope="module")
def accum(tmp_path_factory):
    """One trainer and one batch of rollouts with ragged prompt and completion lengths."""
    cfg = {"sampling": {"group_size": 3, "max_new_tokens": 8}, "train": {"prompts_per_step": 4, "grad_clip": 0.0}}
    trainer = _trainer(tmp_path_factory.mktemp("accum"), cfg)
    ctx = trainer.ctx
    rollouts = collect(ctx, ctx.hooks.select_tasks(ctx, trainer.source, 0, 4))
    g = torch.Generator().manual_seed(1)
    rollouts.completion_ids = [c[: int(torch.randint(1, len(c) + 1, (1,), generator=g))] for c in rollouts.completion_ids]
    ctx.compute_advantages(rollouts)
    rollouts.advantages = torch.randn(len(rollouts), generator=g)
    assert len(set(map(len, rollouts.prompt_ids))) > 1 and len(set(map(len, rollouts.completion_ids))) > 1
    return trainer, rollouts


def _grads(trainer, rollouts, loss_type, micro):
    ctx = trainer.ctx
    ctx.config.loss.type = loss_type
    ctx.config.train.micro_batch_size = micro
    opt = GradCapture(ctx.engine.model.parameters())
    policy_update(ctx, rollouts, opt, NoSchedule())
    return opt.grads


@pytest.mark.parametrize("loss_type", ["grpo", "dapo", "dr_grpo", "gspo"])
def test_gradient_accumulation_matches_one_batch(accum, loss_type):
    trainer, rollouts = accum
    whole = _grads(trainer, rollouts, loss_type, micro=len(rollouts))
    for micro in (2, 8):
        parts = _grads(trainer, rollouts, loss_type, micro=micro)
        assert any(float(g.abs().sum()) > 0 for g in whole)
        for a, b in zip(whole, parts):
            # float32 sums in another order per micro-batch split (and per attention kernel across
            # transformers releases) differ by ~1e-7; a wrong normalizer is off by a factor
            torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)


def test_bnpo_normalizes_by_local_tokens(accum):
    """bnpo's normalizer is the micro-batch's own token count: one micro-batch equals dapo."""
    trainer, rollouts = accum
    for a, b in zip(_grads(trainer, rollouts, "bnpo", len(rollouts)), _grads(trainer, rollouts, "dapo", len(rollouts))):
        torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-4)


# ------------------------------------------------------------------ num_iterations and the reference model
class RatioProbe:
    """Wraps the policy loss to record how far the current log-probs are from the old ones."""

    def __init__(self):
        self.gaps: list[float] = []
        self.old_requires_grad: list[bool] = []

    @hookimpl(wrapper=True)
    def zoo_policy_loss(self, ctx, inputs):
        gap = ((inputs.logp.detach() - inputs.old_logp).abs() * inputs.mask).max()
        self.gaps.append(float(gap))
        self.old_requires_grad.append(inputs.old_logp.requires_grad)
        return (yield)


def test_num_iterations_reuses_rollouts_with_frozen_old_logprobs(zoo_train_step):
    probe = RatioProbe()
    res = zoo_train_step(
        plugins={"probe": probe},
        config={"loss": {"num_iterations": 3}, "train": {"lr": 5e-2, "micro_batch_size": 8}},
        steps=1,
    )
    assert len(probe.gaps) == 3  # one micro-batch, three passes over the same rollouts
    assert probe.gaps[0] < 1e-5  # the first pass runs on the sampling weights: ratio 1
    assert probe.gaps[1] > 1e-4 and probe.gaps[2] > 1e-4  # later passes see the updated policy
    assert not any(probe.old_requires_grad)
    row = res.last
    assert row["lr"] == pytest.approx(5e-2) and "clip_frac" in row


def test_beta_zero_has_no_reference_model(zoo_train_step):
    res = zoo_train_step(steps=1)
    assert res.ctx.engine.ref_scorer is None
    assert "kl" not in res.last


def test_beta_creates_reference_model_and_logs_kl(zoo_train_step):
    res = zoo_train_step(config={"loss": {"beta": 0.1}, "train": {"lr": 5e-2}}, steps=3)
    engine = res.ctx.engine
    assert engine.ref_scorer is not None
    ref = engine.ref_scorer.model
    assert ref is not engine.model and not any(p.requires_grad for p in ref.parameters())
    kls = [r["kl"] for r in res.metrics]
    assert kls[0] == pytest.approx(0.0, abs=1e-6)  # the policy starts at the reference
    assert kls[-1] > 0
    # the reference stays frozen: it still equals the initial weights
    init, _ = load_model_and_tokenizer("tiny-random")
    for (n, a), b in zip(ref.state_dict().items(), init.state_dict().values()):
        assert torch.equal(a, b), n


def test_shared_prompt_layout_equals_packed_layout(tiny):
    """Running each distinct prompt once and reusing its KV cache gives the same log-probs and gradients."""
    model, tok = tiny
    model.train()
    engine = Engine(model, tok, temperature=0.9)
    g = torch.Generator().manual_seed(5)
    uniq = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in (4, 9, 6)]
    prompts = [uniq[k] for k in (0, 0, 1, 1, 1, 2, 0)]
    comps = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in (3, 1, 7, 2, 5, 4, 6)]
    weights = torch.randn(len(prompts), 7, generator=g)
    results = []
    for share in (False, True):
        model.zero_grad(set_to_none=True)
        logp, mask = engine.logprobs(prompts, comps, share_prompts=share)
        (logp * weights * mask).sum().backward()
        results.append((logp.detach(), [p.grad.clone() for p in model.parameters()]))
    model.eval()
    torch.testing.assert_close(results[0][0], results[1][0], atol=1e-5, rtol=1e-5)
    for a, b in zip(results[0][1], results[1][1]):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-4)
    # one-token completions only: the completion pass is skipped
    with torch.no_grad():
        a, _ = engine.logprobs(prompts[:3], [[5], [6], [7]], share_prompts=True)
        b, _ = engine.logprobs(prompts[:3], [[5], [6], [7]], share_prompts=False)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_zero_advantage_rollouts_are_skipped_without_changing_gradients(accum):
    """Rollouts with advantage 0 (all-equal groups) are left out of the forward/backward: same gradient."""
    from grpo_zoo.trainer import step

    trainer, rollouts = accum
    ctx = trainer.ctx
    saved = rollouts.advantages.clone()
    rollouts.advantages[:6] = 0.0  # two whole groups of 3 teach nothing
    try:
        for loss_type in ("grpo", "dapo", "dr_grpo", "gspo"):
            ctx.config.loss.type = loss_type
            assert step.skippable(ctx, rollouts)[:6].all()
            fast = _grads(trainer, rollouts, loss_type, micro=4)
            orig = step.skippable
            step.skippable = lambda ctx, r: None  # the slow path: every rollout runs
            try:
                slow = _grads(trainer, rollouts, loss_type, micro=4)
            finally:
                step.skippable = orig
            for a, b in zip(fast, slow):
                torch.testing.assert_close(a, b, atol=1e-7, rtol=1e-4)
        ctx.config.loss.type = "bnpo"  # its normalizer counts the micro-batch's tokens: nothing is skipped
        assert step.skippable(ctx, rollouts) is None
        ctx.config.loss.type = "grpo"
        ctx.config.loss.beta = 0.1  # the KL term has a gradient whatever the advantage
        assert step.skippable(ctx, rollouts) is None
    finally:
        ctx.config.loss.beta = 0.0
        ctx.config.loss.type = "grpo"
        rollouts.advantages = saved


def test_all_zero_advantages_still_step_the_optimizer(zoo_train_step):
    """A step whose rollouts all have advantage 0 still runs AdamW (zero gradients: momentum carries on)."""
    res = zoo_train_step(kit_reward=False, steps=2, config={"train": {"lr": 1e-2}})
    assert all(r["advantage/abs_mean"] == 0 for r in res.metrics)
    assert all(r["grad_norm"] == 0 for r in res.metrics)
    from grpo_zoo.trainer.checkpoint import read_state

    state = read_state(res.run_dir / "checkpoints" / "step-000001")
    assert all(float(s["step"]) == 2 for s in state["optimizer"]["state"].values())


def test_length_buckets_partition_rows():
    from grpo_zoo.trainer.engine import length_buckets

    lengths = [96, 70, 50, 30, 10, 96, 60, 55, 54, 53, 20, 5, 96, 96, 40, 41]
    buckets = length_buckets(lengths)
    assert sorted(i for b in buckets for i in b) == list(range(len(lengths)))
    padded = sum(len(b) * max(lengths[i] for i in b) for b in buckets)
    assert padded < len(lengths) * max(lengths)  # less padding than one batch
    assert length_buckets([5] * 8) == [list(range(8))]  # equal lengths: one forward


def test_behavior_prompts_give_the_old_logprobs_of_the_sampling_context(accum, monkeypatch):
    """Rollouts trained in one context but sampled in another: old log-probs come from the latter."""
    from grpo_zoo.trainer.step import loss_order

    trainer, rollouts = accum
    ctx, engine = trainer.ctx, trainer.ctx.engine
    n = len(rollouts)
    behavior = [None] * n
    for i in (0, 4, 5):
        behavior[i] = rollouts.prompt_ids[(i + 3) % n][::-1] + [7]  # some other context
    seen = []
    real = ctx.hooks.policy_loss

    def spy(c, inputs):
        seen.append((inputs.logp.detach().clone(), inputs.old_logp.clone(), inputs.mask.clone()))
        return real(c, inputs)

    monkeypatch.setattr(ctx.hooks, "policy_loss", spy)
    rollouts.behavior_prompt_ids = behavior
    try:
        _grads(trainer, rollouts, "grpo", micro=n)  # one micro-batch, rows in loss order
    finally:
        rollouts.behavior_prompt_ids = None
    (logp, old, mask), = seen
    order = loss_order(rollouts, list(range(n)))
    for r, i in enumerate(order):
        m = mask[r]
        if behavior[i] is None:  # the ordinary ratio: exactly 1
            assert torch.equal(old[r][m], logp[r][m])
            continue
        with torch.no_grad():
            want, _ = engine.logprobs([behavior[i]], [rollouts.completion_ids[i]])
        torch.testing.assert_close(old[r][m], want[0][: int(m.sum())], atol=1e-5, rtol=1e-5)
        assert (old[r][m] - logp[r][m]).abs().max() > 1e-3  # a different context: the ratio is not 1
