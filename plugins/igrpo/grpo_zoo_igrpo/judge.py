"""A generative-judge reward column: a judge model scores each solution in [0, 1].

Entry point ``judge`` (config section ``[judge]``). The judge is the policy
itself (``backend = "policy"``, the default: ``ctx.engine``), any local
transformers model (``"transformers"``, loaded with
``grpo_zoo.trainer.models.load_model_and_tokenizer``) or an OpenAI-compatible
chat endpoint (``"openai"``). Its reply is read by :func:`parse_score`; a reply
with no readable score gets ``judge.fallback`` and is counted in
``judge/unparsed``. The column is an ordinary reward column: weight it with
``reward.weights``, rank iGRPO drafts with it through ``igrpo.draft_weights``.
"""
from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import torch
from pydantic import Field, field_validator, model_validator

from grpo_zoo.config import EndpointConfig, Section
from grpo_zoo.hookspecs import hookimpl

from .template import check_template

DEFAULT_SYSTEM = "You are a careful and strict grader of solutions to problems."
DEFAULT_TEMPLATE = (
    "Grade the following solution.\n\n"
    "Problem:\n{question}\n\n"
    "{reference}"
    "Solution:\n{solution}\n\n"
    "How correct is the solution? Reply with a score between 0 (wrong) and 1 (fully correct) "
    "in the form <score>0.5</score>, and nothing else."
)
DEFAULT_REFERENCE = "Reference answer: {answer}\n\n"


class JudgeConfig(Section):
    backend: Literal["policy", "transformers", "openai"] = Field(
        "policy", description="policy: the model being trained (ctx.engine); transformers: judge.model; openai: judge.endpoint"
    )
    model: str | None = Field(None, description="transformers: model path or name (required); openai: model name")
    dtype: Literal["float32", "bfloat16"] = "float32"
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig, description="backend = 'openai' only")
    column: str = Field("judge", min_length=1, description="name of the reward column")
    system_prompt: str | None = Field(DEFAULT_SYSTEM, description="judge system message; None for none")
    template: str = Field(DEFAULT_TEMPLATE, description="judge user message: {question}, {solution}, {reference}")
    reference_text: str = Field(DEFAULT_REFERENCE, description="what {reference} becomes when the task has an answer: {answer}")
    use_reference: bool = Field(True, description="show the task's reference answer to the judge")
    max_solution_chars: int = Field(4000, ge=0, description="longer solutions keep their last characters; 0 = no limit")
    max_new_tokens: int = Field(32, ge=1)
    temperature: float = Field(0.0, ge=0, description="0 = greedy decoding")
    batch_size: int = Field(16, ge=1, description="judge prompts per generate() call (local backends)")
    fallback: float = Field(0.0, ge=0, le=1, description="score of a reply with no readable score")
    on_error: Literal["raise", "fallback"] = Field("raise", description="openai backend: a request that still fails after retries")
    retries: int = Field(2, ge=0, description="openai backend: extra attempts per request")

    @field_validator("template")
    @classmethod
    def _template(cls, v):
        return check_template(v, required={"solution"}, allowed={"question", "solution", "reference"})

    @field_validator("reference_text")
    @classmethod
    def _reference(cls, v):
        return check_template(v, required=set(), allowed={"answer"})

    @model_validator(mode="after")
    def _needs_model(self):
        if self.backend == "transformers" and not self.model:
            raise ValueError("judge.model is required when judge.backend = 'transformers'")
        return self


# ---- the score parser ----------------------------------------------------------------------------------------------
_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_VALUE = rf"({_NUM})\s*(?:(%)|(?:/|\bout of\b)\s*({_NUM}))?"
_TAG = re.compile(rf"<score>\s*{_VALUE}\s*</score>", re.I)
_KEYWORD = re.compile(rf"\b(?:score|rating|grade)\b\s*(?:is|of|=|:)?\s*[:=]?\s*\**\s*{_VALUE}", re.I)
_BOXED = re.compile(rf"\\boxed\{{\s*{_VALUE}\s*\}}")
_ALONE = re.compile(rf"^\s*{_VALUE}\s*[.!]?\s*$")
_THINK = re.compile(r"<think>.*?</think>", re.S | re.I)
_VERDICT = {"correct": 1.0, "right": 1.0, "yes": 1.0, "true": 1.0, "incorrect": 0.0, "wrong": 0.0, "no": 0.0, "false": 0.0}


