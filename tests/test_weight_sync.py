"""Weight sync for the HTTP backend against the project's own model-serving endpoint
(grpo_zoo.fake_endpoint.ModelEndpoint): vLLM 0.33's reload routes, drift with and without sync,
the staleness bound, and the zoo_after_update hook."""
from __future__ import annotations

import pytest
import torch

from grpo_zoo.fake_endpoint import ModelEndpoint
from grpo_zoo.hookspecs import hookimpl
from grpo_zoo.trainer.openai_backend import Client
from grpo_zoo.trainer.weight_sync import save_atomically, server_root

PUSH = ["POST /pause", "POST /collective_rpc", "POST /reset_prefix_cache", "POST /update_weight_version", "POST /resume"]


@pytest.fixture
def server():
    with ModelEndpoint("tiny-random") as s:
        yield s


def served_logp(server, prompt_ids, completion_ids) -> torch.Tensor:
    """The server's log-probs of a fixed completion (echo: the prompt scored, no sampling)."""
    answer = Client(f"{server.url}/v1", 30, None).post(
        "completions", {"prompt": prompt_ids + completion_ids, "echo": True, "max_tokens": 0, "logprobs": 1}
    )
    lp = answer["choices"][0]["logprobs"]["token_logprobs"]
    return torch.tensor(lp[len(prompt_ids):])


class Probe:
    """After each update (and after the built-in push), compare the server's and the trainer's
    log-probs of one fixed completion."""

    def __init__(self, server):
        self.server, self.gaps, self.versions = server, [], []

    @hookimpl(trylast=True)
    def zoo_after_update(self, ctx, step):
        prompt, completion = ctx.engine.encode("What is 2 + 2?"), ctx.engine.encode(" It is 4, I think.")
        with torch.no_grad():
            mine = ctx.engine.logprobs([prompt], [completion])[0][0]
        self.gaps.append(float((served_logp(self.server, prompt, completion) - mine).abs().max()))
        self.versions.append(self.server.weight_version)


def config(server, sync, **sampling):
    return {
        "sampling": {"backend": "openai", "temperature": 1.0, "max_new_tokens": 8, **sampling,
                     "endpoint": {"url": f"{server.url}/v1", "timeout_s": 60, "sync": sync}},
        "train": {"lr": 1e-2},
    }


def test_disk_sync_keeps_the_server_on_the_trained_weights(zoo_train_step, server, tmp_path):
    probe = Probe(server)
    res = zoo_train_step(plugins={"probe": probe}, config=config(server, "disk"), steps=2, run_dir=tmp_path / "run")
    # the run's first sampling call pushes the starting weights, then one push per update
    assert server.calls.count("POST /collective_rpc") == 3
    first = server.calls.index("POST /pause")
    assert server.calls[first : first + 5] == PUSH
    assert probe.versions == ["1", "2"]
    assert max(probe.gaps) < 1e-5, probe.gaps
    # the folders the server loaded: complete checkpoints, no temporary left, at most two kept
    kept = sorted(p.name for p in (tmp_path / "run" / "weight_sync").iterdir())
    assert kept == ["v000001", "v000002"]
    assert server.reloads[-1].endswith("v000002")
    for m in res.metrics:  # rollouts came from the current weights: sampler and trainer agree
        assert m["sampling/staleness"] == 0
        assert m["behavior/logp_diff/max"] < 1e-4


def test_without_sync_the_server_drifts_and_the_metrics_show_it(zoo_train_step, server, tmp_path):
    probe = Probe(server)
    res = zoo_train_step(plugins={"probe": probe}, config=config(server, "none"), steps=2, run_dir=tmp_path / "run")
    assert "POST /collective_rpc" not in server.calls and server.weight_version is None
    assert probe.gaps[0] > 1e-3 and probe.gaps[1] > probe.gaps[0]
    assert res.metrics[0]["behavior/logp_diff/max"] < 1e-4  # step 0: both still hold the initial weights
    assert res.metrics[1]["behavior/logp_diff/mean"] > 1e-3 and res.metrics[1]["behavior/kl"] > 1e-6
    assert res.metrics[1]["sampling/staleness"] == 1


