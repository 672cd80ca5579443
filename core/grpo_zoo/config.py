"""Run configuration: one TOML file, validated by pydantic, one section per plugin."""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    pass


class Section(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    hook_owners: dict[str, str] = Field(default_factory=dict, description="single-answer hook -> plugin that answers it")


class TaskConfig(Section):
    source: Literal["reasoning_gym", "file"] = "reasoning_gym"
    name: str = Field("basic_arithmetic", description="reasoning-gym generator name")
    params: dict[str, Any] = Field(default_factory=dict, description="generator parameters")
    size: int = Field(256, ge=1, description="tasks to generate (reasoning_gym)")
    path: str | None = Field(None, description="JSONL/Parquet file or folder (source = file)")
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    system_prompt: str | None = None
    shuffle: bool = True


class EndpointConfig(Section):
    url: str = "http://127.0.0.1:8000/v1"
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(120.0, gt=0)
    max_concurrency: int = Field(8, ge=1)


class SamplingConfig(Section):
    group_size: int = Field(4, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(128, ge=1)
    backend: Literal["transformers", "openai"] = "transformers"
    batch_size: int = Field(64, ge=1, description="sequences per generate() call")
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    max_gen_batches: int = Field(
        1, ge=1, description="dynamic sampling: most sampling batches per step (1 = no refill of rejected groups)"
    )
    at_cap: Literal["keep_fewer", "pad", "error"] = Field(
        "keep_fewer", description="too few accepted groups after max_gen_batches: train on fewer | pad with rejected | fail"
    )


class RewardConfig(Section):
    builtin: list[Literal["correct", "format", "length"]] = Field(default_factory=lambda: ["correct"])
    weights: dict[str, float] = Field(default_factory=dict, description="column -> weight (default 1.0)")
    format_regex: str = Field(r"(?s)<answer>.+?</answer>", description="what the format reward looks for")
    length_target: int = Field(64, ge=1, description="tokens at which the length reward reaches 0")


class AdvantageConfig(Section):
    scale: Literal["group", "batch", "none"] = "group"
    eps: float = Field(1e-4, ge=0)
    aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = "sum_then_normalize"


class LossConfig(Section):
    type: Literal["grpo", "dapo", "dr_grpo", "bnpo", "gspo"] = "grpo"
    epsilon_low: float = Field(0.2, ge=0)
    epsilon_high: float = Field(0.2, ge=0)
    beta: float = Field(0.0, ge=0)
    num_iterations: int = Field(1, ge=1)
    mask_truncated_completions: bool = Field(
        False, description="truncated completions (no EOS by max_new_tokens) leave the loss, as in TRL"
    )


class TrainConfig(Section):
    steps: int = Field(10, ge=1)
    prompts_per_step: int = Field(4, ge=1)
    lr: float = Field(1e-6, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    warmup_steps: int = Field(0, ge=0)
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    grad_clip: float = Field(1.0, ge=0, description="0 disables clipping")
    micro_batch_size: int = Field(8, ge=1, description="rollouts per forward/backward (gradient accumulation)")
    checkpoint_every: int = Field(0, ge=0, description="0: only at the end")
    samples_per_step: int = Field(2, ge=0)
    dtype: Literal["float32", "bfloat16"] = "float32"
    threads: int = Field(0, ge=0, description="torch CPU threads; 0 keeps torch's default")


class CoreConfig(Section):
    seed: int = 0
    model: str = "smollm2-135m"
    plugins: list[str] = Field(default_factory=list)
    run: RunSection = Field(default_factory=RunSection)
    task: TaskConfig = Field(default_factory=TaskConfig)
    sampling: SamplingConfig = Field(default_factory=SamplingConfig)
    reward: RewardConfig = Field(default_factory=RewardConfig)
    advantage: AdvantageConfig = Field(default_factory=AdvantageConfig)
    loss: LossConfig = Field(default_factory=LossConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)


def parse_value(text: str) -> Any:
    """A --set value: a TOML literal when it parses as one, else the plain string."""
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict, overrides: list[str]) -> dict:
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set expects key.path=value, got {item!r}")
        path, value = item.split("=", 1)
        keys = path.strip().split(".")
        node = raw
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"--set {path}: {k!r} is not a section")
        node[keys[-1]] = parse_value(value.strip())
    return raw


def drop_plugins(raw: dict, names: list[str]) -> dict:
    """The config without the named plugins and their sections (for side-by-side baselines)."""
    raw = copy.deepcopy(raw)
    listed = raw.get("plugins") or []
    missing = [n for n in names if n not in listed]
    if missing:
        raise ConfigError(f"--without {', '.join(missing)}: not in plugins {listed}")
    raw["plugins"] = [n for n in listed if n not in names]
    for n in names:
        raw.pop(n, None)
    # Reward columns are named "<plugin>/...": weight maps anywhere (reward.weights, gdpo.weights,
    # igrpo.draft_weights, ...) must not name a dropped plugin's columns, or the baseline fails.
    _drop_columns(raw, tuple(f"{n}/" for n in names))
    return raw


def _drop_columns(node: dict, prefixes: tuple[str, ...]) -> None:
    for key in [k for k in node if isinstance(k, str) and k.startswith(prefixes)]:
        del node[key]
    for value in node.values():
        if isinstance(value, dict):
            _drop_columns(value, prefixes)


def read_toml(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"config file not found: {path}")
    try:
        return tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def format_errors(err: ValidationError) -> str:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        got = f" (got {e['input']!r})" if "input" in e and not isinstance(e["input"], dict) else ""
        lines.append(f"  {key}: {e['msg']}{got}")
    return "invalid config:\n" + "\n".join(lines)


def build_model(sections: dict[str, type[BaseModel]]) -> type[CoreConfig]:
    clash = set(sections) & set(CoreConfig.model_fields)
    if clash:
        raise ConfigError(f"plugin section name(s) clash with core sections: {', '.join(sorted(clash))}")
    fields = {name: (model, Field(default_factory=model)) for name, model in sections.items()}
    return create_model("RunConfig", __base__=CoreConfig, **fields)


def validate(raw: dict, sections: dict[str, type[BaseModel]]) -> CoreConfig:
    from .plugins import installed_entry_points

    named = set(raw.get("plugins") or [])
    for key in raw:
        if key not in CoreConfig.model_fields and key not in sections:
            if key in installed_entry_points() and key not in named:
                raise ConfigError(f"section [{key}] is given but plugin {key!r} is not listed in `plugins`")
    try:
        return build_model(sections).model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_errors(err)) from None
