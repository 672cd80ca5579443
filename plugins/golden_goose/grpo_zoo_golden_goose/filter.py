"""The difficulty filter: drop items the policy solves in all k rollouts (k = 16 in the paper).

Offline (``grpo-zoo goose filter``): sample k completions per task with a
model, count the correct ones, keep the items solved fewer than k times and
report the share that is *effective* (mixed rewards: 0 < solved < k).
Resumable: each item's count is one synced line of ``filter_log.jsonl``.
The online variant lives in the plugin (``filter_online``): it drops an item
from the training pool once its last k observed rollouts were all correct.
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from .format import extract_letter, format_item, to_task
from .store import SUMMARY, RecordWriter, load_items, read_records, write_outputs

LOG = "filter_log.jsonl"
DEFAULT_FORMAT = {"options": 9, "seed": 0, "distractor_pick": "random", "answer_format": "tag"}


@dataclass
class FilterConfig:
    dataset: str
    out: str | None = None
    model: str = "smollm2-135m"
    k: int = 16
    limit: int | None = None
    max_new_tokens: int = 32
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 64
    seed: int = 0
    system_prompt: str | None = None
    options: int | None = None
    threads: int = 0


def stored_format(path: str | Path) -> dict:
    p = Path(path) / SUMMARY
    if p.is_file():
        return {**DEFAULT_FORMAT, **json.loads(p.read_text()).get("format", {})}
    return dict(DEFAULT_FORMAT)


def classify(solved: int, k: int) -> str:
    return "solved_all" if solved >= k else "solved_none" if solved == 0 else "mixed"


def stats(counts: list[dict], k: int) -> dict:
    n = len(counts)
    kinds = [classify(c["solved"], c["k"]) for c in counts]
    parsed = sum(c.get("parsed", 0) for c in counts)
    total = sum(c["k"] for c in counts)
    return {
        "items": n,
        "k": k,
        "solved_all": kinds.count("solved_all"),
        "solved_none": kinds.count("solved_none"),
        "mixed": kinds.count("mixed"),
        "effective_share": kinds.count("mixed") / n if n else 0.0,
        "accuracy": sum(c["solved"] for c in counts) / total if total else 0.0,
        "letter_rate": parsed / total if total else 0.0,
    }


class Sampler:
    """k completions per task with a transformers model through the trainer's Engine (same prompts as training)."""

    def __init__(self, model: str, temperature: float, top_p: float, max_new_tokens: int, batch_size: int, system_prompt=None):
        from grpo_zoo.config import SamplingConfig
        from grpo_zoo.trainer.engine import Engine
        from grpo_zoo.trainer.models import load_model_and_tokenizer

        m, tok = load_model_and_tokenizer(model)
        self.engine = Engine(m, tok, temperature=temperature)
        self.sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size)
        self.system = system_prompt

    def messages(self, task):
        system = [{"role": "system", "content": self.system}] if self.system else []
        return system + [{"role": "user", "content": task.prompt}]

    def __call__(self, tasks, k: int, seed: int) -> list[list[str]]:
        from grpo_zoo.types import RolloutRequest

        req = RolloutRequest(tasks=tasks, prompts=[self.messages(t) for t in tasks], budgets=[k] * len(tasks))
        roll = self.engine.generate(req, self.sampling, seed)
        out: list[list[str]] = [[] for _ in tasks]
        for g, text in zip(roll.group.tolist(), roll.completion_text):
            out[g].append(text)
        return out


def run_filter(cfg: FilterConfig, progress: bool = True, sampler=None, log=print) -> dict:
    """Count solves for (a sample of) the data set; write the kept items to ``cfg.out``; return the stats."""
    import torch

    if cfg.k < 1:
        raise ValueError(f"--k must be >= 1, got {cfg.k}")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    fmt = stored_format(cfg.dataset)
    if cfg.options:
        fmt["options"] = cfg.options
    items = load_items(cfg.dataset)
    if cfg.limit:
        rng = random.Random(f"{cfg.seed}|filter")
        items = rng.sample(items, min(cfg.limit, len(items)))
    out = Path(cfg.out) if cfg.out else None
    done: dict[str, dict] = {}
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        done = {r["id"]: r for r in read_records(out / LOG) if r.get("k") == cfg.k}
    rows = {it["id"]: format_item(it, fmt["options"], fmt["seed"], fmt["distractor_pick"], fmt["answer_format"]) for it in items}
    todo = [it["id"] for it in items if it["id"] not in done]
    if todo and sampler is None:
        sampler = Sampler(cfg.model, cfg.temperature, cfg.top_p, cfg.max_new_tokens, cfg.batch_size, cfg.system_prompt)
    chunk = max(1, cfg.batch_size // cfg.k)
    bar = tqdm(total=len(items), initial=len(items) - len(todo), desc=f"goose filter (k={cfg.k})", unit="task", disable=not progress)
    writer = RecordWriter(out / LOG) if out is not None else None
    try:
        for start in range(0, len(todo), chunk):
            ids = todo[start : start + chunk]
            tasks = [to_task(rows[i]) for i in ids]
            completions = sampler(tasks, cfg.k, cfg.seed * 7919 + start)
            for tid, task, texts in zip(ids, tasks, completions):
                letters = [extract_letter(t, len(rows[tid]["options"])) for t in texts]
                rec = {"id": tid, "k": cfg.k, "solved": sum(1 for x in letters if x == task.answer),
                       "parsed": sum(1 for x in letters if x is not None), "letter": task.answer,
                       "picked": "".join(x or "-" for x in letters)}
                done[tid] = rec
                if writer is not None:
                    writer.write(rec)
            bar.update(len(ids))
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    counts = [done[it["id"]] for it in items]
    result = {**stats(counts, cfg.k), "model": cfg.model, "dataset": str(cfg.dataset)}
    if out is not None:
        kept = [it for it in items if done[it["id"]]["solved"] < cfg.k]
        write_outputs(out, kept, fmt, {"filter": result, "kept": len(kept), "dropped_solved_all": result["solved_all"]})
    log(format_stats(result))
    return result


def format_stats(s: dict) -> str:
    return (
        f"golden goose filter: {s['items']} tasks x {s['k']} rollouts with {s.get('model', '?')}: "
        f"{s['solved_all']} solved {s['k']}/{s['k']} (dropped), {s['solved_none']} never solved, "
        f"{s['mixed']} mixed -> effective share {s['effective_share']:.1%}; "
        f"accuracy {s['accuracy']:.1%}, a letter was given in {s['letter_rate']:.1%} of completions"
    )
