"""Core pieces a plugin author needed: truncated flags, mask_truncated_completions, Rollouts.merge/compact,
ctx.salt, and whole-config checks at load time (zoo_check_config)."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo import hookimpl
from grpo_zoo.config import ConfigError
from grpo_zoo.context import RunContext, make_context
from grpo_zoo.testing import BASE_CONFIG, merge
from grpo_zoo.types import Rollouts, RolloutRequest, Task, merge_metrics


def _r(tasks, group, rewards, **kw):
    n = len(group)
    return Rollouts(tasks=tasks, group=torch.tensor(group), prompt_text=["p"] * n, prompt_ids=[[1]] * n,
                    completion_ids=[[i + 1] * (i + 1) for i in range(n)], completion_text=[str(i) for i in range(n)],
                    rewards={"c": torch.tensor(rewards, dtype=torch.float32)}, **kw)


# ---- Rollouts.merge / compact
def test_merge_shifts_groups_and_adds_counts():
    a = _r([Task("a", "qa"), Task("b", "qb")], [0, 1, 1], [1, 0, 1], metrics={"x/n_count": 2, "x/rate": 0.5},
           truncated=torch.tensor([True, False, False]))
    b = _r([Task("c", "qc")], [0, 0], [0, 0], metrics={"x/n_count": 3, "x/rate": 0.9},
           truncated=torch.tensor([False, True]))
    m = Rollouts.merge([a, b])
    assert [t.id for t in m.tasks] == ["a", "b", "c"] and m.group.tolist() == [0, 1, 1, 2, 2]
    assert m.rewards["c"].tolist() == [1, 0, 1, 0, 0]
    assert m.truncated.tolist() == [True, False, False, False, True]
    assert m.metrics == {"x/n_count": 5, "x/rate": 0.5}
    with pytest.raises(ValueError, match="reward columns differ"):
        Rollouts.merge([a, Rollouts(**{**b.__dict__, "rewards": {"d": torch.zeros(2)}})])


def test_compact_keeps_groups_in_the_given_order_and_reindexes():
    r = _r([Task("a", "q"), Task("b", "q"), Task("c", "q")], [0, 1, 2, 1, 0], [1, 2, 3, 4, 5])
    out = r.compact([2, 0])
    assert [t.id for t in out.tasks] == ["c", "a"]
    assert out.group.tolist() == [0, 1, 1] and out.rewards["c"].tolist() == [3, 1, 5]
    assert out.completion_ids == [r.completion_ids[2], r.completion_ids[0], r.completion_ids[4]]
    with pytest.raises(ValueError, match="out of range"):
        r.compact([3])
    assert merge_metrics([{"a_count": 1, "b": 2}, {"a_count": 2, "b": 5}]) == {"a_count": 3, "b": 2}


# ---- ctx.salt
def test_salt_is_namespaced_stable_and_checked():
    s = RunContext.salt
    assert s("dapo", 1) == s("dapo", 1) and s("dapo", 1) != s("hints", 1) and s("dapo", 1) != s("dapo", 2)
    assert 0 <= s("dapo") < 2**56
    # a stable hash (not Python's salted str hash): pinned value
    import hashlib

    assert s("dapo", 3) == int.from_bytes(hashlib.blake2b(b"dapo\x003", digest_size=7).digest(), "big")
    with pytest.raises(ValueError, match="namespace"):
        s("", 1)
    with pytest.raises(TypeError, match="salt k"):
        s("dapo", "1")


# ---- zoo_check_config
def test_builtin_check_rejects_hf_source_without_path_at_load():
    with pytest.raises(ConfigError, match=r"task.source = 'hf' needs task.path"):
        make_context(merge(BASE_CONFIG, {"task": {"source": "hf"}}))


def test_plugin_check_sees_the_whole_config_and_is_named():
    class Limits:
        @hookimpl
        def zoo_check_config(self, config):
            if config.sampling.group_size > config.train.prompts_per_step:
                return [f"group_size {config.sampling.group_size} > prompts_per_step"]
            return None

    raw = merge(BASE_CONFIG, {"plugins": ["lim"]})
    make_context(merge(raw, {"train": {"prompts_per_step": 4}}), extra_plugins={"lim": Limits()})
    with pytest.raises(ConfigError, match=r"group_size 3 > prompts_per_step \(plugin 'lim'\)"):
        make_context(merge(raw, {"sampling": {"group_size": 3}, "train": {"prompts_per_step": 1}}), extra_plugins={"lim": Limits()})


# ---- truncated flags from the backends
def _engine_ctx(zoo_context, max_new_tokens=6):
    from grpo_zoo.trainer.engine import Engine
    from grpo_zoo.trainer.models import load_model_and_tokenizer

    ctx = zoo_context(config={"sampling": {"max_new_tokens": max_new_tokens, "group_size": 4}})
    model, tok = load_model_and_tokenizer("tiny-random", "float32")
    ctx.engine = Engine(model, tok, temperature=1.0)
    return ctx


def _check_flags(out, eos, limit):
    assert out.truncated is not None and len(out.truncated) == len(out)
    for ids, t in zip(out.completion_ids, out.truncated.tolist()):
        ends = bool(ids) and ids[-1] in eos
        assert t == (not ends)
        if t:
            assert len(ids) == limit


@pytest.mark.parametrize("path", ["sampler", "hf_generate"])
def test_engine_sets_truncated(zoo_context, monkeypatch, path):
    from grpo_zoo.trainer import engine as engine_mod

    ctx = _engine_ctx(zoo_context)
    eos = ctx.engine._eos_ids()
    # make EOS likely so both kinds occur: boost the EOS logit of the tiny model's head
    head = ctx.engine.model.get_output_embeddings()
    with torch.no_grad():
        if getattr(head, "bias", None) is None:
            head.bias = torch.nn.Parameter(torch.zeros(head.weight.shape[0]))
        head.bias[eos] += 10.0  # about 30% a token: some end, some run to the limit
    if path == "hf_generate":
        monkeypatch.setattr(ctx.engine, "lean_reason", "forced by the test")  # the model.generate fallback
    tasks = [Task(f"t{i}", f"{i} + 1 = ?") for i in range(4)]
    req = RolloutRequest(tasks=tasks, prompts=[t.prompt for t in tasks], budgets=[8] * 4)
    out = ctx.engine.generate(req, ctx.config.sampling, seed=1)
    _check_flags(out, eos, 6)
    assert 0 < int(out.truncated.sum()) < len(out)  # both kinds really occurred


def test_openai_backend_sets_truncated_from_finish_reason(zoo_context, monkeypatch):
    from grpo_zoo.trainer import openai_backend as ob

    reasons = ["stop", "length", "length", "stop"]

    def post(self, path, body):
        return {"choices": [{"index": i, "text": f"a{i}", "finish_reason": reasons[i], "logprobs": None}
                            for i in range(body["n"])]}

    monkeypatch.setattr(ob.Client, "post", post)
    monkeypatch.setattr(ob, "served_model", lambda *a: "m")
    ctx = zoo_context(config={"sampling": {"backend": "openai"}})
    tasks = [Task("t0", "q0"), Task("t1", "q1")]
    out = ob.generate_openai(ctx, RolloutRequest(tasks=tasks, prompts=["q0", "q1"], budgets=[4, 2]))
    assert out.truncated.tolist() == [False, True, True, False, False, True]


# ---- loss.mask_truncated_completions
class Pattern:
    """Marks every other rollout truncated (a wrapper), and records each micro-batch's LossInputs."""

    def __init__(self):
        self.inputs = []
        self.batch = None

    @hookimpl(wrapper=True)
    def zoo_rollout(self, ctx, request):
        out = yield
        out.truncated = torch.arange(len(out)) % 2 == 1
        return out

    @hookimpl(wrapper=True)
    def zoo_aggregate_loss(self, ctx, per_token, inputs):
        self.inputs.append(inputs)
        return (yield)

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        self.batch = rollouts
        return {}


