"""A lean batched sampler for decoder-only transformers models (the default backend's inner loop).

Why not ``model.generate``: for RL rollouts on small models its fixed costs
dominate. This loop
- prefills each distinct prompt once and copies its KV cache to the prompt's
  ``n`` samples (a group of G shares one prefill instead of G),
- computes logits for the last position only during prefill,
- draws each token by inverse-CDF sampling: one uniform number per row
  (``torch.multinomial`` over a 49k vocabulary costs tens of ms per call on CPU),
- drops finished rows from the batch and the KV cache, so the batch shrinks
  as completions end instead of decoding padding until the longest one ends,
- records the policy's log-prob of every sampled token on the way
  (``Rollouts.sample_logp``).
Temperature, top-k and top-p are applied in that order, as in transformers.
"""
from __future__ import annotations

import inspect

import torch

from .compat import cache_kwarg


def process_logits(logits: torch.Tensor, temperature: float, top_k: int, top_p: float):
    """Temperature, then top-k, then top-p (nucleus) filtering of [B, V] float logits -> (filtered, scaled)."""
    if temperature != 1.0:
        logits = logits / temperature
    scaled = logits  # filtering below makes new tensors: `filtered is scaled` means no filtering
    if top_k and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False, dim=-1)
        cum = sorted_logits.softmax(-1).cumsum(-1)
        drop = cum <= (1 - top_p)
        drop[:, -1] = False  # always keep the most likely token
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits, scaled


