"""``sampling.backend = "vllm"``: a vLLM engine colocated in the training process (CUDA only).

Written against TRL 1.16 and vLLM 0.33.0; CI has neither vLLM nor a GPU, so
this path is not exercised there (its test is skipped). The engine, its
weight loading under FSDP / ZeRO-3 / PEFT and sleep mode are TRL's
``trl.generation.vllm_generation.VLLMGeneration`` (colocate mode, which asks
vLLM for ``processed_logprobs``: the sampled tokens' log-probs after
temperature, what ``Rollouts.sample_logp`` needs). Generation calls the
engine with one ``SamplingParams`` per prompt, so ragged budgets are
per-prompt sample counts (``n``) and each prompt gets its own seed from
``ctx.sampling_seed``. The weights are copied in after every update by the
``zoo_after_update`` hook (:mod:`.weight_sync`). Tensor parallelism is not
wired (``tensor_parallel_size`` is 1).
"""
from __future__ import annotations

import torch

from ..types import RolloutRequest, Rollouts

_KEY = "_zoo_vllm_generation"  # on the context object: ctx.info is checkpointed, an engine does not pickle


def generation(ctx):
    """This run's TRL ``VLLMGeneration`` (built on first use)."""
    if getattr(ctx, _KEY, None) is not None:
        return getattr(ctx, _KEY)
    try:
        from trl.generation.vllm_generation import VLLMGeneration
    except ImportError as exc:
        raise RuntimeError(f"sampling.backend = 'vllm' needs vLLM: pip install grpo-zoo[vllm] ({exc})") from None
    if not torch.cuda.is_available():
        raise RuntimeError("sampling.backend = 'vllm' needs a CUDA device; use 'transformers' or 'openai' on CPU")
    if ctx.engine is None:
        raise RuntimeError("sampling.backend = 'vllm' needs the trainer's model (ctx.engine is None)")
    from accelerate import Accelerator

    cfg = ctx.config.sampling
    acc = ctx.accelerator or Accelerator()  # one process: accelerate's shared state, as the trainer's
    vg = VLLMGeneration(
        model=acc.unwrap_model(ctx.engine.model),
        accelerator=acc,
        processing_class=ctx.engine.tokenizer,
        mode="colocate",
        gpu_memory_utilization=cfg.vllm.gpu_memory_utilization,
        max_model_length=cfg.vllm.max_model_len,
        enable_sleep_mode=cfg.vllm.enable_sleep_mode,
        temperature=cfg.temperature,
        top_p=cfg.top_p,
        top_k=cfg.top_k,
        max_completion_length=cfg.max_new_tokens,
        logprobs=0,  # the sampled token's own log-prob
    )
    setattr(ctx, _KEY, vg)
    return vg


def generate_vllm(ctx, request: RolloutRequest) -> Rollouts:
    vg = generation(ctx)  # raises a clear error without vLLM or CUDA
    from vllm import SamplingParams

    cfg, engine = ctx.config.sampling, ctx.engine
    texts = [engine.render(p) for p in request.prompts]
    encoded = [engine.encode(t) for t in texts]
    seed = ctx.sampling_seed(request) & 0x7FFFFFFF
    params = [
        SamplingParams(n=n, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k or -1,
                       max_tokens=cfg.max_new_tokens, logprobs=0, seed=(seed + i) & 0x7FFFFFFF)
        for i, n in enumerate(request.budgets)
    ]
    if vg.enable_sleep_mode:  # level-2 sleep dropped the weights: copy them back, then wake the KV cache
        if vg._llm_weights_sleeping:
            vg.sync_weights()
        vg.llm.wake_up(tags=["kv_cache"])
    outputs = vg.llm.generate([{"prompt_token_ids": ids} for ids in encoded], sampling_params=params, use_tqdm=False)
    if vg.enable_sleep_mode:
        vg.llm.sleep(level=2)
        vg._llm_weights_sleeping = True
    group, comps, logps = [], [], []
    for g, out in enumerate(outputs):
        for o in out.outputs:
            group.append(g)
            comps.append(list(o.token_ids))
            # one dict per token with the sampled token's entry (logprobs=0)
            logps.append([lp[t].logprob for t, lp in zip(o.token_ids, o.logprobs)] if o.logprobs else None)
    has = all(x is not None for x in logps)
    return Rollouts(
        tasks=list(request.tasks),
        group=torch.tensor(group, dtype=torch.long),
        prompt_text=[texts[g] for g in group],
        prompt_ids=[encoded[g] for g in group],
        completion_ids=comps,
        completion_text=engine.tokenizer.batch_decode(comps, skip_special_tokens=True),
        sample_logp=[torch.tensor(x, dtype=torch.float32) for x in logps] if has else None,
        weight_version=[ctx.step] * len(group),  # synced after every update
    )


def sync_weights(ctx) -> None:
    """Copy the updated policy into the colocated engine (every rank; TRL gathers sharded weights)."""
    if getattr(ctx, _KEY, None) is not None:
        getattr(ctx, _KEY).sync_weights()
