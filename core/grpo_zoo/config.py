"""Run configuration: one TOML file, validated by pydantic, one section per plugin."""
from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model
from pydantic import field_validator, model_validator
import re

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class ConfigError(ValueError):
    pass


API_KEY_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(API_KEY|TOKEN)")


class Section(BaseModel):
    """Base for every config section: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class RunSection(Section):
    hook_owners: dict[str, str] = Field(default_factory=dict, description="single-answer hook -> plugin that answers it")


class TaskConfig(Section):
    source: Literal["reasoning_gym", "file", "hf"] = "reasoning_gym"
    name: str = Field("basic_arithmetic", description="reasoning-gym generator name")
    params: dict[str, Any] = Field(default_factory=dict, description="generator parameters")
    size: int = Field(256, ge=1, description="tasks to generate (reasoning_gym)")
    path: str | None = Field(None, description="JSONL/Parquet file or folder (source = file)")
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    system_prompt: str | None = None
    shuffle: bool = True
    split: str = Field("train", description="source = hf (and DatasetDict folders): the split to read")
    config_name: str | None = Field(None, description="source = hf: the dataset configuration (load_dataset's name=)")
    data_files: str | list[str] | dict[str, str | list[str]] | None = Field(None, description="source = hf: load_dataset's data_files=")

    @model_validator(mode="after")
    def _file_needs_path(self):
        if self.source == "file" and not self.path:
            raise ValueError('task.path is required when task.source = "file"')
        return self


class EndpointConfig(Section):
    url: str = "http://127.0.0.1:8000/v1"
    model: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    timeout_s: float = Field(120.0, gt=0)
    max_concurrency: int = Field(8, ge=1)
    sync: Literal["none", "disk", "nccl"] = Field("none", description="how the trained weights reach the server")
    sync_dir: str | None = Field(None, description="sync = disk: folder the server can read (default RUN/weight_sync)")
    sync_group_port: int = Field(51216, ge=1, description="sync = nccl: port of the NCCL weight-update group")

    @field_validator("api_key_env")
    @classmethod
    def _only_key_variables(cls, v: str) -> str:
        # The variable's value is sent as a bearer token to `url`: only variables meant to hold an
        # API key or token may be named, so a config cannot exfiltrate e.g. a database password.
        if not API_KEY_ENV.fullmatch(v):
            raise ValueError(
                "must name an environment variable ending in API_KEY or TOKEN (e.g. OPENAI_API_KEY, HF_TOKEN); "
                "its value is sent to sampling.endpoint.url"
            )
        return v


class VLLMConfig(Section):
    gpu_memory_utilization: float = Field(0.3, gt=0, le=1, description="backend = vllm: GPU memory share of vLLM")
    enable_sleep_mode: bool = Field(False, description="backend = vllm: free vLLM's memory between generations")
    max_model_len: int | None = Field(None, ge=1, description="backend = vllm: context length (default: the model's)")


class SamplingConfig(Section):
    group_size: int = Field(4, ge=1)
    temperature: float = Field(1.0, gt=0)
    top_p: float = Field(1.0, gt=0, le=1)
    top_k: int = Field(0, ge=0)
    max_new_tokens: int = Field(128, ge=1)
    backend: Literal["transformers", "openai", "vllm"] = "transformers"
    batch_size: int = Field(64, ge=1, description="sequences per generate() call")
    endpoint: EndpointConfig = Field(default_factory=EndpointConfig)
    max_staleness: int = Field(0, ge=0, description="steps a rollout's weights may lag the trainer's (0: wait for the push)")
    vllm: VLLMConfig = Field(default_factory=VLLMConfig)
    max_gen_batches: int = Field(
        1, ge=1, description="dynamic sampling: most sampling batches per step (1 = no refill of rejected groups)"
    )
    at_cap: Literal["keep_fewer", "pad", "error"] = Field(
        "keep_fewer", description="too few accepted groups after max_gen_batches: train on fewer | pad with rejected | fail"
    )


class RewardModelConfig(Section):
    path: str = Field(description="local folder or hub id in the local cache of a sequence-classification model")
    name: str | None = Field(None, description="column name; default: the last part of path")
    batch_size: int = Field(16, ge=1, description="texts scored per forward pass")


class RewardConfig(Section):
    builtin: list[Literal["correct", "format", "length"]] = Field(default_factory=lambda: ["correct"])
    weights: dict[str, float] = Field(default_factory=dict, description="column -> weight (default 1.0)")
    format_regex: str = Field(r"(?s)<answer>.+?</answer>", description="what the format reward looks for")
    length_target: int = Field(64, ge=1, description="tokens at which the length reward reaches 0")
    functions: list[str] = Field(default_factory=list, description="TRL-style reward functions, 'package.module:function'")
    models: list[RewardModelConfig] = Field(default_factory=list, description="sequence-classification reward models")
    on_nonfinite: Literal["error", "drop_group", "zero"] = Field(
        "error", description="a NaN/inf reward: stop with an error, drop its group, or count it as 0"
    )

    @field_validator("functions")
    @classmethod
    def _function_specs(cls, specs):
        from .reward_functions import check_spec

        return [check_spec(s) for s in specs]

    @field_validator("format_regex")
    @classmethod
    def _compiles(cls, v: str) -> str:
        # checked with the config, not after the model has loaded and generated
        try:
            re.compile(v)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from None
        return v


class AdvantageConfig(Section):
    scale: Literal["group", "batch", "none"] = "group"
    eps: float = Field(1e-4, ge=0)
    aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = "sum_then_normalize"


class LossConfig(Section):
    type: Literal["grpo", "dapo", "dr_grpo", "bnpo", "gspo", "cispo", "sapo"] = "grpo"
    epsilon_low: float = Field(0.2, ge=0)
    epsilon_high: float = Field(0.2, ge=0)
    beta: float = Field(0.0, ge=0)
    num_iterations: int = Field(1, ge=1)
    importance_sampling_level: Literal["token", "sequence"] = Field(
        "token", description="one importance ratio per token, or per sequence (GSPO); type = 'gspo' implies 'sequence'"
    )
    kl_bias_correction: bool = Field(True, description="multiply the k3 KL by the importance ratio (TRL 1.16's default)")
    sapo_temperature_pos: float = Field(1.0, gt=0, description="sapo: gate temperature for positive advantages")
    sapo_temperature_neg: float = Field(1.05, gt=0, description="sapo: gate temperature for other advantages")
    behavior_correction: Literal["none", "token_truncate", "token_mask", "sequence_truncate", "sequence_mask"] = Field(
        "none", description="importance weights for the sampler/trainer mismatch (TRL's vllm_importance_sampling_mode)"
    )
    behavior_cap: float | None = Field(3.0, gt=0, description="upper bound of the behaviour ratio (TRL's clip_max)")
    behavior_cap_min: float | None = Field(None, ge=0, description="lower bound of the behaviour ratio (TRL's clip_min)")
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
    max_bad_steps: int = Field(3, ge=1, description="consecutive steps with a NaN/inf loss or gradient before the run stops")
    precision: Literal["fp32", "bf16", "fp16"] = Field(
        "fp32", description="mixed precision through accelerate: fp32 master weights, bf16/fp16 autocast compute"
    )
    gradient_checkpointing: bool = Field(False, description="recompute activations in backward (less memory)")
    report_to: list[Literal["tensorboard", "wandb", "trackio", "mlflow"]] = Field(
        default_factory=list, description="experiment trackers (accelerate's tracker API)"
    )
    sharding: Literal["none", "fsdp2"] = Field(
        "none", description="fsdp2: shard weights, gradients and optimizer state over the processes (torch fully_shard)"
    )

    @model_validator(mode="after")
    def _masters_are_fp32(self):
        if self.precision != "fp32" and self.dtype != "float32":
            raise ValueError(
                f"train.precision={self.precision!r} keeps fp32 master weights and needs train.dtype = 'float32' "
                f"(got {self.dtype!r}; dtype = 'bfloat16' alone is pure-bf16 training)"
            )
        return self


class PeftConfig(Section):
    enabled: bool = Field(False, description="train a LoRA adapter (peft) instead of every weight")
    r: int = Field(16, ge=1, description="LoRA rank")
    alpha: float = Field(32.0, gt=0, description="LoRA alpha (the update is scaled by alpha / r)")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the adapter's input")
    target_modules: list[str] | str = Field("all-linear", description="module names to adapt, or 'all-linear'")
    save_merged: bool = Field(False, description="write RUN/merged/ (base + adapter merged) after the last step")

    @model_validator(mode="after")
    def _merged_needs_adapter(self):
        if self.save_merged and not self.enabled:
            raise ValueError("peft.save_merged = true needs peft.enabled = true (there is no adapter to merge)")
        return self


from pydantic import model_validator  # noqa: E402  (kept next to its only user: an additive edit)


class EvalConfig(Section):
    """Held-out evaluation (docs/evaluation.md). ``size = 0`` keeps it off."""

    size: int = Field(0, ge=0, description="held-out tasks; 0 turns evaluation off")
    source: Literal["task", "reasoning_gym", "file"] = Field(
        "task", description="task: the run's [task] generator with another seed; reasoning_gym; file"
    )
    name: str | None = Field(None, description="reasoning-gym generator (default: task.name)")
    params: dict[str, Any] | None = Field(None, description="generator parameters (default: task.params)")
    seed: int | None = Field(None, description="generator seed (default: seed + 1000003)")
    path: str | None = Field(None, description="JSONL/Parquet file or folder, or a save_to_disk folder (source = file)")
    split: str = Field("test", description="split of a DatasetDict folder (source = file)")
    prompt_column: str = "prompt"
    answer_column: str = "answer"
    every: int = Field(0, ge=0, description="evaluate every N optimizer steps; 0: only before and after training")
    before_training: bool = True
    samples: int = Field(1, ge=1, description="completions per task (n of pass@k)")
    k: list[int] = Field(default_factory=list, description="pass@k values reported besides pass@1 (default: samples)")
    temperature: float = Field(0.0, ge=0, description="0: greedy decoding")
    max_new_tokens: int | None = Field(None, ge=1, description="default: sampling.max_new_tokens")
    correct_threshold: float = Field(1.0, description="a completion counts as correct when its task score reaches this")

    @model_validator(mode="after")
    def _consistent(self):
        if self.size == 0:
            # a section that sets keys but leaves size at 0 would silently evaluate nothing
            given = [n for n, f in type(self).model_fields.items()
                     if n != "size" and getattr(self, n) != f.get_default(call_default_factory=True)]
            if given:
                raise ValueError(f"eval.{given[0]} is set but eval.size = 0 keeps evaluation off; set eval.size")
        if self.samples > 1 and self.temperature == 0:
            raise ValueError(f"eval.samples = {self.samples} with eval.temperature = 0: greedy completions are "
                             "identical; set eval.temperature > 0 for pass@k")
        bad = [k for k in self.k if not 1 <= k <= self.samples]
        if bad:
            raise ValueError(f"eval.k = {bad[0]} needs 1 <= k <= eval.samples = {self.samples}")
        if self.source == "file" and self.size and not self.path:
            raise ValueError("eval.source = 'file' needs eval.path")
        return self


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
    peft: PeftConfig = Field(default_factory=PeftConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    @model_validator(mode="after")
    def _sharding_combinations(self):
        """train.sharding = 'fsdp2' with what it has not been built for: one line naming the clash."""
        if self.train.sharding == "none":
            return self
        clash = None
        if self.peft.enabled:
            clash = "peft.enabled = true (LoRA adapters are small: use data parallelism)"
        elif self.train.precision == "fp16":
            clash = "train.precision = 'fp16' (use 'bf16')"
        elif self.sampling.backend == "vllm":
            clash = "sampling.backend = 'vllm' (the sharded weights are not pushed to vLLM)"
        elif self.sampling.endpoint.sync != "none":
            clash = f"sampling.endpoint.sync = {self.sampling.endpoint.sync!r} (the sharded weights are not pushed to a server)"
        if clash:
            raise ValueError(f"train.sharding = 'fsdp2' does not support {clash}")
        return self


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
