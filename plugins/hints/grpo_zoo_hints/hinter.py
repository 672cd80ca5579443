"""The separate hinter (HiLL): a transformers model with its own optimizer and GRPO update.

The hinter's rollouts (one hinter answer per hint) come back as grpo-zoo
Rollouts whose groups are the hard prompts, so the M hints of a prompt form
one GRPO group. The update reuses core's pieces: the trainer Engine for
sampling and completion log-probs, ``grpo_zoo.segments`` for the group
statistics and the built-in clipped surrogate and aggregation (the run's
``loss.type``, ``loss.epsilon_*``) for the loss. With one optimizer pass per
batch the ratio is 1 (old log-prob = detached current one), as in core with
``num_iterations = 1``; no KL term.
"""
from __future__ import annotations

import torch
from grpo_zoo.builtins import loss as core_loss
from grpo_zoo.segments import segment_all_equal
from grpo_zoo.trainer.engine import Engine
from grpo_zoo.trainer.models import load_model_and_tokenizer
from grpo_zoo.types import LossInputs, RolloutRequest, Rollouts

from .formulas import group_advantages


def hint_sampling(ctx, cfg):
    """The run's sampling settings with the hinter's temperature, top-p and token limit."""
    return ctx.config.sampling.model_copy(
        update={"max_new_tokens": cfg.hinter_max_new_tokens, "temperature": cfg.hinter_temperature, "top_p": cfg.hinter_top_p}
    )


def render_for_hinting(engine: Engine, messages: list[dict], prefill: bool) -> str:
    """The chat-templated hinter prompt, optionally with the answer opened by '<hint>'."""
    text = engine.render(messages)
    return text + "<hint>" if prefill else text


def generate_hints(engine: Engine, ctx, cfg, tasks, messages, budgets, seed: int) -> Rollouts:
    """Sample ``budgets[i]`` hinter answers for ``messages[i]``; groups follow ``tasks``."""
    prompts = [render_for_hinting(engine, m, cfg.prefill_tag) for m in messages]
    request = RolloutRequest(tasks=list(tasks), prompts=prompts, budgets=list(budgets))
    return engine.generate(request, hint_sampling(ctx, cfg), seed=seed)


class Hinter:
    """The hinter model, its tokenizer/engine and its AdamW optimizer."""

    def __init__(self, cfg, device=None):
        model, tok = load_model_and_tokenizer(cfg.hinter_model, cfg.hinter_dtype)
        if device is not None:
            model.to(device)
        model.train()
        self.engine = Engine(model, tok, temperature=cfg.hinter_temperature)
        self.optimizer = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=cfg.hinter_lr, weight_decay=cfg.hinter_weight_decay
        )

    @property
    def model(self):
        return self.engine.model

    def generate(self, ctx, cfg, tasks, messages, budgets, seed: int) -> Rollouts:
        return generate_hints(self.engine, ctx, cfg, tasks, messages, budgets, seed)

    def advantages(self, ctx, cfg, hints: Rollouts, rewards: torch.Tensor) -> torch.Tensor:
        if cfg.hinter_advantage == "run":
            return ctx.normalize(rewards.double(), hints.groups).float()
        return group_advantages(rewards, hints.groups, ctx.config.advantage.eps).float()

    def update(self, ctx, cfg, hints: Rollouts, rewards: torch.Tensor) -> dict[str, float]:
        """One GRPO step of the hinter on its hints' rewards; returns its loss and grad norm."""
        rewards = torch.as_tensor(rewards, dtype=torch.float32)
        adv = self.advantages(ctx, cfg, hints, rewards)
        if bool(segment_all_equal(rewards, hints.groups).all()) or not bool(adv.abs().gt(0).any()):
            return {"hinter_updated": 0.0, "hinter_loss": 0.0, "hinter_grad_norm": 0.0}
        lengths = hints.completion_lengths()
        idx = list(range(len(hints)))
        size = cfg.hinter_micro_batch_size
        batches = [idx[k : k + size] for k in range(0, len(idx), size)]
        max_len = max(cfg.hinter_max_new_tokens, int(lengths.max()))
        self.optimizer.zero_grad(set_to_none=True)
        total = 0.0
        for mb in batches:
            logp, mask = self.engine.logprobs([hints.prompt_ids[i] for i in mb], [hints.completion_ids[i] for i in mb])
            inputs = LossInputs(
                logp=logp,
                old_logp=logp.detach(),
                advantages=adv[mb].to(logp.device),
                mask=mask,
                total_tokens=float(lengths.sum()),
                total_sequences=float(len(idx)),
                max_completion_length=max_len,
                num_micro_batches=len(batches),
            )
            per_token = core_loss.zoo_policy_loss(ctx=ctx, inputs=inputs)
            loss = core_loss.zoo_aggregate_loss(ctx=ctx, per_token=per_token, inputs=inputs)
            loss.backward()
            total += float(loss.detach())
        params = [p for p in self.model.parameters() if p.requires_grad]
        clip = ctx.config.train.grad_clip
        norm = torch.nn.utils.clip_grad_norm_(params, clip if clip > 0 else float("inf"))
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return {"hinter_updated": 1.0, "hinter_loss": total, "hinter_grad_norm": float(norm)}

    def state_dict(self) -> dict:
        return {
            "model": {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()},
            "optimizer": self.optimizer.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
