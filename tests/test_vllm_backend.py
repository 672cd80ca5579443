"""sampling.backend = "vllm" (TRL 1.16's VLLMGeneration, vLLM 0.33): needs vLLM and CUDA, so CI skips the
run itself; the clear error without them runs everywhere."""
from __future__ import annotations

import importlib.util

import pytest
import torch

from grpo_zoo.trainer.vllm_backend import generate_vllm
from grpo_zoo.types import RolloutRequest, Task

HAVE_VLLM = importlib.util.find_spec("vllm") is not None and torch.cuda.is_available()


@pytest.mark.skipif(HAVE_VLLM, reason="vLLM and CUDA are present")
def test_without_vllm_or_cuda_the_error_says_what_is_missing(zoo_context):
    ctx = zoo_context(config={"sampling": {"backend": "vllm"}})
    req = RolloutRequest(tasks=[Task(id="t", prompt="1+1?")], prompts=["1+1?"], budgets=[2])
    with pytest.raises(RuntimeError, match="sampling.backend = 'vllm' needs"):
        generate_vllm(ctx, req)


@pytest.mark.skipif(not HAVE_VLLM, reason="needs vLLM (pip install grpo-zoo[vllm]) and a CUDA device")
def test_colocated_vllm_trains_with_synced_weights(zoo_train_step):  # pragma: no cover - not run in CI
    cfg = {"sampling": {"backend": "vllm", "vllm": {"gpu_memory_utilization": 0.2}},
           "loss": {"behavior_correction": "token_truncate"}, "train": {"lr": 1e-2}}
    res = zoo_train_step(config=cfg, steps=2)
    for m in res.metrics:
        # weights copied in after every update: vLLM's and the trainer's log-probs stay close
        assert m["behavior/logp_diff/mean"] < 0.05, m
        assert m["rollouts"] == 6
