"""train.gradient_checkpointing: the shared-prompt and packed log-prob paths give the unchecked
gradients (fp32, 1e-5), and checkpointing really reruns the decoder layers in backward."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo.trainer.engine import Engine, enable_gradient_checkpointing
from grpo_zoo.trainer.models import load_model_and_tokenizer

PROMPTS = [[5, 17, 33, 2], [5, 17, 33, 2], [5, 17, 33, 2], [9, 40, 41], [9, 40, 41], [7, 7, 8, 12, 30]]
COMPLETIONS = [[101, 102, 103], [104], [105, 106, 107, 108, 109], [110, 111], [112, 113, 114, 115], [116, 117, 118]]


def _grads(checkpointing: bool, share: bool):
    model, tok = load_model_and_tokenizer("tiny-random")
    model.train()
    if checkpointing:
        enable_gradient_checkpointing(model)
    engine = Engine(model, tok)
    calls = []
    inner = model.model.layers[0].mlp  # called again when backward reruns its (checkpointed) layer
    handle = inner.register_forward_pre_hook(lambda m, a, k: calls.append(torch.is_grad_enabled()), with_kwargs=True)
    logp, mask = engine.logprobs(PROMPTS, COMPLETIONS, share_prompts=share)
    weights = torch.linspace(-1.0, 1.5, logp.numel()).reshape(logp.shape)
    forward_calls = len(calls)
    (logp * weights * mask).sum().backward()
    handle.remove()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    return logp.detach(), grads, forward_calls, len(calls) - forward_calls


@pytest.mark.parametrize("share", [True, False], ids=["shared-prompt", "packed"])
def test_checkpointed_gradients_equal_unchecked(share):
    lp0, g0, _, reruns0 = _grads(False, share)
    lp1, g1, fwd1, reruns1 = _grads(True, share)
    assert reruns0 == 0
    assert reruns1 == fwd1 > 0, "checkpointing did not rerun the layer in backward"
    torch.testing.assert_close(lp1, lp0, rtol=0, atol=1e-6)
    assert g0.keys() == g1.keys() and len(g0) > 5
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-5, atol=1e-5, msg=name)


def test_a_model_without_checkpointing_support_is_named():
    class Plain(torch.nn.Module):
        supports_gradient_checkpointing = False

    with pytest.raises(ValueError, match="Plain does not support gradient checkpointing"):
        enable_gradient_checkpointing(Plain())
