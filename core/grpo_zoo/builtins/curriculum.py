"""Built-in curriculum: the configured task source and a seeded, shuffled, epoch-aware order.

The order is a pure function of (seed, step), so resuming at step k needs no
saved position; the state dict keeps the epoch counter for reporting.
"""
import torch

from ..hookspecs import hookimpl
from ..hf_tasks import hf_tasks, is_dataset_dict_folder
from ..tasks import file_tasks, reasoning_gym_tasks


@hookimpl(trylast=True)
def zoo_task_source(ctx):
    t = ctx.config.task
    if t.source == "hf" or (t.source == "file" and is_dataset_dict_folder(t.path)):  # DatasetDict: task.split
        return hf_tasks(t)
    if t.source == "file":
        if not t.path:
            raise ValueError("task.source = 'file' needs task.path")
        return file_tasks(t.path, t.prompt_column, t.answer_column)
    return reasoning_gym_tasks(t.name, t.size, ctx.config.seed, t.params)


def epoch_order(n: int, epoch: int, seed: int, shuffle: bool) -> torch.Tensor:
    if not shuffle:
        return torch.arange(n)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    return torch.randperm(n, generator=g)


@hookimpl(trylast=True)
def zoo_select_tasks(ctx, source, step, count, exclude):
    n = len(source)
    if n == 0:
        raise ValueError("the task source is empty")
    if exclude is not None:
        return refill_tasks(ctx, source, step, count, exclude)
    orders, out = {}, []
    for pos in range(step * count, (step + 1) * count):
        epoch, k = divmod(pos, n)
        if epoch not in orders:
            orders[epoch] = epoch_order(n, epoch, ctx.config.seed, ctx.config.task.shuffle)
        out.append(source[int(orders[epoch][k])])
    ctx.info["epoch"] = ((step + 1) * count - 1) // n
    return out


def refill_tasks(ctx, source, step, count, exclude) -> list:
    """Up to ``count`` tasks for a dynamic-sampling refill: a seeded permutation of the pool (per step and
    refill round, so a resumed run draws the same), skipping the task ids this step already drew.

    Fewer than ``count`` (possibly none) come back when the pool runs out of tasks not yet drawn.
    """
    g = ctx.generator(0x5EF111)
    out = []
    for k in torch.randperm(len(source), generator=g).tolist():
        task = source[k]
        if task.id not in exclude:
            out.append(task)
            if len(out) == count:
                break
    return out


@hookimpl
def zoo_check_config(config):
    # "file" without a path is refused by TaskConfig itself; a Hugging Face source would otherwise
    # fail only when the task source loads, after the model
    t = config.task
    if t.source == "hf" and not t.path:
        return ["task.source = 'hf' needs task.path (a dataset folder, file or cached hub name)"]
    return None


@hookimpl
def zoo_observe(ctx, rollouts):
    ctx.info["tasks_seen"] = ctx.info.get("tasks_seen", 0) + len(rollouts.tasks)


@hookimpl
def zoo_step_metrics(ctx, rollouts, step):
    return {"curriculum/epoch": ctx.info.get("epoch", 0), "curriculum/tasks_seen": ctx.info.get("tasks_seen", 0)}


@hookimpl
def zoo_run_start(ctx):
    ctx.info.setdefault("tasks_seen", 0)


@hookimpl
def zoo_run_end(ctx, metrics):
    metrics["curriculum/epochs_done"] = ctx.info.get("epoch", 0)


@hookimpl
def zoo_state_dict(ctx):
    return {"tasks_seen": ctx.info.get("tasks_seen", 0)}


@hookimpl
def zoo_load_state_dict(ctx, state):
    ctx.info["tasks_seen"] = int(state["tasks_seen"])
