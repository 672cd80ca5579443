"""``[[reward.models]]``: a sequence-classification reward model as a reward column.

Scored as TRL 1.16 scores a reward model: the prompt and completion joined (plain text:
``prompt + completion``; a chat prompt: the reward tokenizer's chat template over the prompt
messages plus the assistant turn), tokenized without special tokens, right-padded, and the
model's first logit taken as the reward. Batched, without gradients, on the policy's device.
Models load from a local folder or the local Hugging Face cache only (``local_files_only``).
"""
from __future__ import annotations

import functools
from pathlib import PurePath

import torch


def model_column(cfg) -> str:
    """The column's name: ``name``, else the last part of the path (TRL names it so too)."""
    return cfg.name or PurePath(cfg.path.rstrip("/")).name


@functools.lru_cache(maxsize=4)
def load(path: str, device: str):
    """(model, tokenizer), once per process and device."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    except OSError as exc:
        raise ValueError(f"reward model {path!r}: not a local folder nor in the local Hugging Face cache ({exc})") from exc
    if tok.pad_token is None:  # batching needs a pad token; the classifier reads the last non-pad position
        tok.pad_token = tok.eos_token
    if model.config.pad_token_id is None:
        model.config.pad_token_id = tok.pad_token_id
    return model.to(device).eval().requires_grad_(False), tok


def texts(tokenizer, rollouts) -> list[str]:
    out = []
    for i, completion in enumerate(rollouts.completion_text):
        prompt = rollouts.task_of(i).prompt
        if isinstance(prompt, str):
            out.append(prompt + completion)
        else:
            messages = list(prompt) + [{"role": "assistant", "content": completion}]
            out.append(tokenizer.apply_chat_template(messages, tokenize=False))
    return out


def score(model, tokenizer, batch_texts: list[str], batch_size: int) -> torch.Tensor:
    device = next(model.parameters()).device
    out = []
    for k in range(0, len(batch_texts), batch_size):
        enc = tokenizer(
            batch_texts[k : k + batch_size], return_tensors="pt", padding=True, padding_side="right", add_special_tokens=False
        ).to(device)
        with torch.inference_mode():
            out.append(model(**enc).logits[:, 0].float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def score_models(ctx, rollouts) -> dict[str, torch.Tensor]:
    device = str(next(ctx.engine.model.parameters()).device) if ctx.engine is not None else "cpu"
    cols = {}
    for cfg in ctx.config.reward.models:
        name = model_column(cfg)
        if name in cols:
            raise ValueError(f"two [[reward.models]] give column {name!r}: set `name` on one of them")
        model, tok = load(cfg.path, device)
        cols[name] = score(model, tok, texts(tok, rollouts), cfg.batch_size)
    return cols
