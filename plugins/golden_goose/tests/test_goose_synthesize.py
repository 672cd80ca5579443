"""The synthesis pipeline: heuristic generator on the standard library, provenance, resume, input forms."""
import json
from pathlib import Path

import datasets
import pytest

import grpo_zoo_golden_goose.synthesize as synth
from grpo_zoo.cli import main as zoo_main
from grpo_zoo_golden_goose.sources import load_source_rows, stdlib_root
from grpo_zoo_golden_goose.store import load_items, read_records
from grpo_zoo_golden_goose.synthesize import SynthesisConfig, SynthesisError, synthesize

QUIET = {"progress": False, "log": lambda *_: None}


def rows(path):
    return [json.loads(x) for x in (Path(path) / "tasks.jsonl").read_text().splitlines()]


def test_heuristic_on_stdlib_code(code_set, small_code):
    out, summary = code_set
    tasks = rows(out)
    assert summary["kept"] == len(tasks) >= 10
    assert summary["kept"] + summary["rejected"] >= summary["sources"]
    sources = {r["id"]: r for r in load_source_rows(small_code)}
    for t in tasks:
        src = sources[t["source_id"]]["text"]
        assert src[t["span_start"] : t["span_end"]] == t["answer"]  # provenance: exact char offsets
        assert t["masked_text"].count("[MASK]") == 1
        assert len(t["options"]) == 9 and t["options"][t["answer_index"]] == t["answer_option"]
        assert t["letter"] == "ABCDEFGHI"[t["answer_index"]]
        assert len(t["distractors"]) >= 10
        assert len({" ".join(o.split()) for o in t["options"]}) == 9
        assert t["id"].startswith(t["source_id"] + "@")
    assert len({t["id"] for t in tasks}) == len(tasks)
    # the saved datasets dataset holds the same rows
    data = datasets.load_from_disk(str(out / "dataset"))
    assert data.num_rows == len(tasks) and data[0]["id"] == tasks[0]["id"]
    assert json.loads((out / "summary.json").read_text())["tasks"] == len(tasks)
    assert str(stdlib_root()) and any(t["source_id"].startswith("stdlib/json/") for t in tasks)


def test_heuristic_on_stdlib_docstrings(docs_set):
    out, summary = docs_set
    tasks = rows(out)
    assert summary["sources"] == 40 and len(tasks) >= 30
    assert all(t["domain"] == "passage" and "\n" not in "".join(t["options"]) for t in tasks)
    assert all(t["source_id"].startswith("stdlib-doc/") for t in tasks)


