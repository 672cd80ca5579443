"""Built-in sampling: uniform budgets, chat prompts, generate-then-score, the configured backend."""
from ..hookspecs import hookimpl


@hookimpl(trylast=True)
def zoo_plan_budget(ctx, tasks, group_size):
    return [group_size] * len(tasks)  # a refill asks for at most budget_left // group_size tasks


@hookimpl(trylast=True)
def zoo_build_prompt(ctx, task):
    if not isinstance(task.prompt, str):
        return task.prompt
    system = ctx.config.task.system_prompt
    messages = [{"role": "system", "content": system}] if system else []
    return messages + [{"role": "user", "content": task.prompt}]


@hookimpl(trylast=True)
def zoo_rollout(ctx, request):
    return ctx.sample(request)


@hookimpl(trylast=True)
def zoo_generate(ctx, request):
    if ctx.config.sampling.backend == "openai":
        from ..trainer.openai_backend import generate_openai

        return generate_openai(ctx, request)
    if ctx.config.sampling.backend == "vllm":
        from ..trainer.vllm_backend import generate_vllm

        return generate_vllm(ctx, request)
    if ctx.engine is None:
        raise RuntimeError("the transformers backend needs a loaded model (ctx.engine is None)")
    out = ctx.engine.generate(request, ctx.config.sampling, seed=ctx.sampling_seed(request))
    out.weight_version = [ctx.step] * len(out)  # sampled by the policy being trained: always current
    return out


@hookimpl(trylast=True)
def zoo_trained_rollouts(ctx, budget):
    # plain sampling returns every rollout it draws; wrappers that keep some out (iGRPO's drafts) say so
    return int(budget)


@hookimpl
def zoo_accept_groups(ctx, rollouts):
    """Every group may be kept: filtering is a plugin's choice (e.g. dapo's reward-spread rule)."""
    import torch

    return torch.ones(len(rollouts.tasks), dtype=torch.bool)
