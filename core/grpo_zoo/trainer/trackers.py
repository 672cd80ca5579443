"""Experiment trackers (``train.report_to``) through accelerate's tracker API.

The main process starts the trackers with the resolved config as
hyperparameters and the run folder's name as the run name, logs every row of
metrics.jsonl (plugins' metrics, loss, grad norm, lr included) and closes
them at the end. Trackers with an offline mode use it unless the environment
says otherwise: wandb runs offline into the run folder (``WANDB_MODE``),
mlflow writes to ``RUN/mlruns`` (``MLFLOW_TRACKING_URI``), trackio and
tensorboard are local anyway (tensorboard writes to ``RUN/tensorboard/``).
"""
from __future__ import annotations

import importlib.util
import os
from pathlib import Path

PROJECT = "grpo-zoo"
TENSORBOARD_DIR = "tensorboard"
_PACKAGES = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",), "trackio": ("trackio",), "mlflow": ("mlflow",)}


def check_installed(names: list[str]) -> None:
    from ..config import ConfigError

    for name in names:
        if not any(importlib.util.find_spec(m) for m in _PACKAGES[name]):
            raise ConfigError(f"train.report_to: {name!r} is not installed (pip install {_PACKAGES[name][0]})")


def flat_config(raw: dict, prefix: str = "") -> dict:
    """The nested config as ``{"train.lr": 1e-6, ...}`` with values every tracker accepts
    (bool, int, float, str: lists, dicts and None as text; tensorboard's hparams refuse None)."""
    out = {}
    for k, v in raw.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(flat_config(v, key + "."))
        elif isinstance(v, (bool, int, float, str)):
            out[key] = v
        else:
            out[key] = str(v)
    return out


def start(acc, ctx, run_dir: Path) -> None:
    names = list(ctx.config.train.report_to)
    if not names:
        return
    check_installed(names)
    run_dir = Path(run_dir)
    if "wandb" in names:
        os.environ.setdefault("WANDB_MODE", "offline")
        os.environ.setdefault("WANDB_DIR", str(run_dir))
    if "mlflow" in names:
        os.environ.setdefault("MLFLOW_TRACKING_URI", (run_dir / "mlruns").resolve().as_uri())
    from accelerate.tracking import filter_trackers

    acc.project_configuration.set_directories(str(run_dir / TENSORBOARD_DIR))
    acc.log_with = filter_trackers(names, acc.logging_dir)
    name = run_dir.name
    acc.init_trackers(
        PROJECT,
        config=flat_config(ctx.config.model_dump(mode="json")),
        init_kwargs={"wandb": {"name": name}, "mlflow": {"run_name": name}, "trackio": {"name": name}},
    )


def log(acc, metrics: dict, step: int) -> None:
    if acc.trackers:
        acc.log({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}, step=step)


def finish(acc) -> None:
    if acc.trackers:
        acc.end_training()
