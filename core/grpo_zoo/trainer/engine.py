"""The policy engine: prompt encoding, batched sampling with transformers, completion-only log-probs."""
from __future__ import annotations

import torch
from torch import nn

from ..types import RolloutRequest, Rollouts
from . import sampler


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
        from transformers import DynamicCache

        backbone = self._backbone()
        padded = bool((prompt_mask == 0).any())
        ppos = (prompt_mask.cumsum(-1) - 1).clamp(min=0)
        cache = DynamicCache(config=self.model.config)
        out = backbone(
            input_ids=prompt_ids,
            attention_mask=prompt_mask if padded else None,
            position_ids=ppos,
            past_key_values=cache,
            use_cache=True,
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
            sub = DynamicCache(
                ddp_cache_data=[(k.index_select(0, rows[idx]), v.index_select(0, rows[idx])) for k, v in kv],
                config=self.model.config,
            )
            attn = None
            if padded:
                attn = torch.cat([prompt_mask[rows[idx]], prompt_mask.new_ones((idx.numel(), Tb - 1))], dim=1)
            steps = torch.arange(Tb - 1, device=rows.device)
            h = backbone(
                input_ids=completion_ids[idx, : Tb - 1],  # a row's last token is only a target
                attention_mask=attn,
                position_ids=ppos[rows[idx], -1:] + 1 + steps,
                past_key_values=sub,
                use_cache=True,
            ).last_hidden_state
            hidden[idx, 1:Tb] = h  # position j predicts token j
        return hidden[cmask], completion_ids[cmask]


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

    @property
    def unwrapped(self):
        return self.model

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
            with torch.inference_mode():  # tensors for Rollouts are made outside it
                for chunk in chunks:
                    prompts = [encoded[g] for g, _ in chunk]
                    counts = [n for _, n in chunk]
                    if sampler.supports(model):
                        comps, logps = sampler.sample(
                            model, prompts, counts, max_new_tokens=sampling.max_new_tokens, eos_ids=eos, pad_id=pad,
                            temperature=sampling.temperature, top_k=sampling.top_k, top_p=sampling.top_p, generator=gen,
                        )
                    else:
                        comps = self._generate_hf(prompts, counts, sampling, eos, pad, gen)
                        logps = [None] * len(comps)
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

    def _generate_hf(self, prompts, counts, sampling, eos, pad, gen) -> list[list[int]]:
        """transformers ``generate`` for models the lean sampler does not handle (e.g. encoder-decoders)."""
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
        )
        return [_cut_at_eos(out[r, plen:].tolist(), eos) for r in range(len(rows))]

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
            flat = scorer(**batch)
            cmask = batch["cmask"]
        else:
            ids, positions, targets, cmask = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id)
            flat = scorer(ids.to(device), positions.to(device), targets.to(device))
            cmask = cmask.to(device)
        return unflatten(flat, cmask), cmask

    @property
    def shares_prompts(self) -> bool:
        if self._shares is None:
            self._shares = sampler.supports(self.model)
        return self._shares

    @torch.no_grad()
    def token_entropy(self, prompt_ids, completion_ids) -> torch.Tensor:
        """Mean per-token entropy of the policy over the given completions (one value per rollout)."""
        ids, positions, _, cmask = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id)
        device = next(self.model.parameters()).device
        ids, positions, cmask = ids.to(device), positions.to(device), cmask.to(device)
        backbone = self.model.get_decoder()
        hidden = backbone(input_ids=ids, use_cache=False).last_hidden_state
        logits = self.model.get_output_embeddings()(hidden[positions[:, 0], positions[:, 1]]).float()
        ent = -(torch.softmax(logits, -1) * torch.log_softmax(logits, -1)).sum(-1)
        per = unflatten(ent, cmask)
        return per.sum(-1) / cmask.sum(-1).clamp(min=1)


def _cut_at_eos(tokens: list[int], eos: list[int]) -> list[int]:
    """Completion up to and including the first EOS (the stop token is trained on, as in TRL)."""
    for k, t in enumerate(tokens):
        if t in eos:
            return tokens[: k + 1]
    return tokens