def sample_rows(logits: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """One token per row of [B, V] logits by inverse-CDF sampling (exact, one uniform draw per row).

    Returns the tokens and the rows' log-normalizers (logsumexp), from one pass of exp + cumsum.
    """
    top = logits.max(-1, keepdim=True).values
    cdf = torch.exp(logits - top).cumsum_(-1)  # unnormalized; filtered (-inf) tokens add 0
    total = cdf[:, -1:]
    u = torch.rand((logits.shape[0], 1), generator=generator, device=logits.device, dtype=cdf.dtype) * total
    idx = torch.searchsorted(cdf, u, right=True).squeeze(-1).clamp_(max=logits.shape[-1] - 1)
    # rounding can land past the last token with weight: fall back to the most likely token there
    bad = torch.isneginf(logits.gather(-1, idx[:, None]).squeeze(-1))
    if bool(bad.any()):
        idx[bad] = logits[bad].argmax(-1)
    return idx, (top + total.log()).squeeze(-1)


def _preallocated_cache(model, capacity: int):
    """A DynamicCache whose full-attention layers append into preallocated buffers instead of
    ``torch.cat``-ing the whole cache at every token (inference only: writes are in place)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):
        def lazy_initialization(self, key_states, value_states):
            super().lazy_initialization(key_states, value_states)
            self._k = self._v = None
            self._n = 0

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            n = key_states.shape[-2]
            if self._k is None or self._n + n > self._k.shape[-2]:
                B, H, _, D = key_states.shape
                cap = max(capacity, 2 * (self._n + n))
                k, v = key_states.new_empty((B, H, cap, D)), value_states.new_empty((B, H, cap, D))
                if self._n:
                    k[..., : self._n, :] = self._k[..., : self._n, :]
                    v[..., : self._n, :] = self._v[..., : self._n, :]
                self._k, self._v = k, v
            self._k[..., self._n : self._n + n, :] = key_states
            self._v[..., self._n : self._n + n, :] = value_states
            self._n += n
            self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]
            return self.keys, self.values

        def reorder_cache(self, beam_idx):
            if self._n:
                self._k = self._k.index_select(0, beam_idx.to(self._k.device))
                self._v = self._v.index_select(0, beam_idx.to(self._v.device))
                self.keys, self.values = self._k[..., : self._n, :], self._v[..., : self._n, :]

        batch_select_indices = reorder_cache

    cache = DynamicCache(config=model.config)
    cache.layers = [PreallocatedLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def _forward(model, keep_arg: bool, cache_arg: str, cache, **kw):
    kw[cache_arg] = cache
    if keep_arg:
        kw["logits_to_keep"] = 1
    out = model(use_cache=True, **kw)
    return out.logits[:, -1, :].float()


@torch.inference_mode()
def sample(
    model,
    prompts: list[list[int]],
    counts: list[int],
    *,
    max_new_tokens: int,
    eos_ids: list[int],
    pad_id: int,
    temperature: float = 1.0,
    top_k: int = 0,
    top_p: float = 1.0,
    generator: torch.Generator,
) -> tuple[list[list[int]], list[list[float]]]:
    """``counts[i]`` completions of ``prompts[i]``; returns (token ids, log-probs) per completion, prompt-major.

    A completion ends with (and includes) its first EOS token, or after
    ``max_new_tokens`` tokens. Log-probs are those of the temperature-scaled
    policy (before top-k/top-p), i.e. what the trainer computes for the loss.
    """
    device = next(model.parameters()).device
    keep_arg = "logits_to_keep" in inspect.signature(model.forward).parameters
    cache_arg = cache_kwarg(model)
    P = len(prompts)
    plen = max(len(p) for p in prompts)
    ids = torch.full((P, plen), pad_id, dtype=torch.long)
    attn = torch.zeros((P, plen), dtype=torch.long)
    for r, p in enumerate(prompts):
        ids[r, plen - len(p) :] = torch.tensor(p, dtype=torch.long)
        attn[r, plen - len(p) :] = 1
    ids, attn = ids.to(device), attn.to(device)
    padded = bool((attn == 0).any())
    pos = (attn.cumsum(-1) - 1).clamp(min=0)
    cache = _preallocated_cache(model, plen + max_new_tokens)
    logits = _forward(model, keep_arg, cache_arg, cache, input_ids=ids, attention_mask=attn if padded else None,
                      position_ids=pos)

    # one row per completion: copy each prompt's cache and last logits `count` times
    rows = torch.repeat_interleave(torch.arange(P, device=device), torch.tensor(counts, device=device))
    cache.reorder_cache(rows)
    logits, attn = logits[rows], attn[rows]
    next_pos = pos[rows, -1] + 1
    R = rows.numel()
    alive = torch.arange(R, device=device)  # completion index of each row still decoding
    tokens = torch.full((R, max_new_tokens), pad_id, dtype=torch.long, device=device)
    logps = torch.zeros((R, max_new_tokens), dtype=torch.float32, device=device)
    lengths = torch.full((R,), max_new_tokens, dtype=torch.long, device=device)
    eos = torch.tensor(eos_ids, dtype=torch.long, device=device)

    for t in range(max_new_tokens):
        filtered, scaled = process_logits(logits, temperature, top_k, top_p)
        tok, lse = sample_rows(filtered, generator)
        if filtered is not scaled:  # top-k/top-p: the policy's normalizer is over the whole vocabulary
            lse = torch.logsumexp(scaled, -1)
        tokens[alive, t] = tok
        logps[alive, t] = scaled.gather(-1, tok[:, None]).squeeze(-1) - lse
        done = torch.isin(tok, eos)
        if bool(done.any()):
            lengths[alive[done]] = t + 1
            keep = torch.nonzero(~done).flatten()
            if keep.numel() == 0:
                break
            alive, tok, attn, next_pos = alive[keep], tok[keep], attn[keep], next_pos[keep]
            cache.reorder_cache(keep)
        if t == max_new_tokens - 1:
            break
        attn = torch.cat([attn, attn.new_ones((attn.shape[0], 1))], dim=1)
        logits = _forward(model, keep_arg, cache_arg, cache, input_ids=tok[:, None],
                          attention_mask=attn if padded else None, position_ids=next_pos[:, None])
        next_pos = next_pos + 1

    lengths, tokens, logps = lengths.tolist(), tokens.tolist(), logps.tolist()
    return [tokens[i][: lengths[i]] for i in range(R)], [logps[i][: lengths[i]] for i in range(R)]
