"""Sampling through an OpenAI-compatible HTTP endpoint (what ``vllm serve`` exposes).

``[sampling] backend = "openai"`` sends one ``POST {url}/completions`` request
per prompt with ``n`` = the prompt's budget, from a thread pool of
``endpoint.max_concurrency`` workers. Chat prompts are rendered with the
local tokenizer (the engine's, else the tokenizer of ``config.model`` loaded on
its own), so the prompt text and the token ids used for training are exactly
what the server continued. Completion token ids come from the server when it
returns them (vLLM's ``return_tokens_as_token_ids``), else from the
tokenizer; per-token log-probs fill ``Rollouts.sample_logp`` when they line up
with the ids. Without any tokenizer the chat endpoint ``{url}/chat/completions``
is used instead and ids are left empty (scoring only, no training).

With ``endpoint.sync = "disk"`` or ``"nccl"`` the trained weights are pushed
to the server after every update (see :mod:`.weight_sync`); every rollout
records the weight version it was sampled with (``Rollouts.weight_version``).
With ``sync = "none"`` the server keeps the weights it started with.
"""
from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import torch

from ..types import RolloutRequest, Rollouts

_TOKEN_ID_PREFIX = "token_id:"
_RETRIES = 2


def _backoff(attempt: int) -> None:
    time.sleep(0.5 * 2**attempt)


class EndpointError(RuntimeError):
    """The endpoint could not be reached or answered with an error; the message names the URL."""


@lru_cache(maxsize=4)
def _load_tokenizer(model: str):
    from transformers import AutoTokenizer

    from .models import resolve_model_path

    tok = AutoTokenizer.from_pretrained(resolve_model_path(model))
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return tok


def tokenizer_for(ctx):
    """The engine's tokenizer, else the tokenizer of ``config.model`` alone, else None."""
    if ctx.engine is not None:
        return ctx.engine.tokenizer
    try:
        return _load_tokenizer(ctx.config.model)
    except Exception:  # no local tokenizer: fall back to the chat endpoint
        return None


