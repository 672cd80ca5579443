"""The OpenAI-compatible sampling backend against a small local server on 127.0.0.1."""
from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch

from grpo_zoo.trainer.models import tiny_model_path
from grpo_zoo.trainer.openai_backend import EndpointError, generate_openai
from grpo_zoo.types import RolloutRequest, Task

ANSWERS = ["<answer>4</answer>", "I think <answer>5</answer>", "4", "no idea"]


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_model_path()))


class FakeServer:
    """Answers /v1/models, /v1/completions and /v1/chat/completions like vLLM does (canned texts)."""

    def __init__(self, tokenizer):
        self.tok = tokenizer
        self.requests: list[dict] = []
        self.reject_token_ids = False
        self.delay_s = 0.0
        self.fail_with: int | None = None
        self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                if self.path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": "served-test-model"}]})
                self._send(404, {"error": "not found"})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append({"path": self.path, "auth": self.headers.get("Authorization"), **body})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                try:
                    time.sleep(server.delay_s)
                    if server.fail_with:
                        return self._send(server.fail_with, {"error": {"message": "boom"}})
                    if self.path == "/v1/completions":
                        if server.reject_token_ids and "return_tokens_as_token_ids" in body:
                            return self._send(400, {"error": "unknown field return_tokens_as_token_ids"})
                        return self._send(200, server.completions(body))
                    if self.path == "/v1/chat/completions":
                        return self._send(200, server.chat(body))
                    self._send(404, {"error": "not found"})
                finally:
                    with server.lock:
                        server.in_flight -= 1

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # clients that timed out: broken pipes
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def completions(self, body):
        choices = []
        for i in range(body.get("n", 1)):
            text = ANSWERS[i % len(ANSWERS)]
            ids = self.tok(text, add_special_tokens=False)["input_ids"][: body["max_tokens"]]
            text = self.tok.decode(ids)
            if body.get("return_tokens_as_token_ids"):
                tokens = [f"token_id:{t}" for t in ids]
            else:
                tokens = [self.tok.decode([t]) for t in ids]
            choices.append(
                {
                    "index": i,
                    "text": text,
                    "finish_reason": "stop",
                    "stop_reason": None,
                    "logprobs": {"tokens": tokens, "token_logprobs": [-0.25] * len(ids), "top_logprobs": None},
                }
            )
        return {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": choices}

    def chat(self, body):
        return {
            "id": "chat-1",
            "choices": [
                {"index": i, "message": {"role": "assistant", "content": ANSWERS[i % len(ANSWERS)]}, "finish_reason": "stop"}
                for i in range(body.get("n", 1))
            ],
        }

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server(tokenizer):
    s = FakeServer(tokenizer)
    yield s
    s.close()


def _tasks(n=3):
    return [Task(id=f"t{i}", prompt=f"What is {i} + 4 - {i}?", answer="4") for i in range(n)]


def _request(ctx, tasks, budgets):
    return RolloutRequest(tasks=tasks, prompts=[ctx.hooks.build_prompt(ctx, t) for t in tasks], budgets=budgets)


def _config(url, **endpoint):
    return {
        "task": {"system_prompt": "Answer in <answer></answer>."},
        "sampling": {
            "backend": "openai",
            "temperature": 0.7,
            "top_p": 0.9,
            "max_new_tokens": 16,
            "endpoint": {"url": url, "timeout_s": 5, **endpoint},
        },
    }


def test_generate_fills_rollouts(zoo_context, server, tokenizer, monkeypatch):
    monkeypatch.setenv("ZOO_TEST_API_KEY", "sekret")
    ctx = zoo_context(config=_config(server.url, api_key_env="ZOO_TEST_API_KEY"))
    assert ctx.engine is None  # the tokenizer of config.model is loaded on its own
    tasks = _tasks(2)
    out = generate_openai(ctx, _request(ctx, tasks, [3, 2]))

    assert len(out) == 5 and out.group.tolist() == [0, 0, 0, 1, 1]
    rendered = tokenizer.apply_chat_template(
        [{"role": "system", "content": "Answer in <answer></answer>."}, {"role": "user", "content": tasks[0].prompt}],
        tokenize=False,
        add_generation_prompt=True,
    )
    assert out.prompt_text[0] == rendered
    assert out.prompt_ids[0] == tokenizer(rendered, add_special_tokens=False)["input_ids"]
    assert out.completion_text[:3] == [tokenizer.decode(tokenizer(a)["input_ids"]) for a in ANSWERS[:3]]
    eos = tokenizer.eos_token_id
    for ids, text in zip(out.completion_ids, out.completion_text):
        assert ids[-1] == eos  # the stop token is trained on, as with the local backend
        assert ids[:-1] == tokenizer(text, add_special_tokens=False)["input_ids"]
    # this server leaves the stop token out of its tokens: its log-prob is unknown (NaN: ratio 1 in the
    # behaviour correction), the others are kept
    for ids, lp in zip(out.completion_ids, out.sample_logp):
        assert len(lp) == len(ids) and torch.isnan(lp[-1]) and (lp[:-1] == -0.25).all()

    posts = [r for r in server.requests if r["path"] == "/v1/completions"]
    assert sorted(r["n"] for r in posts) == [2, 3]
    r = posts[0]
    assert r["model"] == "served-test-model"  # the server's only model, from GET /v1/models
    assert (r["temperature"], r["top_p"], r["max_tokens"]) == (0.7, 0.9, 16)
    assert r["logprobs"] == 1 and r["return_tokens_as_token_ids"] is True
    assert "top_k" not in r  # top_k = 0: disabled, not sent
    assert isinstance(r["seed"], int)
    assert r["auth"] == "Bearer sekret"


def test_logprobs_kept_when_they_line_up(zoo_context, server, tokenizer):
    # A server that returns the stop token too (as vLLM does in its token ids).
    orig = server.completions

    def with_eos(body):
        out = orig(body)
        for c in out["choices"]:
            c["logprobs"]["tokens"].append(f"token_id:{tokenizer.eos_token_id}")
            c["logprobs"]["token_logprobs"].append(-0.5)
        return out

    server.completions = with_eos
    ctx = zoo_context(config=_config(server.url, model="explicit-name"))
    out = generate_openai(ctx, _request(ctx, _tasks(2), [2, 2]))
    assert out.sample_logp is not None
    for lp, ids in zip(out.sample_logp, out.completion_ids):
        assert lp.shape == (len(ids),) and ids[-1] == tokenizer.eos_token_id
        assert torch.allclose(lp[:-1], torch.full((len(ids) - 1,), -0.25)) and float(lp[-1]) == -0.5
    assert server.requests[0]["model"] == "explicit-name"


def test_ids_from_tokenizer_when_server_refuses_token_ids(zoo_context, server, tokenizer):
    server.reject_token_ids = True
    ctx = zoo_context(config=_config(server.url))
    out = generate_openai(ctx, _request(ctx, _tasks(1), [4]))
    assert [c[:-1] for c in out.completion_ids] == [
        tokenizer(t, add_special_tokens=False)["input_ids"] for t in out.completion_text
    ]
    assert any("return_tokens_as_token_ids" not in r for r in server.requests)


def test_requests_run_concurrently(zoo_context, server):
    server.delay_s = 0.3
    ctx = zoo_context(config=_config(server.url, max_concurrency=4))
    t0 = time.perf_counter()
    out = generate_openai(ctx, _request(ctx, _tasks(4), [2, 2, 2, 2]))
    assert len(out) == 8
    assert server.max_in_flight >= 2
    assert time.perf_counter() - t0 < 4 * 0.3


def test_chat_endpoint_without_tokenizer(zoo_context, server, tmp_path):
    ctx = zoo_context(config={**_config(server.url), "model": str(tmp_path / "no-such-model")})
    out = generate_openai(ctx, _request(ctx, _tasks(1), [2]))
    assert out.completion_text == ANSWERS[:2]
    assert server.requests[-1]["path"] == "/v1/chat/completions"
    assert server.requests[-1]["messages"][-1]["role"] == "user"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_unreachable_endpoint_names_the_url(zoo_context, monkeypatch):
    monkeypatch.setattr("grpo_zoo.trainer.openai_backend._backoff", lambda attempt: None)
    url = f"http://127.0.0.1:{_free_port()}/v1"
    ctx = zoo_context(config=_config(url, model="m"))
    with pytest.raises(EndpointError, match=rf"{url}/completions.*cannot reach"):
        generate_openai(ctx, _request(ctx, _tasks(1), [1]))


def test_timeout_and_http_errors_name_the_url(zoo_context, server, monkeypatch):
    monkeypatch.setattr("grpo_zoo.trainer.openai_backend._backoff", lambda attempt: None)
    server.delay_s = 1.0
    ctx = zoo_context(config=_config(server.url, model="m", timeout_s=0.2))
    with pytest.raises(EndpointError, match=rf"{server.url}/completions: no answer within 0.2 s"):
        generate_openai(ctx, _request(ctx, _tasks(1), [1]))
    server.delay_s = 0.0
    server.fail_with = 503
    ctx = zoo_context(config=_config(server.url, model="m"))
    with pytest.raises(EndpointError, match=rf"{server.url}/completions failed: HTTP 503"):
        generate_openai(ctx, _request(ctx, _tasks(1), [1]))
    assert len([r for r in server.requests if r.get("model") == "m"]) >= 3  # 5xx is retried


def test_training_step_with_server_generation(zoo_train_step, server, tmp_path):
    """Rollouts come from the server, the update happens locally on the tiny model."""
    data = tmp_path / "tasks.jsonl"
    data.write_text("".join(json.dumps({"prompt": f"What is {i} + 4 - {i}?", "answer": "4"}) + "\n" for i in range(6)))
    cfg = _config(server.url)
    cfg["task"].update(source="file", path=str(data))
    cfg["sampling"]["group_size"] = 4
    cfg["train"] = {"prompts_per_step": 2, "micro_batch_size": 4, "lr": 1e-2}
    res = zoo_train_step(config=cfg, steps=2, kit_reward=False)
    for row in res.metrics:
        assert row["rollouts"] == 8
        assert 0 < row["reward/correct/mean"] < 1  # canned answers: 2 of 4 right in every group
        assert row["frac_zero_std"] == 0.0
        assert row["grad_norm"] > 0  # (the loss value itself is ~0 at ratio 1: advantages sum to 0)
    assert len([r for r in server.requests if r["path"] == "/v1/completions"]) == 4
    samples = (res.run_dir / "samples.jsonl").read_text()
    assert "<answer>4</answer>" in samples
