"""Issue 21: answers never shown elsewhere, bounded distractor lengths, same-document distractors, content spans,
a scorer that gives nothing for listing options, reflowed prose, extension-less files, settings only on success."""
import json
import random
from pathlib import Path

import pytest

from grpo_zoo_golden_goose.format import extract_letter
from grpo_zoo_golden_goose.generator_heuristic import HeuristicGenerator, HeuristicOptions
from grpo_zoo_golden_goose.segment import MASK, normalize
from grpo_zoo_golden_goose.sources import load_source_rows
from grpo_zoo_golden_goose.synthesize import SynthesisConfig, SynthesisError, synthesize
from grpo_zoo_golden_goose.validate import Proposal, Rejected, Rules, check_shown, make_item, validate

QUIET = {"progress": False, "log": lambda *_: None}
WORDS = ("river mill bridge farmer harvest winter lantern orchard market village shepherd meadow storm chapel "
         "barley cellar wagon forge baker weaver ferry tavern granary pasture well kettle ladder fence").split()


def rows(path):
    return [json.loads(x) for x in (Path(path) / "tasks.jsonl").read_text().splitlines()]


def story(seed: int, n: int = 60, refrain: str | None = None) -> str:
    """A long hard-wrapped story of distinct sentences (and a repeated refrain every few sentences)."""
    rng = random.Random(seed)
    sents = []
    for j in range(n):
        a, b, c = rng.sample(WORDS, 3)
        sents.append(f"On day {j} of tale {seed} the {a} carried a {b} past the {c} before the evening came.")
        if refrain and j % 5 == 2:
            sents.append(refrain)
    text = " ".join(sents)
    out, line = [], ""
    for w in text.split():  # hard wraps at 60 columns
        if len(line) + len(w) + 1 > 60:
            out.append(line)
            line = w
        else:
            line = f"{line} {w}".strip()
    return "\n".join(out + [line]) + "\n"


def shown_text(task) -> str:
    return normalize(task["masked_text"].replace(MASK, "\n\0\n"))


# --- finding 6: the answer is never visible elsewhere --------------------------------------------------------

def test_check_shown_rejects_an_answer_visible_elsewhere():
    text = "Alpha beta. The cat sat on the mat. Gamma delta. The cat sat on the mat. Epsilon."
    s = text.index("The cat")
    item = make_item({"id": "d", "text": text, "domain": "passage"}, s, s + len("The cat sat on the mat."), ["x"], "t", 0)
    with pytest.raises(Rejected) as err:
        check_shown(item)
    assert err.value.reason == "answer_in_context"
    item = make_item({"id": "d", "text": text, "domain": "passage"}, 0, len("Alpha beta."), ["x"], "t", 0)
    check_shown(item)  # unique text passes


def test_stories_that_repeat_a_sentence_never_show_the_answer(tmp_path):
    folder = tmp_path / "stories"
    folder.mkdir()
    refrain = "And the old bell rang twice over the quiet water."
    for i in range(8):
        (folder / f"s{i}.txt").write_text(story(i, 40, refrain))
    synthesize(SynthesisConfig(input=str(folder), out=str(tmp_path / "o"), per_source=6, min_units=1, max_units=1), **QUIET)
    tasks = rows(tmp_path / "o")
    assert len(tasks) >= 40
    for t in tasks:
        assert normalize(t["answer_option"]) not in shown_text(t), t["id"]


# --- finding 7: distractor length bound ----------------------------------------------------------------------

def test_validation_drops_distractors_off_the_answer_length():
    source = "Intro words here. " + "The quick brown fox jumps over the lazy dog today. " + "Outro words follow here."
    span = "The quick brown fox jumps over the lazy dog today."
    ok = [f"A plain sentence of similar size, number {i}." for i in range(10)]
    prop = lambda ds: Proposal(source.replace(span, MASK), span, ds)  # noqa: E731
    s, e, shown = validate(prop(ok), source, Rules())
    assert shown == ok
    short = ok[:9] + ["Tiny."]
    with pytest.raises(Rejected) as err:
        validate(prop(short), source, Rules())
    assert err.value.reason == "distractor_length"
    s, e, shown = validate(prop(short), source, Rules(min_distractors=9))
    assert shown == ok[:9]  # the short one is dropped
    long = ok[:9] + ["x" * 200]
    assert validate(prop(long), source, Rules(min_distractors=9, max_length_ratio=5.0))[2] == long
    with pytest.raises(Rejected):
        validate(prop(long), source, Rules(max_length_ratio=2.0))


