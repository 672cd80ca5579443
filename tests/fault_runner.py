"""Subprocess driver for the fault tests: trains a tiny run and SIGKILLs itself at a chosen point.

usage: python fault_runner.py OUT CONFIG_JSON [--resume] [--kill STEP:PHASE]

Phases: ``observe`` (mid-step, after the rollouts), ``state`` (inside a checkpoint
write: model written, training state not yet), ``manifest`` (everything written
but the manifest), ``pointer`` (folder renamed into place, ``latest`` not yet moved),
``after`` (just after a checkpoint is complete).
"""
from __future__ import annotations

import json
import os
import random
import signal
import sys

import torch

from grpo_zoo import hookimpl
from grpo_zoo.testing import KitReward
from grpo_zoo.trainer import checkpoint
from grpo_zoo.trainer.loop import train


def die():
    sys.stdout.flush()
    os.kill(os.getpid(), signal.SIGKILL)


class Stateful:
    """State fed by the global RNGs: resume must restore RNGs and plugin state exactly."""

    def __init__(self):
        self.total, self.calls, self.table = 0.0, 0, {}

    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        self.calls += 1
        self.total += random.random() + float(torch.rand(()))
        self.table[ctx.step] = (ctx.step, torch.rand(3))  # int keys, tuples, tensors

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        return {"stateful/total": self.total, "stateful/calls": self.calls,
                "stateful/table": float(sum(float(v[1].sum()) for v in self.table.values()))}

    @hookimpl
    def zoo_state_dict(self, ctx):
        return {"total": self.total, "calls": self.calls, "table": self.table}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self.total, self.calls, self.table = state["total"], state["calls"], state["table"]


class Killer:
    def __init__(self, step=None, phase=None):
        self.step, self.phase = step, phase

    @hookimpl
    def zoo_observe(self, ctx, rollouts):
        if self.phase == "observe" and ctx.step == self.step:
            die()


def main(argv):
    out, cfg = argv[0], json.loads(argv[1])
    resume = "--resume" in argv
    step = phase = None
    if "--kill" in argv:
        s, phase = argv[argv.index("--kill") + 1].split(":")
        step = int(s)

    def wrap(name, when):
        real = getattr(checkpoint, name)

        def dying(*a, **kw):
            if phase == when[0] and checkpoint_step[0] == step and when[1] == "before":
                die()
            r = real(*a, **kw)
            if phase == when[0] and checkpoint_step[0] == step and when[1] == "after":
                die()
            return r

        setattr(checkpoint, name, dying)

    checkpoint_step = [None]
    real_save = checkpoint.save

    def save(ctx, run_dir, s, *a, **kw):
        checkpoint_step[0] = s
        r = real_save(ctx, run_dir, s, *a, **kw)
        if phase == "after" and s == step:
            die()
        return r

    checkpoint.save = save
    wrap("write_state", ("state", "before"))
    wrap("write_manifest", ("manifest", "before"))
    real_replace = checkpoint.os.replace

    def replace(src, dst):
        if phase == "pointer" and checkpoint_step[0] == step and str(dst).endswith("latest"):
            die()
        return real_replace(src, dst)

    checkpoint.os.replace = replace
    plugins = {"kit_reward": KitReward(), "stateful": Stateful(), "killer": Killer(step, phase)}
    if resume:
        train(None, resume=out, progress=False, extra_plugins=plugins)
    else:
        train(cfg, out=out, progress=False, extra_plugins=plugins)
    print("finished")


if __name__ == "__main__":
    main(sys.argv[1:])
