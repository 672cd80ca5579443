"""Guide-style ratio correction (``loss_mode = "no_hint_ratio"``) without a core change.

A hinted rollout y was sampled from the old policy in the hinted context
q + h. With this mode its token ratio is

    rho_t = exp( log pi_theta(y_t | q, y_<t) - log pi_old(y_t | q + h, y_<t) )

(numerator: the current policy *without* the hint; denominator: the
behaviour policy that sampled it, *with* the hint), and the clipped surrogate,
KL and aggregation are whatever the run uses:
L_t = -min(rho_t A, clip(rho_t, 1 - eps_low, 1 + eps_high) A).
Unhinted rollouts keep the ordinary ratio.

How: the replaced rollouts carry the *unhinted* prompt ids, so core computes
log pi_theta (and, with num_iterations > 1, its own old log-probs) in the
no-hint context. A wrapper around ``zoo_select_for_loss`` remembers the
batch that advantages were just computed for (the one the policy update
trains on). At the first ``zoo_policy_loss`` call of the update (when
``in_loss`` is final, whatever other wrappers did, and before any optimizer
step) a wrapper replays core's micro-batch plan
(``grpo_zoo.trainer.step.micro_batches`` over this rank's share) and computes
log pi_old(y | q + h) for the hinted rows with the current (= sampling-time)
weights; on every call it writes those rows into ``inputs.old_logp`` before
the loss runs. Calls are matched to micro-batches by order (modulo the plan
length, for num_iterations > 1) and checked against the completion mask.
Known limit: one process only; a hinted rollout is recognised by its
(prompt ids, completion ids), so an identical unhinted rollout of the same
task in the same step would be treated as hinted too.
"""
from __future__ import annotations

import torch
from grpo_zoo.trainer.distributed import shard
from grpo_zoo.trainer.step import micro_batches


def rollout_key(prompt_ids, completion_ids) -> tuple:
    return (tuple(prompt_ids), tuple(completion_ids))


class GuideCorrection:
    def __init__(self):
        self.hinted: dict[tuple, list[int]] = {}  # (unhinted prompt, completion) -> hinted prompt ids
        self.batch = None  # the rollouts of the coming policy update
        self.plan: list[dict] | None = None
        self.calls = 0

    def reset(self) -> None:
        self.hinted.clear()
        self.batch, self.plan, self.calls = None, None, 0

    def observe(self, rollouts) -> None:
        """Advantages were just computed for ``rollouts``: the next update trains on them."""
        self.batch, self.plan, self.calls = rollouts, None, 0

    def register(self, unhinted_prompt_ids, completion_ids, hinted_prompt_ids) -> None:
        self.hinted[rollout_key(unhinted_prompt_ids, completion_ids)] = list(hinted_prompt_ids)

    @torch.no_grad()
    def prepare(self, ctx, rollouts, in_loss: torch.Tensor) -> None:
        """Plan the micro-batches of the coming update and the hinted old log-probs of each."""
        self.plan, self.calls = [], 0
        if ctx.accelerator is not None and ctx.accelerator.num_processes > 1:
            raise RuntimeError("hints.loss_mode = 'no_hint_ratio' supports one process only (use hinted_context)")
        chosen = torch.nonzero(torch.as_tensor(in_loss, dtype=torch.bool)).flatten().tolist()
        batches = micro_batches(rollouts, shard(ctx, chosen), ctx.config.train.micro_batch_size)
        for mb in batches:
            rows, hinted_prompts, comps = [], [], []
            for r, i in enumerate(mb):
                key = rollout_key(rollouts.prompt_ids[i], rollouts.completion_ids[i])
                if key in self.hinted:
                    rows.append(r)
                    hinted_prompts.append(self.hinted[key])
                    comps.append(rollouts.completion_ids[i])
            lengths = [len(rollouts.completion_ids[i]) for i in mb]
            if not rows:
                self.plan.append({"rows": [], "lengths": lengths})
                continue
            logp, mask = ctx.engine.logprobs(hinted_prompts, comps)
            self.plan.append({"rows": rows, "lengths": lengths, "old": logp.detach(), "mask": mask})

    def apply(self, ctx, inputs) -> None:
        """Write the hinted-context old log-probs into this micro-batch's ``inputs.old_logp``."""
        if not self.hinted or self.batch is None:
            return
        if self.plan is None:
            self.prepare(ctx, self.batch, self.batch.in_loss)
        if not self.plan:
            return
        entry = self.plan[self.calls % len(self.plan)]
        self.calls += 1
        got = inputs.mask.sum(-1).tolist()
        if [int(x) for x in got] != entry["lengths"]:
            raise RuntimeError(
                "hints.loss_mode = 'no_hint_ratio': the loss micro-batch does not match the planned one "
                f"(completion lengths {got} vs {entry['lengths']}); core's micro-batch order changed?"
            )
        if not entry["rows"]:
            return
        old = inputs.old_logp.detach().clone()
        hinted = entry["old"].to(old.device, old.dtype)
        width = min(hinted.shape[1], old.shape[1])
        rows = torch.tensor(entry["rows"], device=old.device)
        fresh = old[rows]
        fresh[:, :width] = torch.where(entry["mask"][:, :width].to(old.device), hinted[:, :width], fresh[:, :width])
        old[rows] = fresh
        inputs.old_logp = old