def test_heuristic_distractors_stay_within_the_length_bound(code_set):
    out, _ = code_set
    for t in rows(out):
        n = len(t["answer_option"])
        assert all(0.5 * n <= len(d) <= 2.0 * n for d in t["distractors"]), t["id"]


def test_length_ratio_settings_are_checked():
    with pytest.raises(SynthesisError, match="--min-length-ratio"):
        SynthesisConfig(input="x", out="y", min_length_ratio=1.5).check()


# --- finding 8: distractors from the same document, contentful spans ----------------------------------------

def test_two_documents_give_distractors_from_their_own_document(tmp_path):
    folder = tmp_path / "two"
    folder.mkdir()
    for i in range(2):
        (folder / f"doc{i}.txt").write_text(story(10 + i, 80))
    synthesize(SynthesisConfig(input=str(folder), out=str(tmp_path / "o"), per_source=4, context_chars=300), **QUIET)
    tasks = rows(tmp_path / "o")
    assert len(tasks) == 8
    texts = {r["id"]: normalize(r["text"]) for r in load_source_rows(str(folder))}
    for t in tasks:
        own, shown = texts[t["source_id"]], shown_text(t)
        for d in t["distractors"]:
            assert normalize(d) in own, "a distractor from the item's own document"
            assert normalize(d) not in shown, "never one already visible in the excerpt"
        a0 = own.find(normalize(t["answer_option"]))
        a1 = a0 + len(normalize(t["answer_option"]))
        for d in t["distractors"]:  # not adjacent: some text lies between a distractor and the gap
            d0 = own.find(normalize(d))
            d1 = d0 + len(normalize(d))
            assert (own[d1:a0] if d1 <= a0 else own[a1:d0]).strip(), d


def test_code_distractors_mostly_come_from_the_same_file(code_set, small_code):
    out, _ = code_set
    texts = {r["id"]: normalize(r["text"]) for r in load_source_rows(small_code)}
    tasks = rows(out)
    own = [normalize(d) in texts[t["source_id"]] for t in tasks for d in t["distractors"]]
    assert sum(own) / len(own) >= 0.8


def test_spans_carry_content_not_headings_or_licence_lines():
    text = (
        "# Copyright (c) 2020 Example Corp. All rights reserved.\n# SPDX-License-Identifier: MIT\n"
        "import os\nimport sys\nfrom pathlib import Path\n\n"
        "def load(path, limit):\n    data = Path(path).read_text()\n    rows = [r for r in data.splitlines() if r]\n"
        "    return rows[:limit]\n\n"
        "def count(items):\n    total = sum(len(i) for i in items)\n    return total * 2\n"
    )
    rows_ = [{"id": "m.py", "text": text, "prefix": "", "domain": "code"}]
    gen = HeuristicGenerator(rows_, HeuristicOptions(distractors=1, context_chars=0))
    for seed in range(20):
        [prop] = gen.propose(rows_[0], random.Random(seed))
        assert not isinstance(prop, Rejected)
        assert "import" not in prop.span and "Copyright" not in prop.span and "SPDX" not in prop.span
    assert HeuristicGenerator.boilerplate("Copyright 2020\nimport os\n", 0, 24)
    assert HeuristicGenerator.boilerplate("Introduction\n============\n", 0, 25)
    assert not HeuristicGenerator.boilerplate("total = sum(x)\n", 0, 14)


# --- finding 9: the scorer ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "text, letter",
    [
        ("Answer: (A), (B), (C), (D), (E), (F), (G), (H), (I)", None),
        ("Option A. Option B. Option C.", None),
        ("Answer: B or C", None),
        ("The answer is A/B", None),
        ("<answer>A</answer> <answer>B</answer>", None),
        ("**Answer:** B", "B"),
        ("The answer is: **B**", "B"),
        ("Final answer: **(D)**", "D"),
        ("**C**", "C"),
        ("I looked at option A, but the answer is C.", "C"),
    ],
)
def test_scorer_gives_nothing_for_several_letters_and_reads_bold(text, letter):
    assert extract_letter(text, 9) == letter