def _to_unit(num: str, percent: str | None, denom: str | None) -> float | None:
    x = float(num)
    if percent:
        x /= 100.0
    elif denom:
        d = float(denom)
        if d <= 0:
            return None
        x /= d
    elif x > 1.0:  # a bare number: [0, 1] as it is, (1, 10] out of 10, (10, 100] out of 100
        x = x / 10.0 if x <= 10.0 else x / 100.0 if x <= 100.0 else float("nan")
    if not (0.0 <= x <= 1.0):
        return None
    return x


def parse_score(text: str | None) -> float | None:
    """The judge's score in [0, 1], or None when the reply holds no readable score.

    Rules, first that applies (within a rule the last match counts, so a
    score restated at the end wins; ``<think>...</think>`` is ignored):
    1. ``<score>X</score>``; 2. ``score|rating|grade [is|:|=] X``;
    3. ``\\boxed{X}``; 4. the whole reply is one number; 5. the whole reply
    is one verdict word (correct/right/yes/true -> 1, incorrect/wrong/no/false -> 0).
    X may be ``a/b``, ``a out of b`` or ``a%``; a bare number in [0, 1] is
    taken as it is, in (1, 10] as out of 10, in (10, 100] as out of 100.
    Anything outside [0, 1] after that is unreadable (None).
    """
    if not text:
        return None
    text = _THINK.sub(" ", text)
    for pattern in (_TAG, _KEYWORD, _BOXED, _ALONE):
        found = pattern.findall(text)
        if found:
            return _to_unit(*found[-1])
    word = re.sub(r"[^a-z]", "", text.strip().lower())
    return _VERDICT.get(word)


# ---- prompts and backends ------------------------------------------------------------------------------------------
def judge_messages(cfg: JudgeConfig, task, solution: str) -> list[dict]:
    if cfg.max_solution_chars and len(solution) > cfg.max_solution_chars:
        solution = "..." + solution[-cfg.max_solution_chars :]
    reference = ""
    if cfg.use_reference and task.answer is not None:
        reference = cfg.reference_text.format(answer=task.answer)
    user = cfg.template.format(question=task.question(), solution=solution, reference=reference)
    system = [{"role": "system", "content": cfg.system_prompt}] if cfg.system_prompt else []
    return system + [{"role": "user", "content": user}]


def render(tokenizer, messages: list[dict]) -> str:
    if getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return "\n".join(m["content"] for m in messages) + "\n"


