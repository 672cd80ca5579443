"""The policy engine: prompt encoding, batched sampling with transformers, completion-only log-probs."""
from __future__ import annotations

import torch
from torch import nn

from ..types import RolloutRequest, Rollouts


class CompletionLogprobs(nn.Module):
    """Wraps a causal LM so that one forward returns log-probs of completion tokens only.

    The vocabulary projection runs on the hidden states of the positions that
    predict a completion token, never on prompt or padding positions: the
    projection is the costliest part of a small model's forward. Wrapping it
    as a module keeps DDP's gradient hooks on the path when accelerate wraps it.
    """

    def __init__(self, model: nn.Module, temperature: float = 1.0):
        super().__init__()
        self.model = model
        self.temperature = temperature

    def forward(self, input_ids, attention_mask, positions, targets):
        backbone = self.model.get_decoder() if hasattr(self.model, "get_decoder") else self.model.base_model
        hidden = backbone(input_ids=input_ids, attention_mask=attention_mask, use_cache=False).last_hidden_state
        picked = hidden[positions[:, 0], positions[:, 1]]  # [N, H]
        logits = self.model.get_output_embeddings()(picked).float()
        if self.temperature != 1.0:
            logits = logits / self.temperature
        return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def pack(prompt_ids: list[list[int]], completion_ids: list[list[int]], pad_id: int):
    """Left-pad prompts and right-pad completions into one [B, L] batch.

    Returns input ids, attention mask, the (row, position) of every position
    that predicts a completion token, those target tokens, and the [B, T]
    completion mask that scatters the flat log-probs back per rollout.
    """
    plen = max(len(p) for p in prompt_ids)
    clen = max(max((len(c) for c in completion_ids), default=0), 1)
    B = len(prompt_ids)
    ids = torch.full((B, plen + clen), pad_id, dtype=torch.long)
    attn = torch.zeros((B, plen + clen), dtype=torch.long)
    cmask = torch.zeros((B, clen), dtype=torch.bool)
    for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
        ids[i, plen - len(p) : plen] = torch.tensor(p, dtype=torch.long)
        ids[i, plen : plen + len(c)] = torch.tensor(c, dtype=torch.long)
        attn[i, plen - len(p) : plen + len(c)] = 1
        cmask[i, : len(c)] = True
    rows, cols = torch.nonzero(cmask, as_tuple=True)
    positions = torch.stack([rows, plen + cols - 1], dim=1)
    targets = ids[rows, plen + cols]
    return ids, attn, positions, targets, cmask


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

    @torch.inference_mode()
    def generate(self, request: RolloutRequest, sampling, seed: int) -> Rollouts:
        texts = [self.render(p) for p in request.prompts]
        encoded = [self.encode(t) for t in texts]
        group, prompt_text, prompt_ids = [], [], []
        for g, (t, ids, b) in enumerate(zip(texts, encoded, request.budgets)):
            group += [g] * b
            prompt_text += [t] * b
            prompt_ids += [ids] * b
        completions: list[list[int]] = [[] for _ in group]
        # Similar prompt lengths share a generate() call: less left padding.
        order = sorted(range(len(group)), key=lambda i: len(prompt_ids[i]))
        model = self.model
        was_training = model.training
        model.eval()
        torch.manual_seed(seed)
        eos = self._eos_ids()
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), sampling.batch_size):
            idx = order[start : start + sampling.batch_size]
            plen = max(len(prompt_ids[i]) for i in idx)
            ids = torch.full((len(idx), plen), pad, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for r, i in enumerate(idx):
                ids[r, plen - len(prompt_ids[i]) :] = torch.tensor(prompt_ids[i])
                attn[r, plen - len(prompt_ids[i]) :] = 1
            out = model.generate(
                input_ids=ids,
                attention_mask=attn,
                do_sample=True,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                top_k=sampling.top_k or None,
                max_new_tokens=sampling.max_new_tokens,
                pad_token_id=pad,
                eos_token_id=eos,
            )
            for r, i in enumerate(idx):
                completions[i] = _cut_at_eos(out[r, plen:].tolist(), eos)
        model.train(was_training)
        return Rollouts(
            tasks=list(request.tasks),
            group=torch.tensor(group, dtype=torch.long),
            prompt_text=prompt_text,
            prompt_ids=prompt_ids,
            completion_ids=completions,
            completion_text=self.tokenizer.batch_decode(completions, skip_special_tokens=True),
        )

    def _eos_ids(self) -> list[int]:
        ids = {self.tokenizer.eos_token_id}
        gen_eos = getattr(getattr(self.model, "generation_config", None), "eos_token_id", None)
        ids |= set(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        return sorted(i for i in ids if i is not None)

    def logprobs(self, prompt_ids, completion_ids, scorer: nn.Module | None = None):
        """Per-token log-probs [B, T] and completion mask [B, T] (grad flows when enabled)."""
        ids, attn, positions, targets, cmask = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id)
        device = next(self.model.parameters()).device
        flat = (scorer or self.scorer)(ids.to(device), attn.to(device), positions.to(device), targets.to(device))
        return unflatten(flat, cmask.to(device)), cmask.to(device)

    @torch.no_grad()
    def token_entropy(self, prompt_ids, completion_ids) -> torch.Tensor:
        """Mean per-token entropy of the policy over the given completions (one value per rollout)."""
        ids, attn, positions, _, cmask = pack(prompt_ids, completion_ids, self.tokenizer.pad_token_id)
        backbone = self.model.get_decoder()
        hidden = backbone(input_ids=ids, attention_mask=attn, use_cache=False).last_hidden_state
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
