"""The ``hints`` plugin: hints for all-incorrect groups, re-sampled and swapped into the batch.

After the first scoring, every group whose rollouts are all incorrect gets M
hints (from a separate hinter model, or from the policy itself in SAGE's
self-hint mode). Hints that fail a gate are dropped; each surviving hint is
tried with n reasoner rollouts (n = the group's size), and the best hint's
rollouts replace the group, so the batch size does not change. The trainer
then computes advantages with whatever advantage plugins are active.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import torch
from grpo_zoo.config import ConfigError
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.types import RolloutRequest, Rollouts

from .config import HintsConfig
from .formulas import hinter_reward, hint_reliance
from .gates import REASONS, gate_hint
from .hinter import Hinter, generate_hints
from .prompts import hinted_prompt, hinter_messages

NAME = "hints"
PREFIX = "hint/"
SALT = 0x48494E54  # "HINT": this plugin's stream of ctx.generator
RESAMPLE_SALT = 0x48494E55  # seed_salt of the hinted re-samples (level 1)


def resample_salt(level: int) -> int:
    """The seed_salt of the hinted re-samples at SAGE hint ``level``: one stream per level, so a level-2 or
    level-3 re-sample never reuses level 1's random numbers row by row (level 1 keeps ``RESAMPLE_SALT``)."""
    return RESAMPLE_SALT + level - 1


@dataclass
class Candidate:
    """One hint for hard group ``g``: its gate result and, if it passed, how the reasoner did with it."""

    g: int
    level: int
    hint: str | None
    reason: str | None  # gate failure, None when the hint passed
    reward: float = 0.0
    pass_rate: float = 0.0
    reliance: float = 0.0
    correct: int = 0
    rows: list[int] = field(default_factory=list)  # its rollouts in ``sampled``
    sampled: Rollouts | None = None

    def key(self):
        return (self.reward, 0.0 < self.pass_rate < 1.0, self.pass_rate)


