"""Server/trainer drift with and without weight sync, on the project's model-serving test server.

Trains the tiny random model for STEPS steps with the HTTP backend against
``grpo_zoo.fake_endpoint.ModelEndpoint`` (a local OpenAI-compatible server over
the same torch model), once with ``sampling.endpoint.sync = "none"`` and once
with ``"disk"``. After every update it scores one fixed completion on the
server (echo) and in the trainer and prints the largest per-token log-prob gap,
next to the step's ``behavior/*`` metrics (sampler log-probs vs the trainer's
at sampling time). Last line: one JSON object {"none": [...], "disk": [...]}.
CPU, about a minute.
"""
from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

from grpo_zoo.fake_endpoint import ModelEndpoint
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.testing import KitReward
from grpo_zoo.trainer.loop import train
from grpo_zoo.trainer.openai_backend import Client

STEPS = 4
KEYS = ("behavior/kl", "behavior/logp_diff/mean", "behavior/logp_diff/max", "behavior/ratio/min",
        "behavior/ratio/max", "behavior/corrected_frac", "sampling/staleness")


class Probe:
    def __init__(self, server):
        self.server, self.gaps = server, []

    @hookimpl(trylast=True)  # after the built-in push
    def zoo_after_update(self, ctx, step):
        prompt, completion = ctx.engine.encode("What is 2 + 2?"), ctx.engine.encode(" It is 4, I think.")
        with torch.no_grad():
            mine = ctx.engine.logprobs([prompt], [completion])[0][0]
        body = {"prompt": prompt + completion, "echo": True, "max_tokens": 0, "logprobs": 1}
        lp = Client(f"{self.server.url}/v1", 60, None).post("completions", body)["choices"][0]["logprobs"]
        served = torch.tensor(lp["token_logprobs"][len(prompt):])
        self.gaps.append(float((served - mine).abs().max()))


def run(sync: str, out: Path) -> list[dict]:
    with ModelEndpoint("tiny-random") as server:
        probe = Probe(server)
        cfg = {
            "model": "tiny-random", "seed": 0,
            "task": {"source": "reasoning_gym", "name": "basic_arithmetic", "size": 16},
            "sampling": {"backend": "openai", "group_size": 4, "max_new_tokens": 16,
                         "endpoint": {"url": f"{server.url}/v1", "sync": sync}},
            "loss": {"behavior_correction": "token_truncate"},
            "train": {"steps": STEPS, "prompts_per_step": 4, "lr": 1e-2, "samples_per_step": 0},
        }
        # the test kit's reward (even token ids) gives mixed rewards, so the random model does move
        train(cfg, out=str(out), progress=False, extra_plugins={"probe": probe, "kit_reward": KitReward()})
        rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [{"step": r["step"], "server_gap_after_update": g, **{k: r.get(k) for k in KEYS}}
            for r, g in zip(rows, probe.gaps)]


def main() -> None:
    torch.set_num_threads(1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for sync in ("none", "disk"):
            results[sync] = run(sync, Path(tmp) / sync)
    cols = ("server_gap_after_update",) + KEYS
    print(f"{'sync':5} {'step':>4} " + " ".join(f"{c.split('/', 1)[-1][:16]:>16}" for c in cols))
    for sync, rows in results.items():
        for r in rows:
            print(f"{sync:5} {r['step']:>4} " + " ".join(f"{r[c] if r[c] is not None else float('nan'):>16.3g}" for c in cols))
    print(json.dumps(results), file=sys.stdout)


if __name__ == "__main__":
    main()
