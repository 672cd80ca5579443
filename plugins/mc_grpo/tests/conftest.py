"""Fixtures for the MC-GRPO tests: hand-made rollout batches (no model needed)."""
import pytest
import torch

from grpo_zoo import Rollouts, Task


def _make_rollouts(group, rewards: dict, num_tasks: int | None = None) -> Rollouts:
    """Rollouts with the given group index and reward columns; texts and ids are placeholders."""
    group = torch.as_tensor(group, dtype=torch.long)
    n = group.numel()
    num_tasks = num_tasks if num_tasks is not None else int(group.max()) + 1
    tasks = [Task(id=f"t{k}", prompt=f"q{k}", answer="0") for k in range(num_tasks)]
    return Rollouts(
        tasks=tasks,
        group=group,
        prompt_text=["p"] * n,
        prompt_ids=[[1]] * n,
        completion_ids=[[2]] * n,
        completion_text=["c"] * n,
        rewards={k: torch.as_tensor(v, dtype=torch.float32) for k, v in rewards.items()},
    )


@pytest.fixture
def make_rollouts():
    return _make_rollouts


@pytest.fixture
def sizes_to_index():
    return lambda sizes: torch.repeat_interleave(torch.arange(len(sizes)), torch.as_tensor(sizes))
