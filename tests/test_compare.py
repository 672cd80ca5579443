"""`grpo-zoo compare`: curves in one PNG and a markdown table from run folders, seeds grouped."""
from __future__ import annotations

import json
import statistics

import pytest

from grpo_zoo import cli
from grpo_zoo.compare import compare, group_runs, load_run


def make_run(path, seed, plugins, pass1, lr=1e-5):
    """A run folder as the trainer writes it: manifest, metrics.jsonl, eval.jsonl (eval every 2 steps)."""
    path.mkdir(parents=True)
    config = {"seed": seed, "model": "tiny-random", "plugins": plugins, "train": {"lr": lr, "steps": 4}}
    (path / "manifest.json").write_text(json.dumps({"config": config}))
    metrics = [{"step": s, "rollouts": 8, "generated": 10, "tokens": 100, "time/step_s": 2.0, "reward/mean": 0.1 * s}
               for s in range(4)]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    evals = [{"step": s, "eval/pass@1": p, "eval/seconds": 1.0, "generated": 10 * s, "rollouts": 8 * s}
             for s, p in zip((0, 2, 4), pass1)]
    (path / "eval.jsonl").write_text("".join(json.dumps(r) + "\n" for r in evals))
    return path


@pytest.fixture
def runs(tmp_path):
    return [
        make_run(tmp_path / "a", 0, [], [0.2, 0.5, 0.4]),
        make_run(tmp_path / "b", 1, [], [0.3, 0.4, 0.6]),
        make_run(tmp_path / "c", 0, ["mc_grpo"], [0.2, 0.3, 0.3]),
        make_run(tmp_path / "d", 0, [], [0.1, 0.1, 0.1], lr=1e-4),  # plain GRPO again, another lr: its own group
    ]


def test_seeds_are_grouped_and_twins_named_by_their_difference(runs):
    groups = group_runs([load_run(p, "eval/pass@1") for p in runs])
    assert [len(g.runs) for g in groups] == [2, 1, 1]
    assert groups[1].label == "mc_grpo"
    assert groups[0].label == "grpo (train.lr=1e-05)" and groups[2].label == "grpo (train.lr=0.0001)"


def test_compare_draws_a_png_and_a_table_with_mean_and_std(runs, tmp_path):
    res = compare([str(p) for p in runs], "eval/pass@1", "rollouts", tmp_path / "cmp")
    assert (tmp_path / "cmp" / "compare.png").stat().st_size > 1000
    table = (tmp_path / "cmp" / "compare.md").read_text().splitlines()
    grpo = table[2].split(" | ")
    final = statistics.fmean([0.4, 0.6]), statistics.stdev([0.4, 0.6])
    assert grpo[0] == "| grpo (train.lr=1e-05)" and grpo[1] == "2"
    assert grpo[2] == "0.250 ± 0.071"  # start: 0.2 and 0.3
    assert grpo[3] == f"{statistics.fmean([0.5, 0.6]):.3f} ± {statistics.stdev([0.5, 0.6]):.3f}"  # best
    assert grpo[4] == f"{final[0]:.3f} ± {final[1]:.3f}"
    assert grpo[5:8] == ["4 ± 0", "40 ± 0", "11 ± 0 |"]  # steps, generated completions, 4 steps x 2 s + 3 evals x 1 s
    mc = table[3].split(" | ")
    assert mc[:5] == ["| mc_grpo", "1", "0.200", "0.300", "0.300"]
    assert res["groups"][0]["seeds"] == [0, 1]


def test_compare_cli_and_training_metrics(runs, tmp_path, capsys):
    assert cli.main(["compare", *map(str, runs[:2]), "--metric", "reward/mean", "--x", "seconds",
                     "--out", str(tmp_path / "o")]) == 0
    out = capsys.readouterr().out
    assert "| grpo | 2 | 0.000 ± 0.000 | 0.300 ± 0.000 | 0.300 ± 0.000 | 4 ± 0 |" in out  # metrics row of step s: s + 1 steps done
    assert cli.main(["compare", str(runs[0]), "--metric", "eval/pass@7", "--out", str(tmp_path / "o")]) == 2
    assert "no 'eval/pass@7'" in capsys.readouterr().err
