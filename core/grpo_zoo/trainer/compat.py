"""What the installed transformers expects of the fast paths, checked once per model.

transformers renamed the forward argument ``past_key_values`` to ``cache`` in
5.24 (the old name still works there with a deprecation notice, removed in
5.40). The lean sampler and the shared-prompt log-prob path pass a KV cache
explicitly, so they ask the model which name it takes instead of assuming one:
a model that takes neither falls back loudly, never silently.
"""
from __future__ import annotations

import inspect

_CACHE_NAMES = ("cache", "past_key_values")  # newest first


def forward_params(module) -> set[str]:
    return set(inspect.signature(module.forward).parameters)


def cache_kwarg(module) -> str | None:
    """The name under which ``module.forward`` takes a KV cache, or None when it takes none."""
    params = forward_params(module)
    return next((name for name in _CACHE_NAMES if name in params), None)


def lean_unsupported_reason(model) -> str | None:
    """Why the lean sampler and shared-prompt log-probs cannot run ``model``; None when they can."""
    if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
        return "it is an encoder-decoder model"
    missing = {"position_ids", "attention_mask"} - forward_params(model)
    if cache_kwarg(model) is None:
        missing.add("cache (or past_key_values)")
    if missing:
        return f"its forward() takes no {', '.join(sorted(missing))} argument"
    try:
        from transformers.cache_utils import DynamicLayer
    except ImportError:
        return "transformers.cache_utils has no DynamicLayer (transformers < 5.0)"
    # the preallocated sampling cache overrides lazy_initialization(keys, values) (transformers >= 5.0)
    if len(inspect.signature(DynamicLayer.lazy_initialization).parameters) != 3:
        return "this transformers' DynamicLayer.lazy_initialization is not (keys, values)"
    return None
