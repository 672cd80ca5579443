"""[peft]: LoRA through peft. Only the adapter trains; with beta > 0 the reference is the same model
with the adapter off (the base model's log-probs, no second copy); checkpoints hold the adapter and a
resumed run matches an uninterrupted one; the sampler samples from the adapted model; merged weights."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("peft")

from grpo_zoo.context import make_context  # noqa: E402
from grpo_zoo.testing import BASE_CONFIG, KitReward, merge  # noqa: E402
from grpo_zoo.trainer import checkpoint  # noqa: E402
from grpo_zoo.trainer.loop import Trainer  # noqa: E402
from grpo_zoo.trainer.models import load_model_and_tokenizer  # noqa: E402
from grpo_zoo.trainer.rundir import read_jsonl  # noqa: E402
from grpo_zoo.types import RolloutRequest, Task  # noqa: E402

LORA = {
    "peft": {"enabled": True, "r": 4, "alpha": 8, "target_modules": ["q_proj", "v_proj", "up_proj"]},
    "loss": {"beta": 0.1},
    "train": {"lr": 5e-2, "checkpoint_every": 1},
}
PROMPTS = [[5, 17, 33, 2], [5, 17, 33, 2], [9, 40, 41]]
COMPLETIONS = [[101, 102, 103], [104, 105], [106, 107, 108, 109]]


def _trainer(run_dir, steps=2, extra=None, resume=False):
    raw = merge(merge(BASE_CONFIG, LORA), extra or {})
    raw["train"]["steps"] = steps
    raw["plugins"] = ["kit_reward"]
    ctx = make_context(raw, extra_plugins={"kit_reward": KitReward()})
    return Trainer(ctx, run_dir, resume=resume, progress=False)


def test_only_the_adapter_trains_and_the_reference_is_the_base_model(tmp_path):
    trainer = _trainer(tmp_path / "run")
    model = trainer.ctx.engine.model
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    assert sum(len(g["params"]) for g in trainer.optimizer.param_groups) == len(trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    metrics = trainer.run()
    assert metrics["grad_norm"] > 0 and metrics["kl"] > 0
    after = dict(model.named_parameters())
    assert all(torch.equal(before[n], after[n]) for n in before if n not in trainable), "a base weight moved"
    assert any(not torch.equal(before[n], after[n]) for n in trainable), "the adapter never moved"

    engine = trainer.ctx.engine
    base, _ = load_model_and_tokenizer("tiny-random")
    assert engine.ref_scorer.model is model  # no second copy
    with torch.no_grad():
        ref, mask = engine.logprobs(PROMPTS, COMPLETIONS, scorer=engine.ref_scorer)
        policy, _ = engine.logprobs(PROMPTS, COMPLETIONS)
        engine_base = type(engine)(base, engine.tokenizer)
        expected, _ = engine_base.logprobs(PROMPTS, COMPLETIONS)
    torch.testing.assert_close(ref[mask], expected[mask], rtol=0, atol=1e-6)
    assert (policy[mask] - ref[mask]).abs().max() > 1e-4  # the adapter changed the policy
    # the sampler uses the adapted model: the adapter's modules run while sampling
    lora_calls = []
    lora_a = next(m for n, m in model.named_modules() if n.endswith("q_proj.lora_A.default"))
    lora_a.register_forward_hook(lambda *a: lora_calls.append(1))
    req = RolloutRequest(tasks=[Task(id="a", prompt="2+2=")], prompts=["2+2="], budgets=[2])
    engine.generate(req, trainer.ctx.config.sampling, seed=3)
    assert lora_calls


def test_adapter_checkpoint_resume_matches_and_merged_weights(tmp_path):
    full = tmp_path / "full"
    whole = _trainer(full, steps=3, extra={"peft": {"save_merged": True}})
    whole.run()
    ckpt = checkpoint.latest(full)
    assert (ckpt / "model" / "adapter_config.json").exists() and (ckpt / "model" / "adapter_model.safetensors").exists()
    assert not (ckpt / "model" / "model.safetensors").exists()  # the adapter only, not a second full model

    part = tmp_path / "part"
    _trainer(part, steps=2).run()
    resumed = _trainer(part, steps=3, resume=True)
    assert resumed.start_step == 2
    resumed.run()
    a, b = read_jsonl(full / "metrics.jsonl"), read_jsonl(part / "metrics.jsonl")
    assert [r["step"] for r in b] == [0, 1, 2]
    for ra, rb in zip(a, b):
        for k in ("loss", "kl", "grad_norm", "reward/mean"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-5, abs=1e-7), (ra["step"], k)

    # merged weights: a plain transformers model whose log-probs are the adapted policy's
    from transformers import AutoModelForCausalLM

    from grpo_zoo.trainer.engine import Engine

    merged = AutoModelForCausalLM.from_pretrained(full / "merged")
    assert not any("lora_" in n for n, _ in merged.named_parameters())
    with torch.no_grad():
        want, m = whole.ctx.engine.logprobs(PROMPTS, COMPLETIONS)
        got, _ = Engine(merged, whole.ctx.engine.tokenizer).logprobs(PROMPTS, COMPLETIONS)
    torch.testing.assert_close(got[m], want[m], rtol=0, atol=1e-5)


def test_bad_target_modules_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"\[peft\] target_modules=\['nope_proj'\]"):
        _trainer(tmp_path / "run", extra={"peft": {"target_modules": ["nope_proj"]}})


def test_save_merged_without_adapter_is_refused():
    from grpo_zoo.config import ConfigError

    with pytest.raises(ConfigError, match="peft.save_merged = true needs peft.enabled = true"):
        make_context(merge(BASE_CONFIG, {"peft": {"save_merged": True}}))
