"""LoRA through peft: only the adapter trains, the reference is the same model with the adapter
off (no second copy), checkpoints hold the adapter, and merged weights can be written at the end."""
from __future__ import annotations

import copy
from pathlib import Path

from .durable import replace_folder
from .engine import CompletionLogprobs

MERGED_DIR = "merged"


def _peft():
    try:
        import peft
    except ImportError as exc:  # pragma: no cover - peft is in the test and scale extras
        raise RuntimeError("[peft] enabled = true needs the peft package: pip install 'grpo-zoo[scale]'") from exc
    return peft


def attach(model, cfg, adapter_dir: Path | None = None):
    """``model`` wrapped by a LoRA adapter built from the ``[peft]`` section, or the adapter saved in
    ``adapter_dir`` (resume). Base weights are frozen; only the adapter requires gradients."""
    peft = _peft()
    if adapter_dir is not None:
        return peft.PeftModel.from_pretrained(model, str(adapter_dir), is_trainable=True)
    lora = peft.LoraConfig(
        r=cfg.r,
        lora_alpha=cfg.alpha,
        lora_dropout=cfg.dropout,
        target_modules=cfg.target_modules,
        task_type="CAUSAL_LM",
    )
    try:
        return peft.get_peft_model(model, lora)
    except ValueError as exc:  # e.g. target modules that match nothing
        raise ValueError(f"[peft] target_modules={cfg.target_modules!r}: {exc}") from exc


class AdapterOffLogprobs(CompletionLogprobs):
    """Completion log-probs of the base model: the policy's own modules with the adapter disabled.

    Used as the KL reference (beta > 0): the initial policy is exactly the base
    model, since LoRA's B matrices start at zero.
    """

    def forward(self, *args, **kwargs):
        with self.model.disable_adapter():
            return super().forward(*args, **kwargs)


def save_merged(model, tokenizer, out: Path) -> Path:
    """Base weights with the adapter merged in, as a plain transformers folder (safetensors).

    Merges a copy, so the live model keeps its adapter (one extra model copy in memory for a moment).
    """
    merged = copy.deepcopy(model).merge_and_unload()

    def write(tmp):
        merged.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)

    return replace_folder(out, write)


def trainable_counts(model) -> tuple[int, int]:
    """(trainable, total) parameter counts."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


__all__ = ["AdapterOffLogprobs", "MERGED_DIR", "attach", "save_merged", "trainable_counts"]
