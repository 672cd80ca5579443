"""iGRPO: draft, pick the best draft, refine in the draft-augmented context (arXiv 2602.09000).

The plugin wraps the sampling stage (``zoo_rollout``). Stage 1 samples N
drafts per task through ``ctx.sample`` (the run's backend and reward hooks,
without re-entering ``zoo_rollout``) and picks the best one by the weighted
total reward; the prompt of every task is then rewritten in place to
q' = q + draft and its budget to the number of refinements, and the inner
sampling stage draws the refinements in q'. Only refinements are returned,
so only they get advantages and loss, and their ``prompt_ids`` (the exact
context of old/new/reference log-probs) are those of q'.
"""
from __future__ import annotations

import json
from typing import Literal

import torch
from pydantic import Field, field_validator

from grpo_zoo.advantages import weighted_sum
from grpo_zoo.config import ConfigError, Section
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.types import RolloutRequest, Rollouts

from .select import best_per_group, split_budget
from .template import DEFAULT_FOLLOWUP, DEFAULT_TEMPLATE, augment_prompt, check_template

STAGE_KEY = "igrpo/stage"  # request.extras marker of the draft request ("draft")
DRAFT_SEED_SALT = 0x16E0  # folded into the sampling seed of the draft request (int: hash-stable across processes)


