"""The LLM generator (the paper's method): a model masks a span and writes distractors, answering in JSON.

Backends: any transformers causal LM (loaded with grpo-zoo's model loader, so
``smollm2-135m``, ``tiny-random``, a local folder or a hub id), an
OpenAI-compatible endpoint (``/v1/chat/completions`` or ``/v1/completions``
through plain ``urllib``), or any Python callable ``messages -> reply text``.
"""
from __future__ import annotations

import json
import os
import random
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Callable

from .segment import line_units, sentence_units
from .validate import Rejected, extract_json, proposal_from_json

SYSTEM = (
    "You build multiple-choice fill-in-the-middle exercises from real documents. "
    "You answer with one JSON object and nothing else."
)

UNIT_WORDS = {
    "math": ("a contiguous span of one to three consecutive key reasoning steps of the solution", "steps"),
    "code": ("a contiguous span of two to five consecutive lines of code that carry real logic "
             "(not imports, comments, docstrings or blank lines)", "lines of code"),
    "passage": ("a contiguous span of one to three consecutive sentences that carry an important idea "
                "or a step of an argument", "sentences"),
}

TEMPLATE = """Read the {what} below. Choose {unit}. Replace exactly that span with the token [MASK] and write {n} distractors.

Rules for the distractors:
- each is plausible: the same style, format and about the same length as the removed span ({words}),
  on the same topic and using names that appear in the text;
- each is wrong in this context: it contradicts the surrounding text, breaks the logic, or computes something else;
- they differ from the removed span and from one another.
{extra}
Copy the text exactly. The removed span must appear verbatim in the original text, and "masked_text" must be
the original text with only the span replaced by [MASK] (you may shorten "masked_text" to the part around
the mask, but do not change any other character).

Answer with this JSON object only:
{{"masked_text": "... [MASK] ...", "span": "the removed text", "distractors": ["first wrong option", "second wrong option", ...]}}

{label}:
{body}
"""

EXTRA = {
    "code": "- keep the indentation and line breaks of the removed lines in the span and in every distractor.\n",
    "math": "- a distractor may contain a wrong formula, a wrong number or a step that does not follow.\n",
    "passage": "",
}
WHAT = {"math": "problem and its solution", "code": "source code", "passage": "passage"}
LABEL = {"math": "Solution", "code": "Code", "passage": "Passage"}


def build_messages(source: dict, window: str, n_distractors: int) -> list[dict]:
    domain = source["domain"]
    unit, words = UNIT_WORDS.get(domain, UNIT_WORDS["passage"])
    body = window
    label = LABEL.get(domain, "Passage")
    if source.get("prefix"):
        body = f"(Problem, for context only; do not mask it)\n{source['prefix'].strip()}\n\n{label}:\n{window}"
        label = "Problem and solution"
    user = TEMPLATE.format(
        what=WHAT.get(domain, "passage"), unit=unit, n=n_distractors, words=words,
        extra=EXTRA.get(domain, ""), label=label, body=body,
    )
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


def pick_window(text: str, domain: str, max_chars: int, rng: random.Random) -> tuple[int, int]:
    """A seeded window of at most ``max_chars`` that starts and ends at a unit (line or sentence) boundary."""
    if len(text) <= max_chars:
        return 0, len(text)
    units = [u for u in (line_units(text) if domain == "code" else sentence_units(text)) if u is not None]
    starts = [u[0] if domain != "code" else text.rfind("\n", 0, u[0]) + 1 for u in units]
    fits = [s for s in starts if s <= len(text) - max_chars // 2] or [0]
    a = rng.choice(fits)
    b = min(len(text), a + max_chars)
    cut = text.rfind("\n" if domain == "code" else " ", a, b)
    if b < len(text) and cut > a + max_chars // 2:
        b = cut
    return a, b


# --- backends ----------------------------------------------------------------------------------------

class FunctionBackend:
    """Wraps a callable ``messages -> str`` (tests, custom clients)."""

    def __init__(self, fn: Callable[[list[dict]], str]):
        self.fn = fn

    def __call__(self, messages: list[dict]) -> str:
        return self.fn(messages)


class TransformersBackend:
    def __init__(self, model: str, max_new_tokens: int = 1024, temperature: float = 0.0, dtype: str = "float32"):
        from grpo_zoo.trainer.models import load_model_and_tokenizer

        self.model, self.tok = load_model_and_tokenizer(model, dtype)
        self.model.eval()
        self.max_new_tokens, self.temperature = max_new_tokens, temperature

    def __call__(self, messages: list[dict]) -> str:
        import torch

        if getattr(self.tok, "chat_template", None):
            text = self.tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        else:
            text = "\n\n".join(m["content"] for m in messages) + "\n\n"
        ids = self.tok(text, return_tensors="pt", add_special_tokens=False)
        sample = self.temperature > 0
        with torch.inference_mode():
            out = self.model.generate(
                **ids, max_new_tokens=self.max_new_tokens, do_sample=sample,
                temperature=self.temperature if sample else None, top_p=None, top_k=None,
                pad_token_id=self.tok.pad_token_id,
            )
        return self.tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)