@pytest.mark.parametrize("loss_type", ["dapo", "grpo"])
def test_mask_truncated_removes_exactly_the_truncated_rollouts(zoo_train_step, loss_type):
    spy = Pattern()
    cfg = {"loss": {"mask_truncated_completions": True, "type": loss_type}, "train": {"micro_batch_size": 64}}
    zoo_train_step(plugins={"pattern": spy}, config=cfg)
    b = spy.batch
    (inputs,) = spy.inputs
    from grpo_zoo.trainer.step import loss_order

    order = loss_order(b, list(range(len(b))))
    lengths = b.completion_lengths()
    for row, i in enumerate(order):
        got = int(inputs.mask[row].sum())
        assert got == (0 if b.truncated[i] else int(lengths[i])), (row, i)
    # TRL: token normalizers count only the kept tokens; sequence normalizers count every completion
    assert inputs.total_tokens == float(lengths[~b.truncated].sum())
    assert inputs.total_sequences == len(b)
    # off: every row keeps its tokens
    spy2 = Pattern()
    zoo_train_step(plugins={"pattern": spy2}, config={"loss": {"type": loss_type}, "train": {"micro_batch_size": 64}})
    assert spy2.inputs[0].total_tokens == float(spy2.batch.completion_lengths().sum())
    assert int(spy2.inputs[0].mask.sum()) == int(spy2.batch.completion_lengths().sum())


def test_mask_truncated_needs_flags(zoo_train_step):
    class NoFlags:
        @hookimpl(wrapper=True)
        def zoo_rollout(self, ctx, request):
            out = yield
            out.truncated = None
            return out

    with pytest.raises(ConfigError, match="mask_truncated_completions = true needs per-rollout truncated flags"):
        zoo_train_step(plugins={"nf": NoFlags()}, config={"loss": {"mask_truncated_completions": True}})