@torch.inference_mode()
def generate_local(model, tokenizer, prompts: list[str], max_new_tokens: int, temperature: float, batch_size: int,
                   seed: int = 0) -> list[str]:
    """Judge replies from a local causal LM (greedy when temperature == 0)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    was_training = model.training
    model.eval()
    out: list[str] = []
    try:
        if temperature > 0:
            torch.manual_seed(seed)
        for s in range(0, len(prompts), batch_size):
            encoded = [tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts[s : s + batch_size]]
            plen = max(len(e) for e in encoded)
            ids = torch.full((len(encoded), plen), pad, dtype=torch.long)
            attn = torch.zeros_like(ids)
            for r, e in enumerate(encoded):
                ids[r, plen - len(e) :] = torch.tensor(e, dtype=torch.long)
                attn[r, plen - len(e) :] = 1
            kwargs = {"do_sample": True, "temperature": temperature} if temperature > 0 else {"do_sample": False}
            gen = model.generate(
                input_ids=ids.to(device), attention_mask=attn.to(device), max_new_tokens=max_new_tokens,
                pad_token_id=pad, **kwargs,
            )
            out += tokenizer.batch_decode(gen[:, plen:], skip_special_tokens=True)
    finally:
        model.train(was_training)
    return out


def _post_chat(endpoint: EndpointConfig, model: str | None, messages: list[dict], max_tokens: int, temperature: float,
               retries: int) -> str:
    body = {"messages": messages, "max_tokens": max_tokens, "temperature": temperature}
    if model or endpoint.model:
        body["model"] = model or endpoint.model
    headers = {"Content-Type": "application/json"}
    key = os.environ.get(endpoint.api_key_env)
    if key:
        headers["Authorization"] = f"Bearer {key}"
    url = endpoint.url.rstrip("/") + "/chat/completions"
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            req = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
            with urllib.request.urlopen(req, timeout=endpoint.timeout_s) as resp:
                data = json.loads(resp.read().decode())
            return data["choices"][0]["message"]["content"] or ""
        except (urllib.error.URLError, OSError, KeyError, IndexError, ValueError) as exc:
            last = exc
            if attempt < retries:
                time.sleep(min(0.5 * 2**attempt, 4.0))
    raise RuntimeError(f"judge.endpoint.url={endpoint.url!r}: request failed after {retries + 1} attempt(s): {last}")


class Judge:
    """The ``judge`` reward plugin (one instance per run)."""

    def __init__(self):
        self._model = None
        self._tokenizer = None
        self._step = {"calls": 0, "unparsed": 0, "errors": 0, "score_sum": 0.0}
        self._total = {"calls": 0, "unparsed": 0, "errors": 0}

    @hookimpl
    def zoo_config_model(self):
        return JudgeConfig

    @hookimpl
    def zoo_reward(self, ctx, rollouts):
        cfg: JudgeConfig = ctx.config.judge
        if len(rollouts) == 0:
            return {cfg.column: torch.zeros(0)}
        messages = [judge_messages(cfg, rollouts.task_of(i), t) for i, t in enumerate(rollouts.completion_text)]
        keys = [json.dumps(m, sort_keys=True) for m in messages]
        unique = list(dict.fromkeys(keys))  # identical (task, solution) pairs are judged once
        first = {k: keys.index(k) for k in unique}
        replies, errors = self._ask(ctx, cfg, [messages[first[k]] for k in unique])
        scores_by_key = {}
        unparsed = 0
        for k, reply in zip(unique, replies):
            s = parse_score(reply)
            if s is None:
                unparsed += keys.count(k)
                s = cfg.fallback
            scores_by_key[k] = s
        scores = torch.tensor([scores_by_key[k] for k in keys], dtype=torch.float32)
        for d in (self._step, self._total):
            d["calls"] += len(keys)
            d["unparsed"] += unparsed
            d["errors"] += errors
        self._step["score_sum"] += float(scores.sum())
        return {cfg.column: scores}

    def _ask(self, ctx, cfg: JudgeConfig, messages: list[list[dict]]) -> tuple[list[str | None], int]:
        """Replies (None where a request failed and on_error = 'fallback') and the number of failures."""
        if cfg.backend == "openai":
            def one(m):
                try:
                    return _post_chat(cfg.endpoint, cfg.model, m, cfg.max_new_tokens, cfg.temperature, cfg.retries)
                except RuntimeError:
                    if cfg.on_error == "raise":
                        raise
                    return None

            with ThreadPoolExecutor(max_workers=cfg.endpoint.max_concurrency) as pool:
                replies = list(pool.map(one, messages))
            return replies, sum(r is None for r in replies)
        model, tok = self._local(ctx, cfg)
        prompts = [render(tok, m) for m in messages]
        seed = ctx.generator(0x7D6E).initial_seed()
        return generate_local(model, tok, prompts, cfg.max_new_tokens, cfg.temperature, cfg.batch_size, seed), 0

    def _local(self, ctx, cfg: JudgeConfig):
        if cfg.backend == "policy":
            if ctx.engine is None:
                raise RuntimeError("judge.backend = 'policy' needs the policy model (ctx.engine is None)")
            return ctx.engine.model, ctx.engine.tokenizer
        if self._model is None:
            from grpo_zoo.trainer.models import load_model_and_tokenizer

            model, tok = load_model_and_tokenizer(cfg.model, cfg.dtype)
            if ctx.engine is not None:
                model = model.to(next(ctx.engine.model.parameters()).device)
            model.eval().requires_grad_(False)
            self._model, self._tokenizer = model, tok
        return self._model, self._tokenizer

    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        s = self._step
        m = {
            "judge/calls_count": s["calls"],
            "judge/unparsed": s["unparsed"],
            "judge/unparsed_frac": s["unparsed"] / max(s["calls"], 1),
            "judge/errors": s["errors"],
            "judge/mean_score": s["score_sum"] / max(s["calls"], 1),
            "judge/unparsed_total": self._total["unparsed"],
        }
        self._step = {"calls": 0, "unparsed": 0, "errors": 0, "score_sum": 0.0}
        return m

    @hookimpl
    def zoo_state_dict(self, ctx):
        return {"total": dict(self._total)}

    @hookimpl
    def zoo_load_state_dict(self, ctx, state):
        self._total = {k: int(v) for k, v in state["total"].items()}
