"""TRL-style reward functions, written for trl.GRPOTrainer and used by grpo-zoo unchanged.

Same file, either trainer:

    # TRL
    from trl import GRPOTrainer
    trainer = GRPOTrainer(model=..., reward_funcs=[format_reward, accuracy_reward], train_dataset=dataset)

    # grpo-zoo: examples/trl_reward.toml names them in [reward] functions; or from Python
    grpo_zoo.train("examples/trl_reward.toml", reward_funcs=[format_reward, accuracy_reward])

The dataset (examples/data/products.jsonl) is conversational: `prompt` holds chat turns, so
each completion arrives as [{"role": "assistant", "content": ...}], and its `solution` column
arrives as a keyword argument, one entry per completion.
"""
import re

_NUMBER = re.compile(r"-?\d+")


def format_reward(completions, **kwargs):
    """1.0 when the reply is a bare number, as the system prompt asks."""
    contents = [completion[0]["content"] for completion in completions]
    return [1.0 if re.fullmatch(r"\s*-?\d+\.?\s*", c) else 0.0 for c in contents]


def accuracy_reward(completions, solution, **kwargs):
    """1.0 when the last number in the reply is the solution, else 0.0.

    (A TRL reward function may also return None for a completion it cannot judge; grpo-zoo
    makes that NaN and applies reward.on_nonfinite.)"""
    rewards = []
    for completion, sol in zip(completions, solution):
        numbers = _NUMBER.findall(completion[0]["content"])
        rewards.append(float(bool(numbers) and numbers[-1] == sol))
    return rewards
