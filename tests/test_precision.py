"""train.precision: bf16 mixed precision through accelerate keeps fp32 master weights and optimizer
state, runs sampling, log-probs and the reference under bf16 autocast, and its loss stays close to fp32."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo import hookimpl
from grpo_zoo.config import ConfigError
from grpo_zoo.context import make_context
from grpo_zoo.trainer.loop import Trainer
from grpo_zoo.trainer.step import policy_update
from grpo_zoo.types import RolloutRequest, Rollouts, Task

CONFIG = {
    "model": "tiny-random",
    "task": {"size": 8},
    "sampling": {"group_size": 2, "max_new_tokens": 6},
    "reward": {"builtin": []},
    "loss": {"beta": 0.04},
    "train": {"steps": 2, "prompts_per_step": 2, "micro_batch_size": 4, "lr": 1e-2},
}


@pytest.fixture(autouse=True)
def _fresh_accelerate_state():
    """accelerate keeps one process-wide precision: leave the default one to the next test."""
    from accelerate.state import AcceleratorState

    yield
    AcceleratorState._reset_state(reset_partial_state=False)


class EvenTokens:
    """A reward that differs between completions of a random model (the built-in ones are all 0 there)."""

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        return {"even": torch.tensor([sum(t % 2 == 0 for t in c) / len(c) for c in rollouts.completion_ids])}


def _trainer(tmp_path, precision, name):
    ctx = make_context(CONFIG, [f'train.precision="{precision}"'], extra_plugins={"even": EvenTokens()})
    return Trainer(ctx, tmp_path / name, progress=False, save_final=False)


def _linear_dtypes(model):
    """Output dtypes of one attention projection, recorded at every call."""
    seen = []
    model.model.layers[0].self_attn.q_proj.register_forward_hook(lambda m, a, out: seen.append(out.dtype))
    return seen


def _rollouts():
    # trained in one context, sampled in another: the loss's ratio is not 1, so it depends on the log-probs
    tasks = [Task(id="a", prompt="a"), Task(id="b", prompt="b")]
    prompts = [[5, 17, 33, 2], [5, 17, 33, 2], [9, 40, 41], [9, 40, 41]]
    behaviour = [[5, 18, 2], [5, 18, 2], [9, 41], [9, 41]]
    comps = [[101, 102, 103], [104, 105], [106, 107, 108, 109], [110, 111]]
    r = Rollouts(tasks=tasks, group=[0, 0, 1, 1], prompt_text=["a"] * 4, prompt_ids=prompts, completion_ids=comps,
                 completion_text=["x"] * 4, behavior_prompt_ids=behaviour)
    r.advantages = torch.tensor([1.0, -1.0, 0.5, -0.5])
    return r


def test_bf16_keeps_fp32_masters_and_loss_close_to_fp32(tmp_path):
    stats = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        trainer = _trainer(tmp_path, precision, precision)
        ctx = trainer.ctx
        seen = _linear_dtypes(ctx.engine.model)
        stats[precision] = policy_update(ctx, _rollouts(), trainer.optimizer, trainer.scheduler)
        assert set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}  # policy, behaviour, reference
        seen.clear()
        req = RolloutRequest(tasks=[Task(id="a", prompt="2+2=")], prompts=["2+2="], budgets=[2])
        ctx.engine.generate(req, ctx.config.sampling, seed=1)
        assert seen and set(seen) == {torch.bfloat16 if precision == "bf16" else torch.float32}  # sampling too
        assert all(p.dtype == torch.float32 for p in ctx.engine.model.parameters())
        state = trainer.optimizer.state_dict()["state"]
        assert state and all(s["exp_avg"].dtype == torch.float32 and s["exp_avg_sq"].dtype == torch.float32
                             for s in state.values())
    lo, hi = stats["fp32"], stats["bf16"]
    assert lo["loss"] != hi["loss"], "bf16 gave the fp32 loss bit for bit: autocast did not run"
    assert hi["loss"] == pytest.approx(lo["loss"], rel=0.05, abs=5e-3)
    assert hi["grad_norm"] == pytest.approx(lo["grad_norm"], rel=0.05)


def test_bf16_run_trains_and_updates_fp32_weights(tmp_path):
    trainer = _trainer(tmp_path, "bf16", "run")
    before = {n: p.detach().clone() for n, p in trainer.ctx.engine.model.named_parameters()}
    metrics = trainer.run()
    assert metrics["step"] == 1 and metrics["grad_norm"] > 0
    after = dict(trainer.ctx.engine.model.named_parameters())
    assert all(after[n].dtype == torch.float32 for n in before)
    assert any(not torch.equal(before[n], after[n].detach()) for n in before)


def test_precision_errors_name_the_key():
    with pytest.raises(ConfigError, match="train.precision='bf16' keeps fp32 master weights"):
        make_context(CONFIG, ['train.precision="bf16"', 'train.dtype="bfloat16"'])
    with pytest.raises(ConfigError, match="train.precision"):
        make_context(CONFIG, ['train.precision="fp8"'])


@pytest.mark.skipif(torch.cuda.is_available(), reason="CPU only: fp16 autocast exists on CUDA")
def test_fp16_on_cpu_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="train.precision='fp16' needs a CUDA device"):
        _trainer(tmp_path, "fp16", "fp16")


def test_bf16_checkpoint_resumes(tmp_path):
    """The optimizer accelerate prepared (one process) saves and loads its fp32 state."""
    from grpo_zoo.trainer.rundir import read_jsonl

    out = tmp_path / "run"
    raw = {**CONFIG, "train": {**CONFIG["train"], "steps": 1, "precision": "bf16"}}
    Trainer(make_context(raw, extra_plugins={"even": EvenTokens()}), out, progress=False).run()
    raw["train"]["steps"] = 2
    resumed = Trainer(make_context(raw, extra_plugins={"even": EvenTokens()}), out, resume=True, progress=False)
    assert resumed.start_step == 1
    state = resumed.optimizer.state_dict()["state"]
    assert state and all(s["exp_avg"].dtype == torch.float32 for s in state.values())
    resumed.run()
    assert [r["step"] for r in read_jsonl(out / "metrics.jsonl")] == [0, 1]
