"""The fast paths stay on: the default model's architecture (Llama), GPT-2 and Qwen2 use the lean sampler
and the shared-prompt log-prob path with the installed transformers, without deprecation notices; a model
that cannot use them falls back with one warning that names it, and the manifest records which path ran."""
from __future__ import annotations

import logging
import warnings

import pytest
import torch
from transformers import LlamaForCausalLM

from grpo_zoo.trainer import compat
from grpo_zoo.trainer.engine import Engine
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.types import RolloutRequest, Task

from .test_architectures import _build


class Sampling:
    temperature, top_p, top_k, max_new_tokens, batch_size = 1.0, 1.0, 0, 5, 8


def _request():
    tasks = [Task(id=f"t{i}", prompt=q) for i, q in enumerate(["What is 3 + 4?", "Name a colour."])]
    return RolloutRequest(tasks=tasks, prompts=[[{"role": "user", "content": t.prompt}] for t in tasks], budgets=[3, 2])


class _Notices(logging.Handler):
    """transformers reports deprecations through its own loggers (which do not propagate), not warnings."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


@pytest.fixture(params=["llama", "gpt2", "qwen2"])
def model_tok(request, tmp_path):
    if request.param == "llama":
        model, tok = load_model_and_tokenizer("tiny-random")
        assert type(model) is LlamaForCausalLM  # SmolLM2-135M, the default model, is a Llama
    else:
        model, tok = load_model_and_tokenizer(_build(request.param, tmp_path / request.param))
    return model.eval(), tok


def test_fast_paths_are_used_without_deprecation_notices(model_tok):
    model, tok = model_tok
    notices = _Notices()
    root = logging.getLogger("transformers")
    root.addHandler(notices)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a FutureWarning/DeprecationWarning fails the test
            engine = Engine(model, tok)
            out = engine.generate(_request(), Sampling, seed=3)
            with torch.no_grad():
                engine.logprobs(out.prompt_ids, out.completion_ids)
    finally:
        root.removeHandler(notices)
    assert compat.lean_unsupported_reason(model) is None
    assert engine.paths() == {"sampler": "lean", "logprobs": "shared_prompt", "fallback_reason": None}
    assert out.sample_logp is not None and all(len(a) == len(b) for a, b in zip(out.sample_logp, out.completion_ids))
    assert not [m for m in notices.records if "deprecat" in m.lower()], notices.records


def test_cache_argument_follows_the_model_signature():
    class New(torch.nn.Module):
        def forward(self, input_ids=None, cache=None, past_key_values=None):  # both: the new name wins
            pass

    class Old(torch.nn.Module):
        def forward(self, input_ids=None, past_key_values=None):
            pass

    class NoCache(torch.nn.Module):
        def forward(self, input_ids=None, **kwargs):
            pass

    assert compat.cache_kwarg(New()) == "cache"
    assert compat.cache_kwarg(Old()) == "past_key_values"
    assert compat.cache_kwarg(NoCache()) is None


class _NoCacheLlama(LlamaForCausalLM):
    """A decoder whose forward does not name a cache argument: the lean sampler cannot drive it."""

    def forward(self, input_ids=None, attention_mask=None, position_ids=None, **kwargs):
        return super().forward(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, **kwargs)


def test_unsupported_model_warns_once_and_falls_back(tmp_path):
    model, tok = load_model_and_tokenizer("tiny-random")
    model.__class__ = _NoCacheLlama
    with pytest.warns(RuntimeWarning, match=r"_NoCacheLlama: its forward\(\) takes no cache") as record:
        engine = Engine(model.eval(), tok)
    assert len(record) == 1
    assert engine.paths()["sampler"] == "hf_generate" and engine.paths()["logprobs"] == "packed"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # not repeated at every call
        out = engine.generate(_request(), Sampling, seed=3)
    assert len(out.completion_ids) == 5 and all(len(a) == len(b) for a, b in zip(out.sample_logp, out.completion_ids))


def test_manifest_records_paths_and_versions(tmp_path):
    import json

    from grpo_zoo.trainer.loop import train

    _, run = train({"model": "tiny-random", "sampling": {"group_size": 2, "max_new_tokens": 4},
                    "task": {"size": 4}, "train": {"steps": 1, "prompts_per_step": 2}},
                   out=str(tmp_path / "run"), progress=False)
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["engine"] == {"sampler": "lean", "logprobs": "shared_prompt", "fallback_reason": None}
    assert set(manifest["versions"]) == {"torch", "transformers", "accelerate", "trl"}
    import transformers

    assert manifest["versions"]["transformers"] == transformers.__version__


def test_lora_model_keeps_the_fast_paths():
    """A peft model hides the base forward behind *args/**kwargs: the engine drives its base model,
    whose injected LoRA layers run, so LoRA runs keep the lean sampler and shared-prompt log-probs."""
    peft = pytest.importorskip("peft")
    model, tok = load_model_and_tokenizer("tiny-random")
    lora = peft.get_peft_model(model, peft.LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        engine = Engine(lora.eval(), tok)
    assert engine.paths()["sampler"] == "lean" and engine.paths()["logprobs"] == "shared_prompt"
    out = engine.generate(_request(), Sampling, seed=3)
    with torch.no_grad():
        shared, mask = engine.logprobs(out.prompt_ids, out.completion_ids)
        packed, _ = engine.logprobs(out.prompt_ids, out.completion_ids, share_prompts=False)
    torch.testing.assert_close(shared[mask], packed[mask], atol=1e-5, rtol=1e-5)
    for lp, row, m in zip(out.sample_logp, shared, mask):
        torch.testing.assert_close(lp, row[m], atol=1e-4, rtol=1e-4)  # sampled by the adapted model