class IGRPOConfig(Section):
    draft_fraction: float = Field(
        0.5, gt=0, lt=1, description="drafts = floor(budget * draft_fraction) per task (ignored when num_drafts is set)"
    )
    num_drafts: int | None = Field(None, ge=1, description="fixed number of drafts per task (taken from the budget in split mode)")
    budget_mode: Literal["split", "add"] = Field(
        "split", description="split: drafts + refinements = the planned budget (matched); add: drafts come on top"
    )
    # 2, not 1: a refinement group of one has advantage 0 under GRPO's std scaling and trains nothing,
    # so a budget of 2 is better spent on two plain samples than on one draft + one refinement.
    min_refinements: int = Field(
        2, ge=1, description="split mode: drafts never leave fewer refinements than this; a task without room is sampled plainly"
    )
    tie_break: Literal["first", "shortest", "random"] = Field("first", description="which of several best drafts is used")
    draft_weights: dict[str, float] | None = Field(
        None, description="reward column -> weight for ranking drafts (unnamed columns 1.0); default: reward.weights"
    )
    template: str = Field(DEFAULT_TEMPLATE, description="q' for text prompts and chat_mode='append'; {question}, {draft}")
    chat_mode: Literal["append", "turns"] = Field(
        "append", description="append: template into the last user message; turns: draft as assistant turn + followup"
    )
    followup: str = Field(DEFAULT_FOLLOWUP, description="the new user turn after the draft (chat_mode='turns'), verbatim")
    system_instruction: str | None = Field(None, description="text added to the system message of q' (chat prompts)")
    log_entropy: bool = Field(True, description="log igrpo/entropy (one no-grad forward over the refinements)")
    log_drafts: int = Field(2, ge=0, description="tasks per step whose drafts are written to <run>/igrpo_drafts.jsonl")

    @field_validator("template")
    @classmethod
    def _template(cls, v: str) -> str:
        return check_template(v, required={"draft"}, allowed={"question", "draft"})

    @field_validator("followup")
    @classmethod
    def _followup(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("followup must not be empty")
        return v


def _totals(rollouts: Rollouts, weights: dict[str, float]) -> torch.Tensor:
    if not rollouts.rewards or len(rollouts) == 0:
        return torch.zeros(len(rollouts), dtype=torch.float64)
    return weighted_sum(rollouts.rewards, weights)


def _is_main(ctx) -> bool:
    acc = ctx.accelerator
    return acc is None or acc.is_main_process


class IGRPO:
    """The ``igrpo`` plugin (one instance per run)."""

    def __init__(self):
        self._drafts_file_checked = False

    @hookimpl
    def zoo_config_model(self):
        return IGRPOConfig

    # ---- what a budget trains (read by planners such as knapsack, and by MC-GRPO's odd-group rounding) ----------
    @hookimpl(wrapper=True)
    def zoo_trained_rollouts(self, ctx, budget):
        n = yield
        cfg: IGRPOConfig = ctx.config.igrpo
        # only the refinements come back from sampling; the drafts never reach a group
        return split_budget(n, cfg.draft_fraction, cfg.num_drafts, cfg.budget_mode, cfg.min_refinements)[1]

    # ---- stage 1 + 2 --------------------------------------------------------------------------------------------
    @hookimpl(wrapper=True)
    def zoo_rollout(self, ctx, request):
        cfg: IGRPOConfig = ctx.config.igrpo
        plain_prompts = list(request.prompts)
        split = [split_budget(b, cfg.draft_fraction, cfg.num_drafts, cfg.budget_mode, cfg.min_refinements) for b in request.budgets]
        drafted = [i for i, (n, _) in enumerate(split) if n > 0]

        draft_text: list[str | None] = [None] * len(request.tasks)
        draft_total = torch.full((len(request.tasks),), float("nan"), dtype=torch.float64)
        drafts = None
        if drafted:
            drafts = ctx.sample(build_draft_request(request, [n for n, _ in split]))
            rank_w = self._rank_weights(ctx, drafts)
            train_w = ctx.reward_weights(drafts)
            gen = ctx.generator(DRAFT_SEED_SALT, 2) if cfg.tie_break == "random" else None
            best = best_per_group(_totals(drafts, rank_w), drafts.groups, cfg.tie_break, drafts.completion_lengths(), gen)
            totals = _totals(drafts, train_w)
            for j, i in enumerate(drafted):
                k = int(best[j])
                if k < 0:  # the backend returned no draft for this task: refine on the plain prompt
                    continue
                draft_text[i] = drafts.completion_text[k]
                draft_total[i] = totals[k]
                request.prompts[i] = augment_prompt(
                    request.prompts[i], draft_text[i], cfg.template, cfg.chat_mode, cfg.followup, cfg.system_instruction
                )
        for i, (_, refine) in enumerate(split):
            request.budgets[i] = refine

        result = yield  # the refinements, sampled and scored in q'

        self._annotate(ctx, request, result, plain_prompts, split, draft_text, draft_total, drafts)
        return result

    # ---- helpers ------------------------------------------------------------------------------------------------
    def _rank_weights(self, ctx, drafts: Rollouts) -> dict[str, float]:
        given = ctx.config.igrpo.draft_weights
        if given is None:
            return ctx.reward_weights(drafts)
        missing = sorted(set(given) - set(drafts.rewards))
        if missing:
            raise ConfigError(
                f"igrpo.draft_weights names column(s) {missing} that no reward hook produced "
                f"(columns: {sorted(drafts.rewards)})"
            )
        return {k: float(given.get(k, 1.0)) for k in drafts.rewards}

    def _annotate(self, ctx, request, result, plain_prompts, split, draft_text, draft_total, drafts):
        cfg: IGRPOConfig = ctx.config.igrpo
        m = result.metrics
        refine_total = _totals(result, ctx.reward_weights(result)) if len(result) else torch.zeros(0, dtype=torch.float64)
        own = draft_total[result.group] if len(result) else draft_total[:0]
        has_draft = ~torch.isnan(own)
        m["igrpo/drafts_count"] = sum(n for n, _ in split)
        m["igrpo/refinements_count"] = len(result)
        m["igrpo/undrafted_tasks_count"] = sum(1 for t in draft_text if t is None)
        if drafts is not None and len(drafts):
            all_draft = _totals(drafts, ctx.reward_weights(drafts))
            m["igrpo/draft_reward"] = float(all_draft.mean())
            m["igrpo/best_draft_reward"] = float(draft_total[~torch.isnan(draft_total)].mean())
            for k, v in drafts.rewards.items():
                m[f"igrpo/draft/{k}/mean"] = float(v.float().mean())
        if len(result):
            m["igrpo/refine_reward"] = float(refine_total.mean())
            if bool(has_draft.any()):
                r, d = refine_total[has_draft], own[has_draft]
                m["igrpo/improved_frac"] = float((r > d + 1e-9).double().mean())
                m["igrpo/worse_frac"] = float((r < d - 1e-9).double().mean())
                m["igrpo/gain"] = float((r - d).mean())
                copied = [
                    result.completion_text[i].strip() == draft_text[int(result.group[i])].strip()
                    for i in range(len(result))
                    if draft_text[int(result.group[i])] is not None
                ]
                m["igrpo/copied_frac"] = sum(copied) / max(len(copied), 1)
            if cfg.log_entropy and ctx.engine is not None and hasattr(ctx.engine, "token_entropy"):
                m["igrpo/entropy"] = float(self._entropy(ctx, result).mean())
        result.extras["igrpo"] = {
            "tasks": [
                {
                    "task_id": t.id,
                    "drafts": n,
                    "refinements": g,
                    "draft": draft_text[i],
                    "draft_reward": None if torch.isnan(draft_total[i]) else float(draft_total[i]),
                    "plain_prompt": plain_prompts[i],
                }
                for i, (t, (n, g)) in enumerate(zip(request.tasks, split))
            ],
            "draft_rollouts": drafts,
        }
        self._log_drafts(ctx, result.extras["igrpo"]["tasks"], drafts)

    def _entropy(self, ctx, rollouts: Rollouts) -> torch.Tensor:
        size = max(ctx.config.train.micro_batch_size, 1)
        parts = []
        for s in range(0, len(rollouts), size):
            parts.append(
                ctx.engine.token_entropy(rollouts.prompt_ids[s : s + size], rollouts.completion_ids[s : s + size]).cpu()
            )
        return torch.cat(parts).double()

    def _log_drafts(self, ctx, rows, drafts) -> None:
        cfg: IGRPOConfig = ctx.config.igrpo
        if not cfg.log_drafts or ctx.run_dir is None or not _is_main(ctx):
            return
        path = ctx.run_dir / "igrpo_drafts.jsonl"
        if not self._drafts_file_checked:  # after a resume, drop the rows of steps that are replayed
            self._drafts_file_checked = True
            if path.exists():
                kept = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] < ctx.step]
                path.write_text("".join(ln + "\n" for ln in kept))
        out = []
        for row in [r for r in rows if r["draft"] is not None][: cfg.log_drafts]:
            out.append({"step": ctx.step, "task": row["task_id"], "draft_reward": row["draft_reward"], "draft": row["draft"]})
        if drafts is not None:
            for row in out:
                idx = [i for i in range(len(drafts)) if drafts.task_of(i).id == row["task"]]
                row["all_drafts"] = [
                    {"text": drafts.completion_text[i], "rewards": {k: float(v[i]) for k, v in drafts.rewards.items()}}
                    for i in idx
                ]
        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        with open(path, "a") as f:
            for row in out:
                f.write(json.dumps(row) + "\n")


def build_draft_request(request: RolloutRequest, drafts_per_task: list[int]) -> RolloutRequest:
    """The stage-1 request: the tasks with at least one draft, unchanged prompts, their draft counts."""
    idx = [i for i, n in enumerate(drafts_per_task) if n > 0]
    req = request.subset(idx, budgets=[drafts_per_task[i] for i in idx])
    req.extras[STAGE_KEY] = "draft"
    # Its own random stream: sharing the refinements' stream, a refinement copies its draft
    # whenever the draft barely changes the next-token distribution.
    req.extras["seed_salt"] = DRAFT_SEED_SALT
    return req
