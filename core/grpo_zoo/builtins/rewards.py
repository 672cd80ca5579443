"""Built-in reward columns: ``correct`` (task scorer or answer match), ``format`` and ``length``."""
import re

import torch

from ..answers import answers_match, extract_answer
from ..hookspecs import hookimpl
from ..reward_functions import configured_columns


def correctness(task, text: str) -> float:
    if task.score is not None:
        return float(task.score(text))
    if task.answer is None:
        raise ValueError(f"task {task.id!r} has neither a scorer nor an answer")
    return 1.0 if answers_match(extract_answer(text), task.answer) else 0.0


@hookimpl(trylast=True)
def zoo_reward(ctx, rollouts):
    cfg = ctx.config.reward
    cols = {}
    if "correct" in cfg.builtin:
        cols["correct"] = [correctness(rollouts.task_of(i), t) for i, t in enumerate(rollouts.completion_text)]
    if "format" in cfg.builtin:
        pattern = re.compile(cfg.format_regex)
        cols["format"] = [1.0 if pattern.search(t) else 0.0 for t in rollouts.completion_text]
    if "length" in cfg.builtin:
        cols["length"] = [max(0.0, 1.0 - len(c) / cfg.length_target) for c in rollouts.completion_ids]
    out = {k: torch.tensor(v, dtype=torch.float32) for k, v in cols.items()}
    out.update(configured_columns(ctx, rollouts, taken=out))  # [reward] functions and [[reward.models]]
    return out
