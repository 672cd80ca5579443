"""Any causal LM folder works: the engine's completion-only log-probs and the lean sampler are exact
on architectures other than Llama (GPT-2: learned absolute positions; Qwen2: attention biases)."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo.trainer import sampler
from grpo_zoo.trainer.engine import Engine
from grpo_zoo.trainer.models import load_model_and_tokenizer, tiny_model_path


def _build(kind: str, folder):
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel, Qwen2Config, Qwen2ForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_model_path()))
    ids = dict(vocab_size=len(tok), bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
               pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    if kind == "gpt2":
        model = GPT2LMHeadModel(GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=256, **ids))
    else:
        model = Qwen2ForCausalLM(Qwen2Config(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                             num_attention_heads=4, num_key_value_heads=2,
                                             max_position_embeddings=256, **ids))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return str(folder)


@pytest.fixture(scope="module", params=["gpt2", "qwen2"])
def arch(request, tmp_path_factory):
    path = _build(request.param, tmp_path_factory.mktemp(request.param))
    model, tok = load_model_and_tokenizer(path)  # a plain local folder, as `model = "/path"` in a config
    return model.eval(), tok


def _full_forward_logp(model, p, c):
    logits = model(input_ids=torch.tensor([p + c])).logits[0].float()
    pos = torch.arange(len(p) - 1, len(p) + len(c) - 1)
    return torch.log_softmax(logits, -1)[pos, torch.tensor(c)]


@pytest.mark.parametrize("share", [False, True])
def test_completion_logprobs_equal_full_forward(arch, share):
    model, tok = arch
    engine = Engine(model, tok)
    g = torch.Generator().manual_seed(0)
    uniq = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in (5, 11, 2)]
    prompts = [uniq[k] for k in (0, 1, 1, 2, 0)]
    comps = [torch.randint(3, 1000, (n,), generator=g).tolist() for n in (6, 1, 9, 3, 4)]
    with torch.no_grad():
        logp, mask = engine.logprobs(prompts, comps, share_prompts=share)
        for i, (p, c) in enumerate(zip(prompts, comps)):
            torch.testing.assert_close(logp[i, : len(c)], _full_forward_logp(model, p, c), atol=1e-5, rtol=1e-5)
    assert mask.sum(-1).tolist() == [6, 1, 9, 3, 4]


def test_sampler_greedy_matches_generate_and_logp_matches_training(arch):
    model, tok = arch
    prompts = [tok(q, add_special_tokens=False)["input_ids"] for q in ("Hello there", "What is 2 + 2? Think.")]
    plen = max(map(len, prompts))
    ids = torch.tensor([[tok.pad_token_id] * (plen - len(p)) + p for p in prompts])
    attn = (ids != tok.pad_token_id).long()
    attn[:, -1] = 1
    want = model.generate(input_ids=ids, attention_mask=attn, do_sample=False, max_new_tokens=8,
                          pad_token_id=tok.pad_token_id, eos_token_id=[])[:, plen:].tolist()
    got, logps = sampler.sample(model, prompts, [1, 1], max_new_tokens=8, eos_ids=[], pad_id=tok.pad_token_id,
                                temperature=1.0, top_k=1, generator=torch.Generator().manual_seed(0))
    assert got == want  # left padding handled: positions and attention as generate() has them
    with torch.no_grad():
        train, _ = Engine(model, tok).logprobs(prompts, got)
    for i, lp in enumerate(logps):
        torch.testing.assert_close(torch.tensor(lp), train[i, : len(lp)], atol=1e-4, rtol=1e-4)
