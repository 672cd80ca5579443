"""The LLM generator: prompts, a fake model function with canned JSON, an OpenAI-compatible endpoint, transformers."""
import json

import pytest

from grpo_zoo_golden_goose.generator_llm import EndpointBackend, LLMGenerator, LLMOptions, build_messages, pick_window
from grpo_zoo_golden_goose.store import read_records
from grpo_zoo_golden_goose.synthesize import SynthesisConfig, SynthesisError, synthesize

QUIET = {"progress": False, "log": lambda *_: None}
WRONG = [f"    total = total * {n} - 1" for n in range(2, 14)]


def canned(messages):
    """A fake generator LLM: masks the first `total +=` line of the code it is shown and answers in JSON."""
    text = messages[-1]["content"].split("Code:\n", 1)[1]
    line = next((ln for ln in text.splitlines() if "total +=" in ln), None)
    if line is None:
        return "I could not find a good span, sorry."
    span = line.strip()
    obj = {"masked_text": text.replace(span, "[MASK]", 1), "span": span, "distractors": WRONG}
    return "Here is the exercise:\n```json\n" + json.dumps(obj, indent=1) + "\n```"


def make_sources(tmp_path, n=6):
    folder = tmp_path / "src"
    folder.mkdir()
    for i in range(n):
        body = f"def f{i}(xs):\n    total = 0\n    for x in xs:\n        total += x * {i + 1}\n    return total\n"
        if i == n - 1:
            body = "def g():\n    return None\n"  # the fake LLM finds nothing here: no_json
        (folder / f"m{i}.py").write_text(body)
    return folder


def test_prompts_per_domain_ask_for_json():
    for domain, word in [("code", "lines of code"), ("passage", "sentences"), ("math", "steps")]:
        msgs = build_messages({"domain": domain, "prefix": "Q?" if domain == "math" else ""}, "TEXT", 12)
        user = msgs[-1]["content"]
        assert '"masked_text"' in user and '"distractors"' in user and "12 distractors" in user and word in user
        assert "[MASK]" in user and "TEXT" in user
    assert "Q?" in build_messages({"domain": "math", "prefix": "Q?"}, "S", 10)[-1]["content"]


def test_window_is_bounded():
    import random

    text = "\n".join(f"line {i} = {i}" for i in range(2000))
    a, b = pick_window(text, "code", 500, random.Random(0))
    assert b - a <= 500 and (a == 0 or text[a - 1] == "\n")


def test_llm_generator_with_fake_model(tmp_path):
    folder = make_sources(tmp_path)
    cfg = SynthesisConfig(input=str(folder), out=str(tmp_path / "out"), generator="llm", distractors=10,
                          extra={"backend": canned}, min_chars=5)
    summary = synthesize(cfg, **QUIET)
    assert summary["kept"] == 5 and summary["rejected_by_reason"] == {"no_json": 1}
    tasks = [json.loads(x) for x in (tmp_path / "out" / "tasks.jsonl").read_text().splitlines()]
    t = tasks[0]
    src = (folder / t["source_id"]).read_text()
    assert src[t["span_start"] : t["span_end"]] == t["answer"] and t["answer"].startswith("total +=")
    assert t["generator"] == "llm" and "    [MASK]" in t["masked_text"]
    assert all(o.startswith("total") for o in t["options"])  # distractors shown like the span (indent removed)


def test_generator_errors_are_retried_on_resume(tmp_path):
    folder = make_sources(tmp_path)

    def down(messages):
        raise ConnectionError("connection refused")

    cfg = SynthesisConfig(input=str(folder), out=str(tmp_path / "out"), generator="llm", extra={"backend": down},
                          max_consecutive_errors=3)
    with pytest.raises(SynthesisError, match="3 generator calls failed"):
        synthesize(cfg, **QUIET)
    recs = read_records(tmp_path / "out" / "records.jsonl")
    assert [r for r in recs if "source_id" in r] and len([r for r in recs if "source_id" in r]) == 3
    assert recs[0]["settings"]["generator"] == "llm"  # the settings header goes with the first record
    assert not (tmp_path / "out" / "settings.json").exists()  # written only when a run succeeds
    cfg.extra = {"backend": canned}
    summary = synthesize(cfg, **QUIET)
    assert summary["sources_processed_now"] == 6 and summary["kept"] == 5
    assert "generator_error" not in summary["rejected_by_reason"]


@pytest.mark.parametrize("api", ["chat", "completions"])
def test_openai_compatible_endpoint(tmp_path, api, zoo_fake_endpoint):
    server = zoo_fake_endpoint(lambda body: canned(body["messages"]) if "messages" in body
                               else canned([{"content": body["prompt"]}]))
    folder = make_sources(tmp_path)
    cfg = SynthesisConfig(input=str(folder), out=str(tmp_path / "out"), generator="llm", endpoint=server.url,
                          endpoint_model="fake-llm", api=api, min_chars=5)
    summary = synthesize(cfg, **QUIET)
    assert summary["kept"] == 5
    last = server.requests[-1]
    assert last["path"] == ("/v1/chat/completions" if api == "chat" else "/v1/completions")
    assert last["body"]["model"] == "fake-llm" and last["body"]["temperature"] == 0.0


def test_endpoint_failure_is_a_generator_error():
    gen = LLMGenerator(EndpointBackend("http://127.0.0.1:9", timeout_s=2), LLMOptions())
    import random

    out = gen.propose({"id": "x", "text": "a b c. d e f.", "domain": "passage"}, random.Random(0))
    assert out[0].reason == "generator_error" and "endpoint" in out[0].detail


def test_transformers_backend_on_tiny_model(tmp_path):
    """Plumbing through a real transformers model: a random model writes no JSON, so items are rejected."""
    folder = make_sources(tmp_path, n=2)
    cfg = SynthesisConfig(input=str(folder), out=str(tmp_path / "out"), generator="llm", model="tiny-random",
                          max_new_tokens=8)
    summary = synthesize(cfg, **QUIET)
    assert summary["kept"] == 0 and summary["rejected_by_reason"] == {"no_json": 2}
