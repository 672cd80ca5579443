"""Test helpers: scripted hints, a model-free generator and a fake policy engine.

With a tiny random model no hinter writes a parsable hint, so tests that need
the whole path use :class:`ScriptedHints`: the real hinter (or policy) still
samples, but its answers are replaced by fixed texts, tokenized, so the hinter
update trains on them.
"""
from __future__ import annotations

import torch
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.types import Rollouts

from .plugin import Hints

SCRIPT = [
    "<hint>Work out the expression one operation at a time.</hint>",
    "no tags at all",
    "<hint>The result is 7.</hint>",
    "<hint>" + "long " * 80 + "</hint>",
]


class ScriptedHints(Hints):
    """Hints whose hinter answers cycle through ``script`` (passes, parse failure, leak of 7, overlong)."""

    script = SCRIPT

    def generate_hints(self, ctx, cfg, tasks, messages, budgets, seed) -> Rollouts:
        out = super().generate_hints(ctx, cfg, tasks, messages, budgets, seed)
        tok = (self.hinter.engine if cfg.mode == "separate" else ctx.engine).tokenizer
        texts = [self.script[i % len(self.script)] for i in range(len(out))]
        out.completion_text = texts
        out.completion_ids = [tok(t, add_special_tokens=False)["input_ids"] + [tok.eos_token_id] for t in texts]
        return out


class OfflineHints(Hints):
    """Scripted hinter answers without any model (unit tests of the wrapper)."""

    def __init__(self, *scripts):
        super().__init__()
        self.scripts = [list(s) for s in scripts] or [list(SCRIPT)]  # one script per call; the last repeats
        self.asked: list = []

    def generate_hints(self, ctx, cfg, tasks, messages, budgets, seed) -> Rollouts:
        script = self.scripts[min(len(self.asked), len(self.scripts) - 1)]
        self.asked.append(messages)
        group = torch.repeat_interleave(torch.arange(len(tasks)), torch.tensor(budgets))
        texts = [script[i % len(script)] for i in range(len(group))]
        return Rollouts(
            tasks=list(tasks), group=group, prompt_text=["hinter"] * len(group), prompt_ids=[[1]] * len(group),
            completion_ids=[[2]] * len(group), completion_text=texts,
        )


HINT_MARK = 999


class StubGenerator:
    """A model-free ``zoo_generate``: unhinted prompts always get "0"; hinted ones alternate "7", "0".

    Prompt ids are the characters' code points plus ``HINT_MARK`` for hinted prompts, so
    :class:`FakeEngine` can tell the contexts apart.
    """

    @hookimpl
    def zoo_generate(self, ctx, request):
        group, ptext, pids, cids, ctext = [], [], [], [], []
        for g, (prompt, budget) in enumerate(zip(request.prompts, request.budgets)):
            text = prompt if isinstance(prompt, str) else "\n".join(m["content"] for m in prompt)
            hinted = "Hint:" in text
            for k in range(budget):
                answer = ("7" if k % 2 == 0 else "0") if hinted else "0"
                group.append(g)
                ptext.append(text)
                pids.append([ord(ch) for ch in text] + ([HINT_MARK] if hinted else []))
                cids.append([int(answer), 1, 2])
                ctext.append(answer)
        return Rollouts(tasks=list(request.tasks), group=torch.tensor(group), prompt_text=ptext, prompt_ids=pids,
                        completion_ids=cids, completion_text=ctext)


class FakeEngine:
    """Log-probs made by hand: -1.0 per token without the hint, -0.5 with it (so HR = -0.5)."""

    def logprobs(self, prompt_ids, completion_ids, scorer=None):
        T = max(len(c) for c in completion_ids)
        logp = torch.zeros(len(prompt_ids), T)
        mask = torch.zeros(len(prompt_ids), T, dtype=torch.bool)
        for i, (p, c) in enumerate(zip(prompt_ids, completion_ids)):
            logp[i, : len(c)] = -0.5 if HINT_MARK in p else -1.0
            mask[i, : len(c)] = True
        return logp, mask
