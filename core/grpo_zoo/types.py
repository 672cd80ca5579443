"""Typed objects that hooks receive: tasks, rollout requests and rollout batches."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable

import torch

from .segments import Groups


@dataclass
class Task:
    """One prompt of a verifiable task.

    ``prompt`` is either plain text (the user turn) or a list of chat messages.
    ``score``, when given, maps a completion text to a reward in [0, 1]
    (e.g. a reasoning-gym scorer); otherwise the built-in answer match is used.
    """

    id: str
    prompt: str | list[dict]
    answer: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    score: Callable[[str], float] | None = field(default=None, repr=False, compare=False)

    def question(self) -> str:
        """The task's user text, whatever form the prompt has."""
        if isinstance(self.prompt, str):
            return self.prompt
        return "\n".join(m["content"] for m in self.prompt if m.get("role") == "user")


@dataclass
class RolloutRequest:
    """What the sampling stage is asked to produce for one step.

    Wrappers of ``zoo_rollout`` may rewrite ``prompts`` and ``budgets`` before
    yielding to the inner implementation (iGRPO appends drafts this way).
    ``prompts[i]`` is the text or chat messages for ``tasks[i]``; ``budgets[i]``
    how many rollouts it gets. ``extras["seed_salt"]`` (an int) gives the
    request a random stream of its own within the step (see
    ``RunContext.sampling_seed``); a plugin that samples more than once per
    step sets it on its extra requests.
    """

    tasks: list[Task]
    prompts: list[str | list[dict]]
    budgets: list[int]
    extras: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if not (len(self.tasks) == len(self.prompts) == len(self.budgets)):
            raise ValueError(
                f"tasks, prompts and budgets differ in length: "
                f"{len(self.tasks)}, {len(self.prompts)}, {len(self.budgets)}"
            )
        bad = [b for b in self.budgets if int(b) < 1]
        if bad:
            raise ValueError(f"every budget must be >= 1, got {bad[0]}")

    def subset(self, idx: list[int], budgets: list[int] | None = None) -> "RolloutRequest":
        return RolloutRequest(
            tasks=[self.tasks[i] for i in idx],
            prompts=[self.prompts[i] for i in idx],
            budgets=list(budgets) if budgets is not None else [self.budgets[i] for i in idx],
            extras=dict(self.extras),
        )


# Per-rollout fields: every list or tensor of length R (the rollout count).
_PER_ROLLOUT = ("group", "prompt_text", "prompt_ids", "completion_ids", "completion_text", "sample_logp",
                "behavior_prompt_ids", "in_loss", "weight_version", "truncated")


