"""Local OpenAI-compatible HTTP endpoints for tests: canned replies (``FakeEndpoint``) or a served model (``ModelEndpoint``).

    with FakeEndpoint(lambda body: "<answer>5</answer>") as ep:
        ... point the plugin at f"{ep.url}/v1" ...
        assert ep.requests[0]["path"] == "/v1/chat/completions"

``reply(body)`` returns the text of the single choice; the server wraps it as
``/v1/chat/completions`` (``choices[0].message.content``) or ``/v1/completions``
(``choices[0].text``) asks. It listens on 127.0.0.1 only, answers requests
concurrently, and records each one (path, JSON body, Authorization header).
"""
from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeEndpoint:
    def __init__(self, reply: Callable[[dict], str]):
        self.reply = reply
        self.requests: list[dict] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                endpoint.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                text = endpoint.reply(body)
                if self.path.endswith("/chat/completions"):
                    choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                else:
                    choice = {"index": 0, "text": text, "finish_reason": "stop"}
                data = json.dumps({"object": "chat.completion", "choices": [choice]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):  # keep test output clean
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FakeEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ModelEndpoint:
    """A real local OpenAI-compatible server over a torch causal LM, with vLLM 0.33's weight-update routes.

        with ModelEndpoint("tiny-random") as server:
            ... sampling.endpoint.url = f"{server.url}/v1", sync = "disk" ...

    ``POST /v1/completions`` samples with the project's sampler from the served
    weights and returns each sampled token as ``token_id:N`` (when
    ``return_tokens_as_token_ids``) with its log-prob under the
    temperature-scaled policy; ``echo`` with ``max_tokens = 0`` scores the
    prompt instead (``token_logprobs[0]`` is None), as OpenAI's legacy API.
    The control routes are those :mod:`grpo_zoo.trainer.weight_sync` drives:
    ``/pause`` (``mode=wait`` drains in-flight requests; completions wait while
    paused), ``/resume``, ``/collective_rpc`` with ``reload_weights`` (really
    loads every ``*.safetensors`` of ``weights_path`` into the model: missing
    or unknown tensors are an error), ``/reset_prefix_cache``,
    ``/update_weight_version`` and ``GET /weight_info``. ``calls`` lists the
    routes in the order they were hit; ``reload_delay_s`` slows reloads down
    (staleness tests).
    """

    def __init__(self, model: str = "tiny-random", dtype: str = "float32"):
        import torch

        from .trainer.models import load_model_and_tokenizer

        self.name = model
        self.model, self.tok = load_model_and_tokenizer(model, dtype)
        self.model.eval().requires_grad_(False)
        self.weight_version: str | None = None
        self.calls: list[str] = []
        self.reloads: list[str] = []
        self.reload_delay_s = 0.0
        self._torch = torch
        self._forward = threading.Lock()  # one forward (or reload) at a time
        self._state = threading.Condition()
        self._paused = False
        self._in_flight = 0
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _send(self, code: int, obj) -> None:
                data = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                path = self.path.split("?")[0]
                endpoint.calls.append(f"GET {path}")
                if path == "/v1/models":
                    return self._send(200, {"object": "list", "data": [{"id": endpoint.name}]})
                if path == "/weight_info":
                    return self._send(200, {"weight_version": endpoint.weight_version})
                if path == "/is_paused":
                    return self._send(200, {"is_paused": endpoint._paused})
                self._send(404, {"error": f"no route {path}"})

            def do_POST(self):
                path, _, query = self.path.partition("?")
                endpoint.calls.append(f"POST {path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                try:
                    code, answer = endpoint._route(path, query, body)
                except Exception as exc:  # surfaced to the client as vLLM does: HTTP 500 with the message
                    code, answer = 500, {"error": f"{type(exc).__name__}: {exc}"}
                self._send(code, answer)

        class Quiet(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):  # clients that went away: broken pipes
                pass

        self._server = Quiet(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ routes
    def _route(self, path: str, query: str, body: dict):
        if path == "/v1/completions":
            with self._state:
                while self._paused:
                    self._state.wait()
                self._in_flight += 1
            try:
                return 200, self.completions(body)
            finally:
                with self._state:
                    self._in_flight -= 1
                    self._state.notify_all()
        if path == "/pause":
            with self._state:
                self._paused = True
                if "mode=wait" in query:
                    while self._in_flight:
                        self._state.wait()
            return 200, {"status": "paused"}
        if path == "/resume":
            with self._state:
                self._paused = False
                self._state.notify_all()
            return 200, {"status": "resumed"}
        if path == "/collective_rpc":
            if body.get("method") != "reload_weights":
                return 400, {"error": f"method {body.get('method')!r} is not served here"}
            self.reload((body.get("kwargs") or {}).get("weights_path"))
            return 200, {"results": [None]}
        if path == "/reset_prefix_cache":
            return 200, {}
        if path == "/update_weight_version":
            self.weight_version = str(body["new_version"])
            return 200, {"success": True, "new_version": self.weight_version}
        return 404, {"error": f"no route {path}"}

    def reload(self, weights_path: str | None) -> None:
        """Load the safetensors checkpoint in ``weights_path`` into the served model."""
        import time
        from pathlib import Path

        from safetensors.torch import load_file

        if not weights_path or not Path(weights_path).is_absolute() or not Path(weights_path).is_dir():
            raise ValueError(f"weights_path must be an absolute folder, got {weights_path!r}")
        files = sorted(Path(weights_path).glob("*.safetensors"))
        if not files:
            raise ValueError(f"no *.safetensors in {weights_path}")
        state = {}
        for f in files:
            state.update(load_file(str(f)))
        time.sleep(self.reload_delay_s)
        with self._forward:
            missing, unexpected = self.model.load_state_dict(state, strict=False)
            tied = set(getattr(self.model, "_tied_weights_keys", None) or [])
            if getattr(self.model.config, "tie_word_embeddings", False):
                tied.add("lm_head.weight")
            missing = [k for k in missing if k not in tied]
            if missing or unexpected:
                raise ValueError(f"checkpoint {weights_path}: missing {missing[:3]}, unexpected {unexpected[:3]}")
        self.reloads.append(weights_path)

    def completions(self, body: dict) -> dict:
        from .trainer import sampler

        torch = self._torch
        prompt = body["prompt"]  # text, or token ids as OpenAI's API allows
        ids = list(prompt) if isinstance(prompt, list) else self.tok(prompt, add_special_tokens=False)["input_ids"]
        temperature = float(body.get("temperature", 1.0))
        as_ids = bool(body.get("return_tokens_as_token_ids"))
        if body.get("echo"):
            return {"object": "text_completion", "model": self.name,
                    "choices": [self._echo(ids, temperature, as_ids)]}
        n = int(body.get("n", 1))
        gen = torch.Generator()
        gen.manual_seed(int(body.get("seed", 0)))
        eos = sorted({self.tok.eos_token_id} | {getattr(self.model.generation_config, "eos_token_id", None)} - {None})
        with self._forward:
            comps, logps = sampler.sample(
                self.model, [ids], [n], max_new_tokens=int(body.get("max_tokens", 16)), eos_ids=eos,
                pad_id=self.tok.pad_token_id, temperature=temperature, top_k=int(body.get("top_k", 0) or 0),
                top_p=float(body.get("top_p", 1.0)), generator=gen,
            )
        choices = []
        for i, (c, lp) in enumerate(zip(comps, logps)):
            stopped = bool(c) and c[-1] in eos
            tokens = [f"token_id:{t}" if as_ids else self.tok.decode([t]) for t in c]
            choices.append({
                "index": i,
                "text": self.tok.decode(c, skip_special_tokens=True),
                "finish_reason": "stop" if stopped else "length",
                "stop_reason": None,
                "logprobs": {"tokens": tokens, "token_logprobs": [float(x) for x in lp], "top_logprobs": None},
            })
        return {"object": "text_completion", "model": self.name, "choices": choices}

    def _echo(self, ids: list[int], temperature: float, as_ids: bool) -> dict:
        torch = self._torch
        with self._forward, torch.inference_mode():
            logits = self.model(input_ids=torch.tensor([ids])).logits[0].float() / temperature
        lp = torch.log_softmax(logits[:-1], -1).gather(-1, torch.tensor(ids[1:])[:, None]).squeeze(-1)
        tokens = [f"token_id:{t}" if as_ids else self.tok.decode([t]) for t in ids]
        return {"index": 0, "text": self.tok.decode(ids), "finish_reason": "length",
                "logprobs": {"tokens": tokens, "token_logprobs": [None] + lp.tolist(), "top_logprobs": None}}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "ModelEndpoint":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