def test_resume_after_interruption_writes_no_duplicates(tmp_path, monkeypatch, code_set, small_code):
    full_dir, _ = code_set
    out = tmp_path / "resumed"
    cfg = SynthesisConfig(input=small_code, out=str(out), context_chars=200)
    real, calls = synth.process_source, {"n": 0}

    def flaky(*a, **kw):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **kw)

    monkeypatch.setattr(synth, "process_source", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthesize(cfg, **QUIET)
    recs = read_records(out / "records.jsonl")
    assert "settings" in recs[0] and len(recs) == 1 + 4 and not (out / "tasks.jsonl").exists()
    # a crash in the middle of a write leaves a torn line: it is cut off, that source is redone
    with open(out / "records.jsonl", "a") as f:
        f.write('{"source_id": "stdlib/tor')
    monkeypatch.setattr(synth, "process_source", real)
    summary = synthesize(cfg, **QUIET)
    assert summary["sources_processed_now"] == summary["sources_selected"] - 4
    recs = [r for r in read_records(out / "records.jsonl") if "source_id" in r]
    assert len(recs) == len({r["source_id"] for r in recs}) == summary["sources"]
    resumed, full = rows(out), rows(full_dir)
    assert [t["id"] for t in resumed] != [] and sorted(t["id"] for t in resumed) == sorted(t["id"] for t in full)
    assert {t["id"]: t["prompt"] for t in resumed} == {t["id"]: t["prompt"] for t in full}
    # running once more does nothing new
    again = synthesize(cfg, **QUIET)
    assert again["sources_processed_now"] == 0 and again["kept"] == summary["kept"]


def test_resume_refuses_other_settings(tmp_path):
    out = tmp_path / "s"
    synthesize(SynthesisConfig(input="stdlib:code:heapq,bisect,json", out=str(out), limit=2), **QUIET)
    with pytest.raises(SynthesisError, match="seed"):
        synthesize(SynthesisConfig(input="stdlib:code:heapq,bisect,json", out=str(out), limit=2, seed=1), **QUIET)
    # a larger --limit continues the same synthesis
    more = synthesize(SynthesisConfig(input="stdlib:code:heapq,bisect,json", out=str(out), limit=3), **QUIET)
    assert more["sources_processed_now"] == 1 and more["sources"] == 3


def _story(i):
    places = ["mill", "bridge", "farm", "church", "inn", "well"]
    return " ".join(f"Sentence {j} of story {i} tells about the {w} near the river." for j, w in enumerate(places))


def test_input_forms(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    for i in range(12):
        (folder / f"story{i}.txt").write_text(_story(i))
    got = synthesize(SynthesisConfig(input=str(folder), out=str(tmp_path / "o1"), distractors=8, options=9), **QUIET)
    assert got["kept"] == 12
    assert {t["source_id"] for t in rows(tmp_path / "o1")} == {f"story{i}.txt" for i in range(12)}

    qa = [{"question": f"What is {i} + {i}?", "solution": f"We add {i} and {i} together carefully. "
           f"The sum of the two numbers is {2 * i} in total. So the answer is {2 * i} exactly."} for i in range(15)]
    jl = tmp_path / "math.jsonl"
    jl.write_text("\n".join(json.dumps(r) for r in qa))
    got = synthesize(SynthesisConfig(input=str(jl), out=str(tmp_path / "o2"), distractors=8), **QUIET)
    t = rows(tmp_path / "o2")[0]
    assert got["kept"] >= 10 and t["domain"] == "math" and t["prefix"].startswith("What is")
    assert "Problem:\nWhat is" in t["prompt"]

    pq = tmp_path / "p.parquet"
    datasets.Dataset.from_list([{"text": _story(i), "id": f"p{i}"} for i in range(12)]).to_parquet(str(pq))
    got = synthesize(SynthesisConfig(input=str(pq), out=str(tmp_path / "o3"), distractors=8), **QUIET)
    assert got["kept"] == 12 and rows(tmp_path / "o3")[0]["source_id"].startswith("p#p")

    saved = tmp_path / "saved"
    datasets.Dataset.from_list([{"content": _story(i)} for i in range(12)]).save_to_disk(str(saved))
    got = synthesize(SynthesisConfig(input=str(saved), out=str(tmp_path / "o4"), distractors=8), **QUIET)
    assert got["kept"] == 12

    with pytest.raises(ValueError, match="does not exist"):
        synthesize(SynthesisConfig(input=str(tmp_path / "missing"), out=str(tmp_path / "o5")), **QUIET)
    with pytest.raises(ValueError, match="no text column"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"x": 1}\n')
        synthesize(SynthesisConfig(input=str(bad), out=str(tmp_path / "o6")), **QUIET)


def test_cli_synthesize_show_and_errors(tmp_path, capsys):
    out = tmp_path / "cli"
    rc = zoo_main(["goose", "synthesize", "--input", "stdlib:docstrings:json,textwrap,shlex,heapq,string,csv",
                   "--out", str(out), "--limit", "12", "--options", "5", "--no-progress"])
    assert rc == 0
    printed = capsys.readouterr().out
    assert "tasks kept" in printed
    tasks = rows(out)
    assert tasks and all(len(t["options"]) == 5 for t in tasks)
    assert zoo_main(["goose", "show", str(out), "-n", "1"]) == 0
    assert "(E)" in capsys.readouterr().out
    assert load_items(out)[0]["id"] == tasks[0]["id"]
    assert zoo_main(["goose", "synthesize", "--input", "stdlib:nothing", "--out", str(tmp_path / "x"), "--no-progress"]) == 2
    assert zoo_main(["goose", "synthesize", "--input", "stdlib:code", "--out", str(tmp_path / "y"),
                     "--options", "12", "--no-progress"]) == 2
    assert zoo_main(["goose", "synthesize", "--input", "stdlib:code", "--out", str(tmp_path / "z"),
                     "--generator", "llm", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "unknown stdlib source" in err and "--distractors" in err and "--model" in err