# --- finding 10: reflowed prose, extension-less files, settings only on success ---------------------------

def test_prose_context_is_reflowed_around_the_mask():
    text = story(3, 30)
    assert "\n" in text.strip()
    import re

    s = re.search(r"On\s+day\s+10\s", text).start()
    e = re.search(r"On\s+day\s+11\s", text).start()
    e = s + len(text[s:e].rstrip())
    item = make_item({"id": "st", "text": text, "domain": "passage"}, s, e, ["x"], "t", 200)
    body = item["masked_text"]
    assert "\n" not in body, "no hard wraps left to hint at the span's length"
    assert body.count(MASK) == 1 and body.startswith("... ") and body.endswith(" ...")
    # paragraphs survive as blank-line breaks
    two = "First para line one\nline two.\n\nSecond para here\nand there."
    s = two.index("Second")
    item = make_item({"id": "p", "text": two, "domain": "passage"}, s, s + len("Second para here"), ["x"], "t", 0)
    assert item["masked_text"] == "First para line one line two.\n\n[MASK] and there."


def test_extension_less_text_files_are_read(tmp_path):
    folder = tmp_path / "lic"
    folder.mkdir()
    (folder / "LICENSE").write_text("Permission is hereby granted, free of charge, to any person.\n")
    (folder / "run").write_text("#!/bin/sh\necho hello world\n")
    (folder / "blob").write_bytes(b"\x00\x01binary")
    got = {r["id"]: r["domain"] for r in load_source_rows(str(folder))}
    assert got == {"LICENSE": "passage", "run": "code"}


def test_a_failed_run_leaves_no_settings_and_a_corrected_rerun_works(tmp_path):
    out = tmp_path / "o"
    with pytest.raises(ValueError, match="does not exist"):
        synthesize(SynthesisConfig(input=str(tmp_path / "missing"), out=str(out)), **QUIET)
    assert not (out / "settings.json").exists()
    got = synthesize(SynthesisConfig(input="stdlib:code:heapq,bisect,json", out=str(out), limit=2), **QUIET)
    assert got["sources"] == 2 and (out / "settings.json").exists()


def test_generator_errors_alone_do_not_pin_the_settings(tmp_path):
    out = tmp_path / "o"
    failing = {"backend": lambda prompt: (_ for _ in ()).throw(RuntimeError("endpoint down"))}
    with pytest.raises(SynthesisError, match="in a row"):
        synthesize(SynthesisConfig(input="stdlib:code:heapq,bisect,json,textwrap,shlex,string", out=str(out),
                                   generator="llm", extra=failing, max_consecutive_errors=2), **QUIET)
    assert not (out / "settings.json").exists()
    got = synthesize(SynthesisConfig(input="stdlib:code:heapq,bisect,json", out=str(out), limit=2), **QUIET)
    assert got["sources"] == 2


def test_short_documents_top_up_from_others_unless_same_document_only(tmp_path):
    folder = tmp_path / "short"
    folder.mkdir()
    for i in range(12):  # ~6 sentences each, all shown with the default context: no same-document distractor fits
        (folder / f"s{i}.txt").write_text(story(40 + i, 6))
    got = synthesize(SynthesisConfig(input=str(folder), out=str(tmp_path / "mixed")), **QUIET)
    assert got["kept"] == 12
    strict = synthesize(SynthesisConfig(input=str(folder), out=str(tmp_path / "strict"), same_document_only=True), **QUIET)
    assert strict["kept"] == 0 and strict["rejected_by_reason"] == {"too_few_distractors": 12}
    long_folder = tmp_path / "long"
    long_folder.mkdir()
    for i in range(3):
        (long_folder / f"l{i}.txt").write_text(story(60 + i, 80))
    got = synthesize(SynthesisConfig(input=str(long_folder), out=str(tmp_path / "l"), same_document_only=True,
                                     context_chars=300), **QUIET)
    texts = {r["id"]: normalize(r["text"]) for r in load_source_rows(str(long_folder))}
    assert got["kept"] == 3
    assert all(normalize(d) in texts[t["source_id"]] for t in rows(tmp_path / "l") for d in t["distractors"])
