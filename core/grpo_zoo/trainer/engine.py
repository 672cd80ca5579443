"""The policy engine: prompt encoding, batched sampling with transformers, completion-only log-probs."""
from __future__ import annotations

import contextlib
import warnings

import torch
from torch import nn

from ..types import RolloutRequest, Rollouts
from . import sampler
from .compat import cache_kwarg, lean_unsupported_reason


class CompletionLogprobs(nn.Module):
    """Wraps a causal LM so that one forward returns log-probs of completion tokens only.

    The vocabulary projection runs on the hidden states of the positions that
    predict a completion token, never on prompt or padding positions: the
    projection is the costliest part of a small model's forward. Wrapping it
    as a module keeps DDP's gradient hooks on the path when accelerate wraps it.

    Two layouts (see :func:`pack` and :func:`pack_shared`):
    - packed: each row is prompt + completion, right-padded, one forward;
    - shared prompts: each distinct prompt of the batch runs once and its KV
      cache (with gradients) is reused by all its completions, so a group of
      G rollouts pays for its prompt once instead of G times.
    """

    def __init__(self, model: nn.Module, temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.temperature = temperature

    def _backbone(self):
        return self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.base_model

    def forward(self, input_ids=None, positions=None, targets=None, **shared):
        if shared:
            picked, targets = self._shared_hidden(**shared)
        else:
            # Rows are right-padded: causal attention never lets a real token see
            # the padding after it, so no attention mask is needed and the default
            # positions 0..L-1 are the true ones.
            hidden = self._backbone()(input_ids=input_ids, use_cache=False).last_hidden_state
            picked = hidden[positions[:, 0], positions[:, 1]]  # [N, H]
        logits = self.model.get_output_embeddings()(picked).float()
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)

    def _shared_hidden(self, prompt_ids, prompt_mask, rows, completion_ids, cmask):
        backbone = self._backbone()
        with cache_kept_under_checkpointing(backbone):
            return self._shared_hidden_cached(backbone, prompt_ids, prompt_mask, rows, completion_ids, cmask)

    def _shared_hidden_cached(self, backbone, prompt_ids, prompt_mask, rows, completion_ids, cmask):
        from transformers import DynamicCache

        cache_arg = cache_kwarg(backbone)
        padded = bool((prompt_mask == 0).any())
        ppos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        cache = replayable(DynamicCache(config=self.model.config))
        out = backbone(
            input_ids=prompt_ids,
            attention_mask=prompt_mask if padded else None,
            position_ids=ppos,
            use_cache=True,
            **{cache_arg: cache},
        )
        first = out.last_hidden_state[:, -1][rows]  # predicts each completion's first token: [B, H]
        B, T = completion_ids.shape
        if T == 1:
            return first[cmask[:, 0]], completion_ids[cmask]
        kv = [(layer.keys, layer.values) for layer in cache.layers]
        hidden = first.new_zeros((B, T, first.shape[-1]))
        hidden[:, 0] = first
        lengths = cmask.sum(-1)
        for bucket in length_buckets(lengths.tolist()):
            idx = torch.tensor(bucket, device=rows.device)
            Tb = int(lengths[idx].max())
            if Tb < 2:
                continue
            # every row gets its prompt's KV (index_select: differentiable, the prompt ran once)
            sub = replayable(DynamicCache(
                ddp_cache_data=[(k.index_select(0, rows[idx]), v.index_select(0, rows[idx])) for k, v in kv],
                config=self.model.config,
            ))
            attn = None
            if padded:
                attn = torch.cat([prompt_mask[rows[idx]], prompt_mask.new_ones((idx.numel(), Tb - 1))], dim=1)
            steps = torch.arange(Tb - 1, device=rows.device)
            h = backbone(
                input_ids=completion_ids[idx, : Tb - 1],  # a row's last token is only a target
                attention_mask=attn,
                position_ids=ppos[rows[idx], -1:] + 1 + steps,
                use_cache=True,
                **{cache_arg: sub},
            ).last_hidden_state
            hidden[idx, 1:Tb] = h  # position j predicts token j
        return hidden[cmask], completion_ids[cmask]