def render(tokenizer, prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(prompt, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in prompt) + "\n"


def _encode(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class Client:
    """A tiny JSON-over-HTTP client with timeouts, retries on connection errors and 5xx, and clear errors."""

    def __init__(self, url: str, timeout_s: float, api_key: str | None):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.headers = {"Content-Type": "application/json"}
        self._api_key = api_key
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def post(self, route: str, body: dict) -> dict:
        return self._request(route, json.dumps(body).encode(), "POST")

    def get(self, route: str) -> dict:
        return self._request(route, None, "GET")

    def _request(self, route: str, data: bytes | None, method: str) -> dict:
        url = f"{self.url}/{route}"
        for attempt in range(_RETRIES + 1):
            req = urllib.request.Request(url, data=data, headers=self.headers, method=method)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    raw = resp.read().decode()
                    return json.loads(raw) if raw.strip() else {}  # some control routes answer 200 with no body
            except urllib.error.HTTPError as exc:
                detail = redact(exc.read().decode(errors="replace"), self._api_key)
                if exc.code >= 500 and attempt < _RETRIES:
                    _backoff(attempt)
                    continue
                raise EndpointError(f"{method} {url} failed: HTTP {exc.code} {exc.reason}: {detail}") from None
            except json.JSONDecodeError as exc:
                raise EndpointError(f"{method} {url}: the answer is not JSON ({exc})") from None
            except OSError as exc:  # URLError, refused connections, socket timeouts
                reason = getattr(exc, "reason", exc)
                if isinstance(reason, TimeoutError) or "timed out" in str(reason):
                    raise EndpointError(
                        f"{method} {url}: no answer within {self.timeout_s:g} s (sampling.endpoint.timeout_s)"
                    ) from None
                if attempt < _RETRIES:
                    _backoff(attempt)
                    continue
                raise EndpointError(
                    f"{method} {url}: cannot reach the endpoint ({reason}); is the server running? "
                    f"(sampling.endpoint.url)"
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover


ERROR_BODY_CHARS = 200


def redact(text: str, secret: str | None, limit: int = ERROR_BODY_CHARS) -> str:
    """An endpoint's error body fit for a log line: the key replaced (before cutting, so no prefix of it
    survives at the cut), control characters flattened, at most ``limit`` characters."""
    if secret:
        text = text.replace(secret, "[REDACTED]")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


@lru_cache(maxsize=8)
def served_model(client_url: str, timeout_s: float, api_key: str | None, fallback: str) -> str:
    """The endpoint's only served model (GET {url}/models), else ``fallback``."""
    try:
        data = Client(client_url, timeout_s, api_key).get("models").get("data") or []
    except EndpointError:
        return fallback
    return data[0]["id"] if len(data) == 1 and "id" in data[0] else fallback


def _choice_tokens(choice: dict, tokenizer, text: str, eos_id: int | None) -> tuple[list[int], list[float] | None]:
    """Token ids and per-token log-probs of one choice."""
    lp = choice.get("logprobs") or {}
    tokens, logps = lp.get("tokens"), lp.get("token_logprobs")
    if tokens and all(isinstance(t, str) and t.startswith(_TOKEN_ID_PREFIX) for t in tokens):
        ids = [int(t[len(_TOKEN_ID_PREFIX) :]) for t in tokens]
    elif tokenizer is not None:
        ids = _encode(tokenizer, text)
    else:
        ids = []
    # A completion that ended on the stop token: the server drops it from the
    # text (and most do from the tokens); the trainer learns to stop, so keep it.
    if choice.get("finish_reason") == "stop" and eos_id is not None and (not ids or ids[-1] != eos_id):
        if not choice.get("stop_reason") or choice.get("stop_reason") == eos_id:
            ids = ids + [eos_id]
            if logps is not None and len(logps) == len(ids) - 1:
                logps = list(logps) + [float("nan")]  # the stop token's log-prob is unknown: NaN, ratio 1
    if logps is not None and (len(logps) != len(ids) or any(x is None for x in logps)):
        logps = None
    return ids, logps


def generate_openai(ctx, request: RolloutRequest) -> Rollouts:
    """Unscored Rollouts for ``request`` from the configured OpenAI-compatible endpoint."""
    from .weight_sync import before_sampling

    cfg = ctx.config.sampling
    ep = cfg.endpoint
    version = before_sampling(ctx)  # pushes / waits per sampling.endpoint.sync and sampling.max_staleness
    tok = tokenizer_for(ctx)
    api_key = os.environ.get(ep.api_key_env) or None
    client = Client(ep.url, ep.timeout_s, api_key)
    model = ep.model or served_model(client.url, ep.timeout_s, api_key, ctx.config.model)
    seed = ctx.sampling_seed(request) & 0x7FFFFFFF
    eos_id = tok.eos_token_id if tok is not None else None
    common = {"model": model, "temperature": cfg.temperature, "top_p": cfg.top_p, "max_tokens": cfg.max_new_tokens}
    if cfg.top_k:
        common["top_k"] = cfg.top_k  # a vLLM extension
    ask_ids = [True]  # vLLM returns "token_id:N" tokens on request; other servers may refuse the key

    def one(i: int):
        prompt, n = request.prompts[i], request.budgets[i]
        body = {**common, "n": n, "seed": (seed + i) & 0x7FFFFFFF}
        if tok is None:
            if isinstance(prompt, str):
                prompt = [{"role": "user", "content": prompt}]
            body.update(messages=prompt, logprobs=True)
            text = "\n".join(f"{m['role']}: {m['content']}" for m in prompt)
            return text, [], client.post("chat/completions", body)
        text = render(tok, prompt)
        body.update(prompt=text, logprobs=1)
        if ask_ids[0]:
            try:
                return text, _encode(tok, text), client.post("completions", {**body, "return_tokens_as_token_ids": True})
            except EndpointError as exc:
                if "return_tokens_as_token_ids" not in str(exc):
                    raise
                ask_ids[0] = False
        return text, _encode(tok, text), client.post("completions", body)

    with ThreadPoolExecutor(max_workers=min(ep.max_concurrency, max(len(request.prompts), 1))) as pool:
        answers = list(pool.map(one, range(len(request.prompts))))

    group, prompt_text, prompt_ids, completion_ids, completion_text, logps = [], [], [], [], [], []
    truncated = []  # finish_reason "length": the server stopped it at max_tokens
    for g, (text, ids, answer) in enumerate(answers):
        choices = sorted(answer.get("choices") or [], key=lambda c: c.get("index", 0))
        if len(choices) != request.budgets[g]:
            raise EndpointError(
                f"{client.url}: asked for n={request.budgets[g]} completions, got {len(choices)} "
                f"(does the server support n > 1?)"
            )
        for c in choices:
            if tok is None:  # chat endpoint: OpenAI's chat log-prob layout
                out = (c.get("message") or {}).get("content") or ""
                content = (c.get("logprobs") or {}).get("content") or []
                cids = [int(x["token"][len(_TOKEN_ID_PREFIX) :]) for x in content if str(x.get("token", "")).startswith(_TOKEN_ID_PREFIX)]
                lp = [x["logprob"] for x in content] if content and len(cids) == len(content) else None
            else:
                out = c.get("text") or ""
                cids, lp = _choice_tokens(c, tok, out, eos_id)
            truncated.append(c.get("finish_reason") == "length")
            group.append(g)
            prompt_text.append(text)
            prompt_ids.append(ids)
            completion_ids.append(cids)
            completion_text.append(out)
            logps.append(lp)
    sample_logp = None
    if logps and all(x is not None for x in logps):
        sample_logp = [torch.tensor(x, dtype=torch.float32) for x in logps]
    out = Rollouts(
        tasks=list(request.tasks),
        group=torch.tensor(group, dtype=torch.long),
        prompt_text=prompt_text,
        prompt_ids=prompt_ids,
        completion_ids=completion_ids,
        completion_text=completion_text,
        sample_logp=sample_logp,
        weight_version=None if version is None else [version] * len(group),
        truncated=torch.tensor(truncated, dtype=torch.bool),
    )
    if version is not None:
        out.metrics["sampling/weight_version"] = float(version)
        out.metrics["sampling/staleness"] = float(ctx.step - version)
    return out