@dataclass
class Rollouts:
    """A ragged batch of rollouts: rollout i belongs to group ``group[i]``.

    Group g is the g-th task of ``tasks``; groups have any size, 1 included.
    ``prompt_text``/``prompt_ids`` are the context the policy is trained in,
    normally the exact context each completion was sampled in (iGRPO's
    draft-augmented prompt, a hinted prompt). When a method trains a
    completion in another context than it was sampled in (Guide-style hints:
    sampled with the hint, trained without), ``behavior_prompt_ids[i]`` holds
    the sampling context: the loss's old log-probs of rollout i are then
    computed there, so its ratio is pi_theta(y | prompt) / pi_old(y | behaviour
    prompt); None (the list, or an entry) means the same as ``prompt_ids``.
    ``rewards`` holds named reward columns, ``advantages`` one value per
    rollout once computed, and ``in_loss`` which rollouts reach the loss.
    ``truncated[i]`` (bool, set by the backend) is True when completion i hit
    ``sampling.max_new_tokens`` without an end-of-sequence token; None when
    the backend does not say.
    """

    tasks: list[Task]
    group: torch.Tensor
    prompt_text: list[str]
    prompt_ids: list[list[int]]
    completion_ids: list[list[int]]
    completion_text: list[str]
    sample_logp: list[torch.Tensor] | None = None
    behavior_prompt_ids: list[list[int] | None] | None = None
    rewards: dict[str, torch.Tensor] = field(default_factory=dict)
    advantages: torch.Tensor | None = None
    in_loss: torch.Tensor | None = None
    extras: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    # The policy version (optimizer steps taken) rollout i was sampled with, where the backend knows it.
    weight_version: list[int] | None = None
    truncated: torch.Tensor | None = None

    def __post_init__(self):
        self.group = torch.as_tensor(self.group, dtype=torch.long)
        n = self.group.numel()
        for name in _PER_ROLLOUT[1:]:
            v = getattr(self, name)
            if v is not None and len(v) != n:
                raise ValueError(f"Rollouts.{name} has {len(v)} entries for {n} rollouts")
        if n and int(self.group.max()) >= len(self.tasks):
            raise ValueError(f"group index {int(self.group.max())} but only {len(self.tasks)} tasks")
        if self.in_loss is None:
            self.in_loss = torch.ones(n, dtype=torch.bool)
        if self.truncated is not None:
            self.truncated = torch.as_tensor(self.truncated, dtype=torch.bool)

    def __len__(self) -> int:
        return self.group.numel()

    @property
    def groups(self) -> Groups:
        return Groups.from_index(self.group, len(self.tasks))

    def completion_lengths(self) -> torch.Tensor:
        return torch.tensor([len(c) for c in self.completion_ids], dtype=torch.long)

    def task_of(self, i: int) -> Task:
        return self.tasks[int(self.group[i])]

    def take(self, idx) -> "Rollouts":
        """Rollouts at positions ``idx``; tasks and group ids are kept as they are."""
        idx = torch.as_tensor(idx, dtype=torch.long)
        ids = idx.tolist()

        def pick(v):
            if v is None:
                return None
            if isinstance(v, torch.Tensor):
                return v[idx]
            return [v[i] for i in ids]

        return replace(
            self,
            group=self.group[idx],
            prompt_text=pick(self.prompt_text),
            prompt_ids=pick(self.prompt_ids),
            completion_ids=pick(self.completion_ids),
            completion_text=pick(self.completion_text),
            sample_logp=pick(self.sample_logp),
            behavior_prompt_ids=pick(self.behavior_prompt_ids),
            rewards={k: v[idx] for k, v in self.rewards.items()},
            advantages=None if self.advantages is None else self.advantages[idx],
            in_loss=self.in_loss[idx],
            extras=dict(self.extras),
            metrics=dict(self.metrics),
            weight_version=pick(self.weight_version),
            truncated=pick(self.truncated),
        )

    def replace_groups(self, group_ids: list[int], new: "Rollouts") -> "Rollouts":
        """Drop every rollout of ``group_ids`` and put ``new``'s rollouts in their place.

        ``new.group`` indexes into ``self.tasks`` (same task list). Used by
        methods that re-sample some groups (hint learning). Rewards must have
        the same columns on both sides.
        """
        if set(new.rewards) != set(self.rewards):
            raise ValueError(f"reward columns differ: {sorted(self.rewards)} vs {sorted(new.rewards)}")
        drop = torch.isin(self.group, torch.as_tensor(group_ids, dtype=torch.long))
        keep = self.take(torch.nonzero(~drop).flatten())
        return Rollouts.concat([keep, replace(new, tasks=self.tasks)])

    @staticmethod
    def concat(parts: list["Rollouts"]) -> "Rollouts":
        """Join batches that share one task list (group ids are not shifted)."""
        first = parts[0]
        if any(p.tasks is not first.tasks and p.tasks != first.tasks for p in parts):
            raise ValueError("Rollouts.concat needs batches over the same task list")
        cols = set(first.rewards)
        logp = None if any(p.sample_logp is None for p in parts) else [x for p in parts for x in p.sample_logp]
        adv = None if any(p.advantages is None for p in parts) else torch.cat([p.advantages for p in parts])
        behavior = None
        if any(p.behavior_prompt_ids is not None for p in parts):
            behavior = [x for p in parts for x in (p.behavior_prompt_ids or [None] * len(p))]
        return Rollouts(
            tasks=first.tasks,
            group=torch.cat([p.group for p in parts]),
            prompt_text=[x for p in parts for x in p.prompt_text],
            prompt_ids=[x for p in parts for x in p.prompt_ids],
            completion_ids=[x for p in parts for x in p.completion_ids],
            completion_text=[x for p in parts for x in p.completion_text],
            sample_logp=logp,
            behavior_prompt_ids=behavior,
            rewards={k: torch.cat([p.rewards[k] for p in parts]) for k in cols},
            advantages=adv,
            in_loss=torch.cat([p.in_loss for p in parts]),
            extras=dict(first.extras),
            metrics=dict(first.metrics),
            weight_version=None if any(p.weight_version is None for p in parts) else [v for p in parts for v in p.weight_version],
            truncated=None if any(p.truncated is None for p in parts) else torch.cat([p.truncated for p in parts]),
        )

    @staticmethod
    def merge(parts: list["Rollouts"]) -> "Rollouts":
        """Join batches over different task lists: tasks are concatenated, group ids shifted.

        Every part needs the same reward columns. Extras come from the first part;
        metrics add up for names ending in ``_count`` or ``/count`` (as across
        ranks) and otherwise keep the first part's figure.
        """
        if not parts:
            raise ValueError("Rollouts.merge needs at least one batch")
        cols = set(parts[0].rewards)
        for p in parts[1:]:
            if set(p.rewards) != cols:
                raise ValueError(f"reward columns differ: {sorted(cols)} vs {sorted(p.rewards)}")
        tasks = [t for p in parts for t in p.tasks]
        shifted, offset = [], 0
        for p in parts:
            shifted.append(replace(p, tasks=tasks, group=p.group + offset))
            offset += len(p.tasks)
        out = Rollouts.concat(shifted)
        out.metrics = merge_metrics([p.metrics for p in parts])
        return out

    def compact(self, group_ids) -> "Rollouts":
        """Only the rollouts of ``group_ids``, with ``tasks`` cut to those groups (in that order) and re-indexed."""
        keep = [int(g) for g in torch.as_tensor(group_ids, dtype=torch.long).flatten().tolist()]
        if len(set(keep)) != len(keep):
            raise ValueError(f"compact: repeated group ids in {keep}")
        bad = [g for g in keep if not 0 <= g < len(self.tasks)]
        if bad:
            raise ValueError(f"compact: group {bad[0]} out of range for {len(self.tasks)} tasks")
        remap = torch.full((len(self.tasks),), -1, dtype=torch.long)
        remap[torch.as_tensor(keep, dtype=torch.long)] = torch.arange(len(keep))
        rows = torch.nonzero(remap[self.group] >= 0).flatten()
        # rows in new group order, each group's rollouts in their old order
        rows = rows[torch.argsort(remap[self.group[rows]], stable=True)]
        out = self.take(rows)
        out.tasks = [self.tasks[g] for g in keep]
        out.group = remap[out.group]
        return out


def merge_metrics(parts: list[dict]) -> dict:
    """Metrics of several batches: counts (``*_count``, ``*/count``) add up, other figures keep the first value."""
    out: dict = {}
    for m in parts:
        for k, v in m.items():
            if k in out and k.endswith(("_count", "/count")):
                out[k] = out[k] + v
            else:
                out.setdefault(k, v)
    return out


@dataclass
class LossInputs:
    """Per-token tensors of one micro-batch, padded to [B, T] with ``mask``.

    ``old_logp`` is the log-prob before the first optimizer step of this
    update (frozen once when num_iterations > 1, else the detached current
    one), computed in the rollout's behaviour context where
    ``Rollouts.behavior_prompt_ids`` gives one; ``ref_logp`` is present only
    when beta > 0.
    Normalizers are explicit (NeMo-RL style): ``total_tokens`` counts the
    completion tokens of the whole optimizer step across micro-batches and
    processes, ``total_sequences`` its completions.
    """

    logp: torch.Tensor
    old_logp: torch.Tensor
    advantages: torch.Tensor
    mask: torch.Tensor
    ref_logp: torch.Tensor | None = None
    total_tokens: float = 0.0
    total_sequences: float = 0.0
    max_completion_length: int = 0
    num_micro_batches: int = 1
