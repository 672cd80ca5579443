"""Cost of one hook dispatch through the typed facade ``ctx.hooks`` (pluggy underneath).

Measures, in microseconds per call (best of several repeats):
- ``zoo_plan_budget`` through ``ctx.hooks.plan_budget`` (a "first" hook answered by the built-in),
  and the built-in function called directly: the difference is the dispatch overhead;
- ``zoo_group_center`` through ``ctx.hooks.group_center`` on 8 rollouts, and direct;
- ``ctx.normalize`` (two "first" dispatches plus the arithmetic);
- an "all" hook (``zoo_observe``) with 1 and with 5 no-op plugins active (plus the built-in),
  through the facade and through the raw pluggy relay.

Prints a human-readable table, then one JSON object on the last line.
Run: ``.venv/bin/python bench/hook_dispatch.py`` (a few seconds, CPU only, no model).
"""
from __future__ import annotations

import json
import platform
import timeit

import pluggy
import torch

import grpo_zoo
from grpo_zoo.builtins import advantage as builtin_advantage
from grpo_zoo.builtins import sampling as builtin_sampling
from grpo_zoo.context import make_context
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.segments import Groups
from grpo_zoo.types import Rollouts, Task

CONFIG = {"model": "tiny-random", "task": {"size": 4}}


def noop_plugin():
    class NoOp:
        @hookimpl
        def zoo_observe(self, ctx, rollouts):
            return None

    return NoOp


def make(n_noop: int):
    plugins = {f"noop{i}": noop_plugin() for i in range(n_noop)}
    return make_context(dict(CONFIG, plugins=list(plugins)), extra_plugins=plugins)


def per_call_us(fn, number: int, repeat: int = 5) -> float:
    fn()  # warm up (imports, caches)
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def main() -> dict:
    torch.set_num_threads(1)
    tasks = [Task(id="a", prompt="q"), Task(id="b", prompt="q")]
    values = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.0, 1.0])
    groups = Groups.from_sizes([3, 1, 2, 2])
    rollouts = Rollouts(
        tasks=[Task(id=str(i), prompt="q") for i in range(4)],
        group=groups.index,
        prompt_text=["p"] * 8,
        prompt_ids=[[1]] * 8,
        completion_ids=[[2]] * 8,
        completion_text=["x"] * 8,
    )
    ctx = make(0)
    n = 20000
    out: dict = {}
    out["plan_budget_us"] = per_call_us(lambda: ctx.hooks.plan_budget(ctx, tasks, 4), n)
    out["plan_budget_direct_us"] = per_call_us(lambda: builtin_sampling.zoo_plan_budget(ctx, tasks, 4), n)
    out["group_center_us"] = per_call_us(lambda: ctx.hooks.group_center(ctx, values, groups), n // 4)
    out["group_center_direct_us"] = per_call_us(
        lambda: builtin_advantage.zoo_group_center(ctx, values, groups), n // 4
    )
    out["normalize_us"] = per_call_us(lambda: ctx.normalize(values, groups), n // 10)
    for k in (1, 5):
        c = make(k)
        out[f"observe_{k}_plugins_us"] = per_call_us(lambda: c.hooks.observe(c, rollouts), n)
        out[f"observe_{k}_plugins_raw_pluggy_us"] = per_call_us(
            lambda: c.hooks.pm.hook.zoo_observe(ctx=c, rollouts=rollouts), n
        )
    out["dispatch_overhead_first_hook_us"] = out["plan_budget_us"] - out["plan_budget_direct_us"]
    out["dispatch_overhead_per_extra_plugin_us"] = (out["observe_5_plugins_us"] - out["observe_1_plugins_us"]) / 4
    out = {k: round(v, 3) for k, v in out.items()}
    out.update(
        {
            "bench": "hook_dispatch",
            "unit": "microseconds per call",
            "grpo_zoo": grpo_zoo.__version__,
            "pluggy": pluggy.__version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        }
    )
    return out


if __name__ == "__main__":
    result = main()
    for key, value in result.items():
        if key.endswith("_us"):
            print(f"{key:<40} {value:>10.3f} us")
    print(json.dumps(result))