@pytest.mark.parametrize("bound", [0, 1])
def test_staleness_bound_is_respected(zoo_train_step, server, tmp_path, bound):
    server.reload_delay_s = 4.0  # a slow server (a step here takes ~1 s): background pushes finish steps later
    cfg = config(server, "disk", max_staleness=bound)
    res = zoo_train_step(config=cfg, steps=3, run_dir=tmp_path / "run")
    staleness = [m["sampling/staleness"] for m in res.metrics]
    assert max(staleness) <= bound
    if bound:  # the trainer did not wait for every push
        assert max(staleness) == bound


def test_save_atomically_replaces_a_folder_whole(tmp_path):
    from grpo_zoo.trainer.models import load_model_and_tokenizer

    model, _ = load_model_and_tokenizer("tiny-random")
    out = save_atomically(model, tmp_path / "v000003")
    assert out.is_absolute() and any(out.glob("*.safetensors"))
    assert [p.name for p in tmp_path.iterdir()] == ["v000003"]


def test_server_root_drops_the_openai_prefix():
    assert server_root("http://h:8000/v1/") == "http://h:8000"
    assert server_root("http://h:8000") == "http://h:8000"


def test_reload_rejects_a_foreign_checkpoint(server, tmp_path):
    from safetensors.torch import save_file

    (tmp_path / "bad").mkdir()
    save_file({"not.a.weight": torch.zeros(2)}, str(tmp_path / "bad" / "model.safetensors"))
    c = Client(server.url, 30, None)
    from grpo_zoo.trainer.openai_backend import EndpointError

    # error bodies are cut to 200 characters (secrets hygiene): the start names what is missing
    with pytest.raises(EndpointError, match="checkpoint .*bad: missing"):
        c.post("collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": str(tmp_path / "bad")}})


class LaggingSync:
    """A syncer whose pushes finish only when someone waits for them (a very slow server)."""

    def __init__(self):
        self.version, self.queued, self.waits = 0, 0, 0

    def push(self, model, version):
        self.queued = version

    def wait(self):
        self.waits += 1
        self.version = self.queued


@pytest.mark.parametrize("bound, waits", [(0, 3), (1, 1), (3, 0)])
def test_sampling_waits_only_when_the_server_is_too_far_behind(zoo_context, bound, waits):
    from grpo_zoo.trainer import weight_sync

    ctx = zoo_context(config={"sampling": {"backend": "openai", "max_staleness": bound,
                                           "endpoint": {"sync": "disk"}}})
    ctx.engine = object()  # a trainer is present; the syncer below stands in for the server
    sync = LaggingSync()
    setattr(ctx, weight_sync._KEY, sync)
    setattr(ctx, weight_sync._FIRST, True)
    for step in range(4):
        ctx.step = step
        version = weight_sync.before_sampling(ctx)
        assert 0 <= step - version <= bound
        sync.push(None, step + 1)  # zoo_after_update with max_staleness > 0: no wait
    assert sync.waits == waits


class Recorder:
    """Sees every update: the step, and whether the weights already changed when it runs."""

    def __init__(self):
        self.calls, self.before = [], None

    @hookimpl(wrapper=True)
    def zoo_rollout(self, ctx, request):
        self.before = [p.detach().clone() for p in ctx.engine.model.parameters()]
        return (yield)

    @hookimpl
    def zoo_after_update(self, ctx, step):
        moved = any(not torch.equal(a, b) for a, b in zip(self.before, ctx.engine.model.parameters()))
        self.calls.append((step, moved))


def test_after_update_runs_once_per_step_after_the_optimizer_step(zoo_train_step):
    rec = Recorder()
    zoo_train_step(plugins={"rec": rec}, config={"train": {"lr": 1e-2}}, steps=2)
    assert rec.calls == [(0, True), (1, True)]