def replayable(cache):
    """``cache`` with each plain (full-attention) layer made replayable; other layers are left as they are.

    A replayable layer's ``update`` returns the keys it held before this
    forward plus the new ones, and keeps that, instead of appending to what the
    previous call left: calling it twice in one forward gives the same keys.
    Gradient checkpointing reruns each layer in backward, so only such a cache
    can stay on under it (see :func:`cache_kept_under_checkpointing`).
    """
    from transformers.cache_utils import DynamicLayer

    class ReplayableLayer(DynamicLayer):
        before = None  # (keys, values) held before this forward's first update

        def update(self, key_states, value_states, *args, **kwargs):
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            if self.before is None:
                self.before = (self.keys, self.values)
            self.keys = torch.cat([self.before[0], key_states], dim=-2)
            self.values = torch.cat([self.before[1], value_states], dim=-2)
            return self.keys, self.values

    layers = []
    for layer in cache.layers:
        if type(layer) is DynamicLayer:
            new = ReplayableLayer()
            if layer.is_initialized:
                new.lazy_initialization(layer.keys, layer.values)
                new.keys, new.values = layer.keys, layer.values
            layer = new
        layers.append(layer)
    cache.layers = layers
    return cache


def cache_is_replayable(model) -> bool:
    """Whether every layer of the model's cache is a plain full-attention one (see :func:`replayable`)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=model.config).layers)


@contextlib.contextmanager
def cache_kept_under_checkpointing(backbone):
    """Let checkpointed decoder layers keep their KV cache (transformers drops it by default, since a
    layer rerun in backward would append to it twice). The shared-prompt path passes only
    :func:`replayable` caches, for which a rerun returns the same keys, so the cache may stay."""
    layers = [m for m in backbone.modules() if getattr(m, "gradient_checkpointing", False)]
    for m in layers:
        m._can_checkpoint_with_cache = True
    try:
        yield
    finally:
        for m in layers:
            del m._can_checkpoint_with_cache  # back to the class default


def enable_gradient_checkpointing(model) -> None:
    """transformers' gradient checkpointing, non-reentrant: the shared-prompt path lets prompt KV
    tensors leave a checkpointed layer through the cache, which only the non-reentrant variant
    (a real autograd graph, with saved tensors recomputed) differentiates."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise ValueError(f"train.gradient_checkpointing: {type(model).__name__} does not support gradient checkpointing")
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.x's name for it
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def length_buckets(lengths: list[int], call_cost: int = 16) -> list[list[int]]:
    """Rows grouped by completion length to cut padding: the partition of the rows, sorted by
    length, that minimizes padded tokens + ``call_cost`` tokens per extra forward call (exact DP)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j rows (longest first)
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j):  # rows i..j-1 form the last bucket; its longest row is order[i]
            c = best[i] + (j - i) * lengths[order[i]] + call_cost
            if c < best[j]:
                best[j], cut[j] = c, i
    buckets, j = [], n
    while j > 0:
        buckets.append(order[cut[j] : j])
        j = cut[j]
    return buckets[::-1]


def pack(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int):
    """Concatenate each prompt with its completion and right-pad the rows into one [B, L] batch.

    L is the longest prompt + completion (not longest prompt + longest
    completion as with left-padded prompts), so there is less padding.
    Returns input ids, the (row, position) of every position that predicts a
    completion token, those target tokens, and the [B, T] completion mask
    that scatters the flat log-probs back per rollout.
    """
    B = len(prompt_ids)
    L = max(len(p) + len(c) for p, c in zip(prompt_ids, completion_ids))
    T = max(max((len(c) for c in completion_ids), default=0), 1)
    ids = torch.full((B, max(L, 1)), pad_id, dtype=torch.long)
    cmask = torch.zeros((B, T), dtype=torch.bool)
    rows, cols = [], []
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[i, : len(p) + len(c)] = torch.tensor(list(p) + list(c), dtype=torch.long)
        cmask[i, : len(c)] = True
        rows += [i] * len(c)
        cols += range(len(p) - 1, len(p) + len(c) - 1)
    positions = torch.tensor([rows, cols], dtype=torch.long).reshape(2, -1).T
    targets = ids[positions[:, 0], positions[:, 1] + 1]
    return ids, positions, targets, cmask


def pack_shared(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int) -> dict:
    """The shared-prompt layout: distinct prompts left-padded [P, Lp], completions right-padded [B, T]."""
    index: dict[tuple, int] = {}
    rows = [index.setdefault(tuple(p), len(index)) for p in prompt_ids]
    uniq = list(index)
    Lp = max(len(p) for p in uniq)
    P, B = len(uniq), len(prompt_ids)
    T = max(max((len(c) for c in completion_ids), default=0), 1)
    pids = torch.full((P, Lp), pad_id, dtype=torch.long)
    pmask = torch.zeros((P, Lp), dtype=torch.long)
    for r, p in enumerate(uniq):
        pids[r, Lp - len(p) :] = torch.tensor(p, dtype=torch.long)
        pmask[r, Lp - len(p) :] = 1
    cids = torch.full((B, T), pad_id, dtype=torch.long)
    cmask = torch.zeros((B, T), dtype=torch.bool)
    for i, c in enumerate(completion_ids):
        cids[i, : len(c)] = torch.tensor(c, dtype=torch.long)
        cmask[i, : len(c)] = True
    return {"prompt_ids": pids, "prompt_mask": pmask, "rows": torch.tensor(rows), "completion_ids": cids, "cmask": cmask}


def unflatten(flat: torch.Tensor, cmask: torch.Tensor) -> torch.Tensor:
    out = flat.new_zeros(cmask.shape)
    out[cmask] = flat
    return out


class Engine:
    def __init__(self, model, tokenizer, temperature: float = 1.0, accelerator=None):
        self.model = model
        self.tokenizer = tokenizer
        self.accelerator = accelerator
        self.scorer = CompletionLogprobs(model, temperature)
        self.ref_scorer: CompletionLogprobs | None = None
        self._shares: bool | None = None
        self.autocast = contextlib.nullcontext  # the trainer sets accelerator.autocast (train.precision)
        self.sharded = False  # train.sharding = "fsdp2": the scorer is the FSDP root (sharding.py)
        self._gathered = False
        self.lean_reason = lean_unsupported_reason(lean_target(model))
        if self.lean_reason is not None:  # say it once, here, rather than fall back silently at every step
            warnings.warn(
                f"grpo-zoo: the lean sampler and shared-prompt log-probs cannot run {type(model).__name__}: "
                f"{self.lean_reason}; sampling falls back to model.generate (slower) and "
                "log-probs to one packed forward per row",
                RuntimeWarning,
                stacklevel=2,
            )

    def paths(self) -> dict:
        """Which sampler and log-prob path this engine runs (recorded in the run's manifest)."""
        return {
            "sampler": "lean" if self.lean_reason is None else "hf_generate",
            "logprobs": "shared_prompt" if self.shares_prompts else "packed",
            "fallback_reason": self.lean_reason,
        }

    @property
    def unwrapped(self):
        return self.model

    @contextlib.contextmanager
    def gathered(self):
        """The policy's full weights for code that calls the causal LM directly (sampler, probes).

        Without sharding (or inside an open window) this does nothing. Sharded, it is a collective:
        every rank must enter it together (the trainer opens one per step's rollouts and per evaluation).
        """
        if not self.sharded or self._gathered:
            yield
            return
        from .sharding import gathered

        self._gathered = True
        try:
            with gathered(self.scorer):
                yield
        finally:
            self._gathered = False

    def render(self, prompt) -> str:
        """Chat messages through the tokenizer's chat template; plain text is used as it is."""
        if isinstance(prompt, str):
            return prompt
        if getattr(self.tokenizer, "chat_template", None):
            return self.tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
        return "\n".join(m["content"] for m in prompt) + "\n"

    def encode(self, text: str) -> list[int]:
        return self.tokenizer(text, add_special_tokens=False)["input_ids"]

    def generate(self, request: RolloutRequest, sampling, seed: int) -> Rollouts:
        """``request.budgets[g]`` sampled completions of each prompt, with their sampling log-probs."""
        texts = [self.render(p) for p in request.prompts]
        encoded = [self.encode(t) for t in texts]
        if any(len(e) == 0 for e in encoded):
            raise ValueError("a prompt renders to no tokens")
        # Chunks of at most batch_size completions; similar prompt lengths share a chunk (less padding).
        pieces: list[tuple[int, int]] = []  # (group, count)
        for g in sorted(range(len(encoded)), key=lambda i: len(encoded[i])):
            left = request.budgets[g]
            while left > 0:
                take = min(left, sampling.batch_size)
                pieces.append((g, take))
                left -= take
        chunks, cur, used = [], [], 0
        for g, n in pieces:
            if cur and used + n > sampling.batch_size:
                chunks.append(cur)
                cur, used = [], 0
            cur.append((g, n))
            used += n
        if cur:
            chunks.append(cur)

        model = self.model
        was_training = model.training
        model.eval()
        eos, pad = self._eos_ids(), self.tokenizer.pad_token_id
        device = next(model.parameters()).device
        gen = torch.Generator(device=device)
        gen.manual_seed(int(seed) & 0x7FFFFFFFFFFFFFFF)
        per_group: dict[int, list[tuple[list[int], list[float] | None]]] = {g: [] for g in range(len(encoded))}
        try:
            with self.gathered(), torch.inference_mode(), self.autocast():  # tensors for Rollouts are made outside it
                for chunk in chunks:
                    prompts = [encoded[g] for g, _ in chunk]
                    counts = [n for _, n in chunk]
                    if self.lean_reason is None:
                        comps, logps = sampler.sample(
                            lean_target(model), prompts, counts, max_new_tokens=sampling.max_new_tokens, eos_ids=eos, pad_id=pad,
                            temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, generator=gen,
                        )
                    else:
                        comps, logps = self._generate_hf(prompts, counts, sampling, eos, pad, gen)
                    k = 0
                    for g, n in chunk:
                        per_group[g] += list(zip(comps[k : k + n], logps[k : k + n]))
                        k += n
        finally:
            model.train(was_training)

        group, prompt_text, prompt_ids, completions, sample_logp = [], [], [], [], []
        truncated = []  # no end-of-sequence token: stopped by max_new_tokens (both samplers keep the EOS)
        for g in range(len(encoded)):
            for comp, lp in per_group[g]:
                truncated.append(not comp or comp[-1] not in eos)
                group.append(g)
                prompt_text.append(texts[g])
                prompt_ids.append(encoded[g])
                completions.append(comp)
                sample_logp.append(lp)
        has_logp = all(lp is not None for lp in sample_logp)
        return Rollouts(
            tasks=list(request.tasks),
            group=torch.tensor(group, dtype=torch.long),
            prompt_text=prompt_text,
            prompt_ids=prompt_ids,
            completion_ids=completions,
            completion_text=self.tokenizer.batch_decode(completions, skip_special_tokens=True),
            sample_logp=[torch.tensor(lp, dtype=torch.float32) for lp in sample_logp] if has_logp else None,
            truncated=torch.tensor(truncated, dtype=torch.bool),
        )

    def _generate_hf(self, prompts, counts, sampling, eos, pad, gen) -> tuple[list[list[int]], list[list[float]]]:
        """transformers ``generate`` for models the lean sampler does not handle (e.g. encoder-decoders):
        completions and the sampled tokens' log-probs under the temperature-scaled policy (from the
        raw logits generate returns, as the lean sampler records them)."""
        model = self.model
        rows = [p for p, n in zip(prompts, counts) for _ in range(n)]
        plen = max(len(p) for p in rows)
        ids = torch.full((len(rows), plen), pad, dtype=torch.long)
        attn = torch.zeros_like(ids)
        for r, p in enumerate(rows):
            ids[r, plen - len(p) :] = torch.tensor(p)
            attn[r, plen - len(p) :] = 1
        device = next(model.parameters()).device
        torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=gen, device=gen.device)))
        out = model.generate(
            input_ids=ids.to(device),
            attention_mask=attn.to(device),
            do_sample=True,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,  # 0 disables it (None would fall back to generation_config's 50)
            max_new_tokens=sampling.max_new_tokens,
            pad_token_id=pad,
            eos_token_id=eos,
            output_logits=True,
            return_dict_in_generate=True,
        )
        new = out.sequences[:, plen:]
        logits = torch.stack(out.logits, 1).float() / sampling.temperature  # raw logits, one [R, V] per step
        logp = torch.log_softmax(logits, -1).gather(-1, new[:, : logits.shape[1], None]).squeeze(-1)
        comps = [_cut_at_eos(new[r].tolist(), eos) for r in range(len(rows))]
        return comps, [logp[r, : len(c)].tolist() for r, c in enumerate(comps)]

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return sorted(i for i in ids if i is not None)

    def logprobs(self, prompt_ids, completion_ids, scorer: nn.Module | None = None, share_prompts: bool | None = None):
        """Per-token log-probs [B, T] and completion mask [B, T] (grad flows when enabled).

        Rollouts that share a prompt (a group) run the prompt once
        (``share_prompts``; by default whenever some prompt repeats and the
        model supports a KV cache).
        """
        device = next(self.model.parameters()).device
        scorer = scorer or self.scorer
        if share_prompts is None:
            share_prompts = len({tuple(p) for p in prompt_ids}) < len(prompt_ids) and self.shares_prompts
        if share_prompts:
            batch = {k: v.to(device) for k, v in pack_shared(prompt_ids, completion_ids, self.tokenizer.pad_token_id).items()}
            with self.autocast():
                flat = scorer(**batch)
            cmask = batch["cmask"]
        else:
            ids, positions, targets, cmask = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id)
            with self.autocast():
                flat = scorer(ids.to(device), positions.to(device), targets.to(device))
            cmask = cmask.to(device)
        return unflatten(flat, cmask), cmask

    @property
    def shares_prompts(self) -> bool:
        if self.sharded:
            # fsdp2: each forward call all-gathers, so every rank must make the same calls; the shared
            # layout's call count depends on the batch (one per length bucket), the packed one's does not
            return False
        if self._shares is None:
            self._shares = self.lean_reason is None
            checkpointing = getattr(self.model, "is_activation_checkpointing", None)  # transformers >= 5.x's name
            if checkpointing is None:
                checkpointing = getattr(self.model, "is_gradient_checkpointing", False)
            if self._shares and checkpointing:
                self._shares = cache_is_replayable(self.model)  # e.g. sliding-window layers: packed path
        return self._shares

    @torch.no_grad()
    def token_entropy(self, prompt_ids, completion_ids) -> torch.Tensor:
        """Mean per-token entropy of the policy over the given completions (one value per rollout)."""
        ids, positions, _, cmask = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id)
        device = next(self.model.parameters()).device
        ids, positions, cmask = ids.to(device), positions.to(device), cmask.to(device)
        backbone = self.model.get_decoder()
        with self.gathered(), self.autocast():
            hidden = backbone(input_ids=ids, use_cache=False).last_hidden_state
            logits = self.model.get_output_embeddings()(hidden[positions[:, 0], positions[:, 1]]).float()
        ent = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
        per = unflatten(ent, cmask)
        return per.sum(-1) / cmask.sum(-1).clamp(min=1)


def lean_target(model):
    """The module the lean sampler drives: a peft model's base model, whose LoRA layers were
    injected in place (its forward runs the adapter), since ``PeftModel.forward`` hides the
    base forward's arguments behind ``*args, **kwargs``."""
    if hasattr(model, "peft_config") and hasattr(model, "get_base_model"):
        return model.get_base_model()
    return model


def _cut_at_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """Completion up to and including the first EOS (the stop token is trained on, as in TRL)."""
    for k, t in enumerate(tokens):
        if t in eos:
            return tokens[: k + 1]
    return tokens
