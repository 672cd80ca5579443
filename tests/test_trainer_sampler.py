"""The lean sampler of the transformers backend: greedy parity with generate(), filtering, log-probs, EOS."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo.trainer import sampler
from grpo_zoo.trainer.engine import Engine
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.types import RolloutRequest, Task


@pytest.fixture(scope="module")
def tiny():
    model, tok = load_model_and_tokenizer("tiny-random")
    return model.eval(), tok


def _prompts(tok):
    return [tok(q, add_special_tokens=False)["input_ids"] for q in ("Hello there", "What is 2 + 2? Think.", "x")]


def test_greedy_matches_generate_with_padding_and_early_stops(tiny):
    model, tok = tiny
    prompts, counts = _prompts(tok), [2, 1, 3]
    # stop tokens that greedy decoding actually emits, so rows finish at different steps
    rows = [p for p, n in zip(prompts, counts) for _ in range(n)]
    plen = max(map(len, rows))
    ids = torch.tensor([[tok.pad_token_id] * (plen - len(p)) + p for p in rows])
    attn = (torch.arange(plen)[None, :] >= torch.tensor([plen - len(p) for p in rows])[:, None]).long()
    free = model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=12,
                          pad_token_id=tok.pad_token_id, eos_token_id=[])[:, plen:]
    eos = sorted({int(free[0, 3]), int(free[3, 6])})
    ref = model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=12,
                         pad_token_id=tok.pad_token_id, eos_token_id=eos)[:, plen:].tolist()
    want = []
    for r in ref:
        cut = next((k + 1 for k, t in enumerate(r) if t in eos), len(r))
        want.append(r[:cut])
    got, logps = sampler.sample(model, prompts, counts, max_new_tokens=12, eos_ids=eos, pad_id=tok.pad_token_id,
                                temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert got == want
    assert len({len(g) for g in got}) > 1  # rows really stopped at different steps
    assert [len(lp) for lp in logps] == [len(g) for g in got]


def test_sample_logp_equals_training_logprobs(tiny):
    model, tok = tiny
    engine = Engine(model, tok, temperature=0.8)
    prompts, counts = _prompts(tok), [3, 2, 1]
    comps, logps = sampler.sample(model, prompts, counts, max_new_tokens=10, eos_ids=[tok.eos_token_id],
                                  pad_id=tok.pad_token_id, temperature=0.8, top_p=0.9,
                                  generator=torch.Generator().manual_seed(1))
    rows = [p for p, n in zip(prompts, counts) for _ in range(n)]
    with torch.no_grad():
        want, mask = engine.logprobs(rows, comps)
    for i, lp in enumerate(logps):
        torch.testing.assert_close(torch.tensor(lp), want[i, : len(lp)], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("top_k, top_p", [(0, 1.0), (5, 1.0), (0, 0.8), (50, 0.9)])
def test_filters_match_transformers(top_k, top_p):
    from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    logits = torch.randn(4, 300, generator=torch.Generator().manual_seed(2)) * 3
    want = TemperatureLogitsWarper(0.7)(None, logits.clone())
    if top_k:
        want = TopKLogitsWarper(top_k)(None, want)
    if top_p < 1.0:
        want = TopPLogitsWarper(top_p)(None, want)
    got, scaled = sampler.process_logits(logits, 0.7, top_k, top_p)
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    torch.testing.assert_close(got[~torch.isinf(got)], want[~torch.isinf(want)])
    torch.testing.assert_close(scaled, logits / 0.7)


def test_inverse_cdf_sampling_follows_the_distribution():
    probs = torch.tensor([0.1, 0.0, 0.6, 0.3])
    logits = probs.log().expand(20000, 4).contiguous()
    idx, lse = sampler.sample_rows(logits, torch.Generator().manual_seed(3))
    torch.testing.assert_close(lse, torch.logsumexp(logits, -1))
    freq = torch.bincount(idx, minlength=4).float() / idx.numel()
    assert freq[1] == 0
    torch.testing.assert_close(freq, probs, atol=0.015, rtol=0)


def test_engine_generate_groups_seeds_and_chunks(tiny):
    model, tok = tiny
    engine = Engine(model, tok)
    tasks = [Task(id=f"t{i}", prompt=q) for i, q in enumerate(["Hi", "What is 3 + 4?", "Name a colour."])]
    req = RolloutRequest(tasks=tasks, prompts=[[{"role": "user", "content": t.prompt}] for t in tasks], budgets=[3, 1, 4])

    class S:
        temperature, top_p, top_k, max_new_tokens, batch_size = 1.0, 1.0, 0, 6, 3

    a = engine.generate(req, S, seed=7)
    b = engine.generate(req, S, seed=7)
    S.batch_size = 64
    c = engine.generate(req, S, seed=8)
    assert a.group.tolist() == [0, 0, 0, 1, 2, 2, 2, 2]
    assert a.completion_ids == b.completion_ids  # seeded
    assert a.completion_ids != c.completion_ids
    assert a.prompt_ids[0] == engine.encode(a.prompt_text[0]) and a.prompt_text[3] != a.prompt_text[0]
    assert all(len(x) == len(y) for x, y in zip(a.sample_logp, a.completion_ids))
    assert all(1 <= len(x) <= 6 for x in a.completion_ids)
    assert not a.sample_logp[0].is_inference() and not a.group.is_inference()  # usable in autograd later
