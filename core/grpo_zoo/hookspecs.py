"""Hook specifications. Every hook takes keyword arguments; ``ctx`` is the RunContext.

"first" hooks return the first non-None answer (plugins before built-ins);
the others collect every plugin's answer. docs/hooks.md documents each one.
"""
import pluggy

hookspec = pluggy.HookspecMarker("grpo_zoo")
hookimpl = pluggy.HookimplMarker("grpo_zoo")


@hookspec
def zoo_config_model():
    """Return the pydantic model of this plugin's config section (section name = plugin name)."""


# curriculum
@hookspec(firstresult=True)
def zoo_task_source(ctx):
    """Return the run's TaskSource (a sequence of Task)."""


@hookspec(firstresult=True)
def zoo_select_tasks(ctx, source, step, count, exclude):
    """Return the ``count`` tasks of training step ``step`` drawn from ``source``.

    ``exclude`` is None for the step's own draw; for a dynamic-sampling refill
    it is the set of task ids this step already drew, which the answer must avoid.
    """


@hookspec
def zoo_observe(ctx, rollouts, accepted):
    """See the scored rollouts of a step (update per-task statistics).

    ``rollouts`` holds every group the step scored, refills and rejected groups
    included; ``accepted`` is a bool tensor with one entry per group
    (``rollouts.tasks``): whether zoo_accept_groups kept it.
    """


# sampling
@hookspec(firstresult=True)
def zoo_plan_budget(ctx, tasks, group_size, budget_left):
    """Return one rollout count per task (list of int).

    ``budget_left`` is None for the step's first batch; for a refill batch it is
    how many rollouts of the step's budget the kept groups have not used.
    """


@hookspec(firstresult=True)
def zoo_build_prompt(ctx, task):
    """Return the prompt (text or chat messages) for ``task``."""


@hookspec(firstresult=True)
def zoo_rollout(ctx, request):
    """Turn a RolloutRequest into scored Rollouts; method plugins wrap it."""


@hookspec(firstresult=True)
def zoo_generate(ctx, request):
    """Sample completions for a RolloutRequest with a backend; returns unscored Rollouts."""


# reward
@hookspec
def zoo_reward(ctx, rollouts):
    """Return named reward columns: dict of column name -> float tensor [R]."""


# advantage
@hookspec(firstresult=True)
def zoo_group_center(ctx, values, groups):
    """Return each rollout's group centre (tensor [R]) for ``values``."""


@hookspec(firstresult=True)
def zoo_group_scale(ctx, values, groups, center):
    """Return each rollout's divisor (tensor [R]) for ``values - center``."""


@hookspec(firstresult=True)
def zoo_aggregate_rewards(ctx, rollouts, weights):
    """Return advantages [R] from the reward columns and their weights."""


@hookspec(firstresult=True)
def zoo_select_for_loss(ctx, rollouts):
    """Return a bool tensor [R]: which rollouts enter the loss."""


# loss
@hookspec(firstresult=True)
def zoo_policy_loss(ctx, inputs):
    """Return the per-token policy loss [B, T] from LossInputs."""


@hookspec(firstresult=True)
def zoo_kl(ctx, inputs):
    """Return the per-token KL to the reference [B, T] from LossInputs."""


@hookspec(firstresult=True)
def zoo_aggregate_loss(ctx, per_token, inputs):
    """Reduce the per-token loss [B, T] of one micro-batch to the scalar to backpropagate."""


# lifecycle
@hookspec
def zoo_run_start(ctx):
    """The run begins (after model and tasks are loaded, before step 0)."""


@hookspec
def zoo_run_end(ctx, metrics):
    """The run ends; ``metrics`` is the last step's metrics dict."""


@hookspec
def zoo_step_metrics(ctx, rollouts, step):
    """Return a dict of metrics for this step (names prefixed ``<plugin>/``)."""


@hookspec
def zoo_after_update(ctx, step):
    """The policy was updated at training step ``step`` (after its last optimizer step), on every rank:
    push the new weights to an inference server, refresh a second model, etc."""


@hookspec
def zoo_state_dict(ctx):
    """Return this plugin's state to checkpoint (a dict of tensors, numbers, strings, lists, tuples, dicts), or None."""


@hookspec
def zoo_load_state_dict(ctx, state):
    """Restore this plugin's state from the dict its zoo_state_dict returned."""


# dynamic sampling
@hookspec
def zoo_accept_groups(ctx, rollouts):
    """Return a bool tensor [len(rollouts.tasks)]: which scored groups the step may keep (None: no opinion).

    Every plugin's answer is AND-ed; the step refills rejected groups (sampling.max_gen_batches).
    """


# configuration
@hookspec
def zoo_check_config(config):
    """See the whole validated run config at load time; return a list of problems (strings) or None."""


# command line
@hookspec
def zoo_register_commands(subparsers):
    """Add sub-commands to ``grpo-zoo`` (argparse subparsers); called for every installed plugin."""


# sampling (added later; kept at the end of the file so parallel edits merge)
@hookspec(firstresult=True)
def zoo_trained_rollouts(ctx, budget):
    """Return how many of ``budget`` rollouts sampled for one task come back from sampling as its group (int)."""
