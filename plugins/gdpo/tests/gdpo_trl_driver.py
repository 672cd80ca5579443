"""Drive TRL's own GRPOTrainer advantage code with prescribed rewards (self-contained helper for the GDPO tests).

A tiny real ``GRPOTrainer`` is built on the cached tiny random Llama. Generation is
replaced through TRL's public ``rollout_func`` argument (fixed token ids, no
sampling), and each reward function returns the prescribed value of the rollout
it is asked about, found through a ``row`` dataset column. Then
``GRPOTrainer._generate_and_score_completions`` runs unmodified, from reward
collection through ``multi_objective_aggregation``, and we read the
``advantages`` it returns.
"""
from __future__ import annotations

import os
import tempfile

import torch


def trl_advantages(
    rewards: torch.Tensor,
    num_generations: int,
    weights: list[float] | None = None,
    aggregation: str = "normalize_then_sum",
    output_dir: str | None = None,
) -> torch.Tensor:
    """Advantages TRL computes for ``rewards`` [R, K] (rollouts laid out group by group, ``num_generations`` each)."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    from grpo_zoo.trainer.models import tiny_model_path

    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    n, k = rewards.shape
    if n % num_generations:
        raise ValueError(f"{n} rollouts are not a whole number of groups of {num_generations}")

    def reward_func(col: int):
        def f(prompts, completions, row, **kwargs):
            return [float(rewards[r, col]) for r in row]

        f.__name__ = f"col{col}"
        return f

    def rollout_func(prompts, trainer):  # stands in for generation: fixed ids, no sampling
        m = len(prompts)
        return {"prompt_ids": [[1, 2]] * m, "completion_ids": [[3, 4]] * m, "logprobs": [[0.0, 0.0]] * m}

    path = str(tiny_model_path())
    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path)
    args = GRPOConfig(
        output_dir=output_dir or tempfile.mkdtemp(prefix="gdpo-trl-"),
        num_generations=num_generations,
        per_device_train_batch_size=num_generations,
        multi_objective_aggregation=aggregation,
        reward_weights=list(weights) if weights is not None else None,
        max_completion_length=4,
        report_to=[],
        use_cpu=True,
        beta=0.0,
    )
    dataset = Dataset.from_dict({"prompt": ["p"] * num_generations, "row": list(range(num_generations))})
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[reward_func(c) for c in range(k)],
        args=args,
        train_dataset=dataset,
        processing_class=tok,
        rollout_func=rollout_func,
    )
    trainer.model.train()  # "train" mode: num_generations (not the eval count) shapes the groups
    inputs = [{"prompt": "p", "row": i} for i in range(n)]  # one entry per rollout, as TRL's sampler yields them
    out = trainer._generate_and_score_completions(inputs)
    return out["advantages"].detach().cpu().double()