class Hints:
    """Hint learning (HiLL) with SAGE self-hints and a Guide-style ratio as options."""

    def __init__(self):
        self.hinter: Hinter | None = None
        self._pending_hinter: dict | None = None
        self.totals = {"hard": 0, "replaced": 0, "recovered": 0, "hints": 0, "hinter_updates": 0}
        self.last: dict[str, float] = {}

    # config and lifecycle
    @staticmethod
    @hookimpl
    def zoo_config_model():
        return HintsConfig

    @staticmethod
    def cfg(ctx) -> HintsConfig:
        return getattr(ctx.config, NAME)

    @hookimpl
    def zoo_run_start(self, ctx):
        if self.cfg(ctx).mode == "separate" and ctx.engine is not None:
            self.ensure_hinter(ctx)

    def ensure_hinter(self, ctx) -> Hinter:
        if self.hinter is None:
            device = next(ctx.engine.model.parameters()).device if ctx.engine is not None else None
            self.hinter = Hinter(self.cfg(ctx), device)
            if self._pending_hinter is not None:
                self.hinter.load_state_dict(self._pending_hinter)
                self._pending_hinter = None
        return self.hinter

    @hookimpl
    def zoo_state_dict(self, ctx):
        state = {"totals": dict(self.totals)}
        if self.hinter is not None:
            state["hinter"] = self.hinter.state_dict()
        elif self._pending_hinter is not None:
            state["hinter"] = self._pending_hinter
        return state

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.totals.update({k: int(v) for k, v in state.get("totals", {}).items()})
        if "hinter" in state:
            if self.hinter is not None:
                self.hinter.load_state_dict(state["hinter"])
            else:  # the hinter is loaded lazily (run start): apply the weights then
                self._pending_hinter = state["hinter"]

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        return dict(self.last)

    # sampling
    @hookimpl(wrapper=True)
    def zoo_rollout(self, ctx, request):
        result = yield
        return self.process(ctx, request, result)

    # the method
    def generate_hints(self, ctx, cfg, tasks, messages, budgets, seed) -> Rollouts:
        """Hinter answers (unscored Rollouts; group i = ``tasks[i]``). Tests override this."""
        if cfg.mode == "separate":
            return self.ensure_hinter(ctx).generate(ctx, cfg, tasks, messages, budgets, seed)
        if ctx.engine is None:
            raise RuntimeError("hints.mode = 'self' needs the policy engine (transformers backend)")
        return generate_hints(ctx.engine, ctx, cfg, tasks, messages, budgets, seed)

    def process(self, ctx, request: RolloutRequest, result: Rollouts) -> Rollouts:
        cfg = self.cfg(ctx)
        t0 = time.perf_counter()
        m = {f"gate_failures/{r}": 0 for r in REASONS}
        m.update(dict.fromkeys(
            ["hard_prompts", "hinted_prompts", "hints_generated", "hints_used", "replaced_groups", "recovered_groups",
             "extra_rollouts", "pass_rate_mean", "reliance_mean", "hinter_reward_mean"], 0.0))
        if cfg.mode == "separate":
            m.update({"hinter_updated": 0.0, "hinter_loss": 0.0, "hinter_grad_norm": 0.0})
        else:
            m["level_mean"] = 0.0
        if cfg.reward_column not in result.rewards:
            raise ConfigError(
                f"hints.reward_column = {cfg.reward_column!r}: no reward hook produced it "
                f"(columns: {sorted(result.rewards)})"
            )
        correct = result.rewards[cfg.reward_column] > cfg.threshold
        groups = result.groups
        n_correct = torch.zeros(groups.num_groups, dtype=torch.long).index_add_(0, result.group, correct.long())
        hard = torch.nonzero((groups.counts > 0) & (n_correct == 0)).flatten().tolist()
        m["hard_prompts"] = len(hard)
        self.totals["hard"] += len(hard)
        if cfg.max_hard_groups:
            hard = hard[: cfg.max_hard_groups]
        m["hinted_prompts"] = len(hard)
        if hard:
            result = self._hint_groups(ctx, cfg, request, result, hard, m)
        m["time_s"] = time.perf_counter() - t0
        m["recovered_total"] = self.totals["recovered"]
        m["hard_total"] = self.totals["hard"]
        self.last = {PREFIX + k: float(v) for k, v in m.items()}
        return result

    def _hint_groups(self, ctx, cfg, request, result, hard, m) -> Rollouts:
        gen = ctx.generator(SALT)
        first = {g: int(torch.nonzero(result.group == g).flatten()[0]) for g in hard}
        attempt = {}
        for g in hard:  # one randomly chosen failed attempt per hard group
            members = torch.nonzero(result.group == g).flatten()
            attempt[g] = int(members[int(torch.randint(len(members), (1,), generator=gen))])
        levels = range(1, cfg.max_level + 1) if cfg.mode == "self" else [1]
        pending, best, all_cands, resolved_level = list(hard), {}, [], {}
        for level in levels:
            if not pending:
                break
            tasks = [result.tasks[g] for g in pending]
            messages = [
                hinter_messages(t, result.completion_text[attempt[g]], level, cfg.solution_key, cfg.max_attempt_chars)
                for g, t in zip(pending, tasks)
            ]
            answers = self.generate_hints(ctx, cfg, tasks, messages, [cfg.num_hints] * len(pending), ctx.generator(SALT, level).initial_seed())
            cands = []
            for i, text in enumerate(answers.completion_text):
                g = pending[int(answers.group[i])]
                hint, reason = gate_hint(text, result.tasks[g].answer, cfg.max_hint_words, cfg.prefill_tag)
                cands.append(Candidate(g=g, level=level, hint=hint, reason=reason))
                if reason is not None:
                    m[f"gate_failures/{reason}"] += 1
            self._evaluate(ctx, cfg, request, result, cands, first)
            all_cands += cands
            for c in cands:
                if c.reason is None and (c.g not in best or c.key() > best[c.g].key()):
                    best[c.g] = c
            for g in pending:
                if g in best and best[g].pass_rate > 0:
                    resolved_level[g] = level
            pending = [g for g in pending if g not in resolved_level]
            if cfg.mode == "separate" and cfg.train_hinter:
                rewards = torch.tensor([c.reward for c in cands], dtype=torch.float32)
                stats = self.ensure_hinter(ctx).update(ctx, cfg, answers, rewards)
                m.update(stats)
                self.totals["hinter_updates"] += int(stats["hinter_updated"])
        # metrics over every hint
        live = [c for c in all_cands if c.reason is None]
        leaning = [c for c in live if c.correct > 0]
        m["hints_generated"] = len(all_cands)
        m["hints_used"] = len(live)
        m["extra_rollouts"] = sum(len(c.rows) for c in live)
        m["pass_rate_mean"] = sum(c.pass_rate for c in live) / max(len(live), 1)
        m["reliance_mean"] = sum(c.reliance for c in leaning) / max(len(leaning), 1)
        m["hinter_reward_mean"] = sum(c.reward for c in all_cands) / max(len(all_cands), 1)
        if cfg.mode == "self" and resolved_level:
            m["level_mean"] = sum(resolved_level.values()) / len(resolved_level)
        self.totals["hints"] += len(all_cands)
        return self._replace(ctx, cfg, result, best, first, m)

    def _prompt_of(self, ctx, request, result, g):
        """The prompt group ``g`` was sampled from (after any inner wrapper's rewrite)."""
        if len(request.tasks) == len(result.tasks) and request.tasks[g] is result.tasks[g]:
            return request.prompts[g]
        return ctx.hooks.build_prompt(ctx, result.tasks[g])

    def _evaluate(self, ctx, cfg, request, result, cands, first) -> None:
        """Sample n rollouts per surviving hint; set each candidate's pass rate, reliance and reward.

        ``cands`` all belong to one hint level (one call per level)."""
        live = [c for c in cands if c.reason is None]
        for c in cands:
            c.reward = cfg.gate_penalty if c.reason is not None else 0.0
        if not live:
            return
        counts = result.groups.counts
        budgets = [int(counts[c.g]) for c in live]
        req = RolloutRequest(
            tasks=[result.tasks[c.g] for c in live],
            prompts=[hinted_prompt(self._prompt_of(ctx, request, result, c.g), result.tasks[c.g], c.hint, cfg.hint_prefix) for c in live],
            budgets=budgets,
            # a stream of its own: with the run's, a hinted sample would reuse its unhinted group's uniforms
            extras={**request.extras, "hints": True, "seed_salt": resample_salt(live[0].level)},
        )
        sampled = ctx.sample(req)
        ok = sampled.rewards[cfg.reward_column] > cfg.threshold
        for k, c in enumerate(live):
            c.sampled = sampled
            c.rows = torch.nonzero(sampled.group == k).flatten().tolist()
            c.correct = int(ok[c.rows].sum())
            c.pass_rate = c.correct / len(c.rows)
        rows = torch.nonzero(ok).flatten().tolist()
        if rows:
            hr = self._reliance(ctx, [result.prompt_ids[first[live[int(sampled.group[i])].g]] for i in rows],
                                [sampled.prompt_ids[i] for i in rows], [sampled.completion_ids[i] for i in rows])
            per = torch.zeros(len(live), dtype=torch.float64).index_add_(0, sampled.group[rows], hr.double())
            for k, c in enumerate(live):
                c.reliance = float(per[k]) / c.correct if c.correct else 0.0
        p = torch.tensor([c.pass_rate for c in live], dtype=torch.float64)
        rewards = hinter_reward(p, torch.tensor(budgets, dtype=torch.float64), torch.tensor([c.reliance for c in live]),
                                cfg.hinter_reward, cfg.reliance_temperature)
        for c, r in zip(live, rewards.tolist()):
            c.reward = r

    @torch.no_grad()
    def _reliance(self, ctx, plain_prompts, hinted_prompts, completions) -> torch.Tensor:
        """HR of each (correct hinted) rollout from the policy's log-probs with and without the hint."""
        size = ctx.config.train.micro_batch_size
        out = []
        for k in range(0, len(completions), size):
            comp = completions[k : k + size]
            lp_plain, mk_plain = ctx.engine.logprobs(plain_prompts[k : k + size], comp)
            lp_hint, mk_hint = ctx.engine.logprobs(hinted_prompts[k : k + size], comp)
            out.append(hint_reliance(lp_plain.float(), mk_plain, lp_hint.float(), mk_hint).cpu())
        return torch.cat(out)

    def _replace(self, ctx, cfg, result, best, first, m) -> Rollouts:
        def chosen(c: Candidate) -> bool:
            if cfg.replace_if == "always":
                return True
            if cfg.replace_if == "mixed":
                return 0.0 < c.pass_rate < 1.0
            return c.pass_rate > 0.0

        picks = {g: c for g, c in sorted(best.items()) if chosen(c)}
        if not picks:
            return result
        parts, info = [], []
        for g, c in picks.items():
            part = c.sampled.take(c.rows)
            n = len(c.rows)
            part = replace(part, tasks=result.tasks, group=torch.full((n,), g, dtype=torch.long))
            if cfg.loss_mode == "no_hint_ratio":
                # trained without the hint; core computes the old log-probs in the hinted context it was sampled in
                plain_ids, plain_text = result.prompt_ids[first[g]], result.prompt_text[first[g]]
                part = replace(part, prompt_ids=[plain_ids] * n, prompt_text=[plain_text] * n,
                               behavior_prompt_ids=list(part.prompt_ids))
            parts.append(part)
            info.append({"task": result.tasks[g].id, "group": g, "hint": c.hint, "level": c.level,
                         "pass_rate": c.pass_rate, "reliance": c.reliance, "hinter_reward": c.reward})
        size = len(result)
        out = result.replace_groups(list(picks), Rollouts.concat(parts))
        assert len(out) == size, f"hint replacement changed the batch size: {size} -> {len(out)}"
        out.extras = {**out.extras, "hints": info}
        recovered = sum(1 for c in picks.values() if 0.0 < c.pass_rate < 1.0)
        m["replaced_groups"] = len(picks)
        m["recovered_groups"] = recovered
        self.totals["replaced"] += len(picks)
        self.totals["recovered"] += recovered
        return out
