"""zoo_trained_rollouts: how many of a budget's rollouts come back from sampling as the task's group."""
import pytest

from grpo_zoo import hookimpl
from grpo_zoo.plugins import PluginHookError


class DropsTwo:
    """A sampling wrapper that keeps two of every budget out of the group (e.g. two drafts)."""

    @hookimpl(wrapper=True)
    def zoo_trained_rollouts(self, ctx, budget):
        n = yield
        return max(n - 2, 0)


class Negative:
    @hookimpl
    def zoo_trained_rollouts(self, ctx, budget):
        return -1


def test_builtin_returns_the_budget(zoo_context):
    ctx = zoo_context()
    assert [ctx.hooks.trained_rollouts(ctx, b) for b in (1, 4, 7)] == [1, 4, 7]


def test_a_wrapper_declares_what_it_keeps(zoo_context):
    ctx = zoo_context(plugins={"drops": DropsTwo()})
    assert [ctx.hooks.trained_rollouts(ctx, b) for b in (1, 4, 7)] == [0, 2, 5]


def test_a_bad_answer_names_the_hook(zoo_context):
    ctx = zoo_context(plugins={"neg": Negative()})
    with pytest.raises(PluginHookError, match="zoo_trained_rollouts"):
        ctx.hooks.trained_rollouts(ctx, 4)