class EndpointBackend:
    """An OpenAI-compatible server (vLLM, llama.cpp, TGI, ...): POST /v1/chat/completions or /v1/completions."""

    def __init__(self, url: str, model: str | None = None, api: str = "chat", max_tokens: int = 1024,
                 temperature: float = 0.0, timeout_s: float = 120.0, api_key_env: str = "OPENAI_API_KEY"):
        if api not in ("chat", "completions"):
            raise ValueError(f"api must be 'chat' or 'completions', got {api!r}")
        base = url.rstrip("/")
        for tail in ("/chat/completions", "/completions"):
            base = base.removesuffix(tail)
        if not base.endswith("/v1"):
            base += "/v1"
        self.url = base + ("/chat/completions" if api == "chat" else "/completions")
        self.model, self.api, self.max_tokens, self.temperature, self.timeout = model, api, max_tokens, temperature, timeout_s
        self.api_key_env = api_key_env

    def __call__(self, messages: list[dict]) -> str:
        body: dict = {"max_tokens": self.max_tokens, "temperature": self.temperature}
        if self.model:
            body["model"] = self.model
        if self.api == "chat":
            body["messages"] = messages
        else:
            body["prompt"] = "\n\n".join(m["content"] for m in messages) + "\n\n"
        headers = {"Content-Type": "application/json"}
        key = os.environ.get(self.api_key_env)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        req = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                data = json.loads(resp.read().decode())
        except (urllib.error.URLError, OSError, json.JSONDecodeError) as exc:
            raise RuntimeError(f"endpoint {self.url}: {exc}") from exc
        choice = (data.get("choices") or [{}])[0]
        if self.api == "chat":
            return (choice.get("message") or {}).get("content") or ""
        return choice.get("text") or ""


def make_backend(model: str | None = None, endpoint: str | None = None, endpoint_model: str | None = None,
                 api: str = "chat", max_new_tokens: int = 1024, temperature: float = 0.0, fn=None):
    if fn is not None:
        return FunctionBackend(fn)
    if endpoint:
        return EndpointBackend(endpoint, endpoint_model or model, api, max_new_tokens, temperature)
    if model:
        return TransformersBackend(model, max_new_tokens, temperature)
    raise ValueError("the llm generator needs a model (--model / generator_model) or an endpoint (--endpoint)")


@dataclass
class LLMOptions:
    distractors: int = 10
    max_source_chars: int = 3000


class LLMGenerator:
    """One backend call per item: a window of the source in, a JSON proposal out."""

    name = "llm"

    def __init__(self, backend: Callable[[list[dict]], str], opts: LLMOptions | None = None):
        self.backend = backend
        self.opts = opts or LLMOptions()

    def propose(self, source: dict, rng: random.Random, count: int = 1) -> list:
        out = []
        for _ in range(count):
            a, b = pick_window(source["text"], source["domain"], self.opts.max_source_chars, rng)
            messages = build_messages(source, source["text"][a:b], self.opts.distractors)
            try:
                reply = self.backend(messages)
            except Exception as exc:  # a failing model/endpoint call rejects this item, not the run
                out.append(Rejected("generator_error", f"{type(exc).__name__}: {exc}"[:200]))
                continue
            try:
                out.append(proposal_from_json(extract_json(reply), a, b, reply))
            except Rejected as rej:
                out.append(rej)
        return out
