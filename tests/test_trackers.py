"""train.report_to: trackers through accelerate. TensorBoard event files are written and every scalar
read back equals metrics.jsonl (plugin metrics, loss, grad norm and lr included); the config is
stored as hyperparameters."""
from __future__ import annotations

import pytest

from grpo_zoo import hookimpl
from grpo_zoo.config import ConfigError
from grpo_zoo.trainer import trackers
from grpo_zoo.trainer.rundir import read_jsonl


class PluginMetric:
    @hookimpl
    def zoo_step_metrics(self, ctx, rollouts, step):
        return {"pm/completion_tokens": float(rollouts.completion_lengths().sum()) + 0.25}


def test_tensorboard_scalars_equal_metrics_jsonl(zoo_train_step):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = zoo_train_step(plugins={"pm": PluginMetric()}, config={"train": {"report_to": ["tensorboard"]}}, steps=3)
    rows = read_jsonl(res.run_dir / "metrics.jsonl")
    logdir = res.run_dir / trackers.TENSORBOARD_DIR / trackers.PROJECT
    events = list(logdir.glob("events.out.tfevents.*"))
    assert events, f"no event file under {logdir}"
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0})
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    numeric = {k for r in rows for k, v in r.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert {"loss", "grad_norm", "lr", "reward/mean", "pm/completion_tokens"} <= numeric
    assert numeric <= tags, f"not logged: {sorted(numeric - tags)}"
    for key in numeric:
        got = {e.step: e.value for e in acc.Scalars(key)}
        want = {r["step"]: r[key] for r in rows if key in r}
        assert got.keys() == want.keys(), key
        for step, v in want.items():
            assert got[step] == pytest.approx(v, rel=1e-6, abs=1e-6), (key, step)  # event files hold float32
    stored = list(logdir.glob("*/hparams.yml"))  # accelerate writes it in a timestamped sub-folder
    assert len(stored) == 1
    hparams = stored[0].read_text()
    assert "train.report_to" in hparams and "model: tiny-random" in hparams


def test_flat_config_and_missing_tracker():
    assert trackers.flat_config({"a": {"b": 1, "c": [1, 2]}, "d": None, "e": {}}) == {"a.b": 1, "a.c": "[1, 2]", "d": "None", "e": "{}"}
    import importlib.util

    if importlib.util.find_spec("mlflow") is None:
        with pytest.raises(ConfigError, match="train.report_to: 'mlflow' is not installed"):
            trackers.check_installed(["mlflow"])
