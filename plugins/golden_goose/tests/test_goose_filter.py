"""The offline difficulty filter: drop items solved in all k rollouts; effective share; resume; CLI."""
import json

from grpo_zoo.cli import main as zoo_main
from grpo_zoo_golden_goose.filter import FilterConfig, classify, run_filter, stats
from grpo_zoo_golden_goose.store import load_items, read_records

QUIET = {"progress": False, "log": lambda *_: None}


class FakeSampler:
    """Item i is answered right in (i % 3) * k / 2 of its k rollouts: 0, k/2 or k correct."""

    def __init__(self):
        self.calls = 0

    def __call__(self, tasks, k, seed):
        self.calls += 1
        out = []
        for t in tasks:
            n_right = {0: 0, 1: k // 2, 2: k}[int(t.id.rsplit("-", 1)[1]) % 3]
            out.append([f"<answer>{t.answer}</answer>"] * n_right + ["no idea"] * (k - n_right))
        return out


def test_classify_and_stats():
    assert [classify(s, 16) for s in (0, 1, 15, 16)] == ["solved_none", "mixed", "mixed", "solved_all"]
    s = stats([{"solved": 0, "k": 4, "parsed": 0}, {"solved": 2, "k": 4, "parsed": 4}, {"solved": 4, "k": 4, "parsed": 4}], 4)
    assert s["effective_share"] == 1 / 3 and s["solved_all"] == 1 and s["accuracy"] == 0.5 and s["letter_rate"] == 8 / 12


def test_filter_drops_solved_all(code_set, tmp_path):
    src, _ = code_set
    items = load_items(src)
    out = tmp_path / "filtered"
    res = run_filter(FilterConfig(dataset=str(src), out=str(out), k=4, batch_size=8), sampler=FakeSampler(), **QUIET)
    expect_all = sum(1 for it in items if int(it["id"].rsplit("-", 1)[1]) % 3 == 2)
    assert res["items"] == len(items) and res["solved_all"] == expect_all
    kept = load_items(out)
    assert len(kept) == len(items) - expect_all
    assert all(int(it["id"].rsplit("-", 1)[1]) % 3 != 2 for it in kept)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["format"]["options"] == 9 and summary["filter"]["effective_share"] == res["effective_share"]
    # resume: a second run samples nothing new
    sampler = FakeSampler()
    again = run_filter(FilterConfig(dataset=str(src), out=str(out), k=4, batch_size=8), sampler=sampler, **QUIET)
    assert sampler.calls == 0 and again == res
    assert len(read_records(out / "filter_log.jsonl")) == len(items)


def test_filter_with_a_real_model_and_cli(code_set, tmp_path, capsys):
    src, _ = code_set
    out = tmp_path / "f"
    rc = zoo_main(["goose", "filter", "--dataset", str(src), "--model", "tiny-random", "--k", "2", "--limit", "3",
                   "--max-new-tokens", "4", "--out", str(out), "--json", "--no-progress"])
    assert rc == 0
    res = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert res["items"] == 3 and res["k"] == 2 and res["solved_all"] + res["solved_none"] + res["mixed"] == 3
    assert len(read_records(out / "filter_log.jsonl")) == 3
    assert zoo_main(["goose", "filter", "--dataset", str(tmp_path / "missing"), "--no-progress"]) == 2
