"""Mixed precision through accelerate: fp32 master weights and optimizer state, bf16/fp16 compute.

``train.precision`` maps to accelerate's ``mixed_precision``. The scorer (the
module that trains) is prepared by accelerate, which runs its forward under
autocast; the sampler, the reference model and entropy probes call the raw
model, so the engine enters ``accelerator.autocast()`` around them too.
"""
from __future__ import annotations

MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


def make_accelerator(cfg, **kwargs):
    """The run's Accelerator with ``train.precision`` (explicit: it overrides ``accelerate launch --mixed_precision``)."""
    import torch
    from accelerate import Accelerator
    from accelerate.state import AcceleratorState

    from ..config import ConfigError

    cpu = not torch.cuda.is_available()
    take_accelerate_fsdp(cfg)
    mixed = MIXED[cfg.train.precision]
    if mixed == "fp16" and cpu:
        # accelerate runs no fp16 autocast on CPU: the run would silently stay fp32
        raise ConfigError("train.precision='fp16' needs a CUDA device (no fp16 autocast on CPU); use 'bf16'")
    state = AcceleratorState._shared_state
    if state and state.get("_mixed_precision") not in (None, mixed):
        # One process may run several trainings (tests, notebooks, benches comparing precisions);
        # accelerate keeps the first one's precision in a process-wide singleton. The process
        # group (PartialState) is kept.
        AcceleratorState._reset_state(reset_partial_state=False)
    return Accelerator(cpu=cpu, mixed_precision=mixed, **kwargs)


def take_accelerate_fsdp(cfg) -> None:
    """``accelerate launch`` with an FSDP config (``fsdp_version: 2``) means ``train.sharding = "fsdp2"``.

    grpo-zoo shards with torch's ``fully_shard`` itself (see sharding.py), so accelerate's own FSDP
    plugin is switched off here: it would wrap the module handed to ``prepare`` a second time.
    """
    import os

    from ..config import ConfigError

    if os.environ.get("ACCELERATE_USE_FSDP", "false").lower() != "true":
        return
    version = os.environ.get("FSDP_VERSION", "1")
    if version != "2":
        raise ConfigError(f"accelerate's FSDP config has fsdp_version = {version}; grpo-zoo supports FSDP2 only "
                          "(set fsdp_version: 2, or train.sharding = 'fsdp2' with a plain multi-process config)")
    cfg.train.sharding = "fsdp2"
    try:
        cfg._sharding_combinations()  # the config's own check, now that sharding is on
    except ValueError as exc:
        raise ConfigError(f"accelerate launch with an FSDP config: {exc}") from None
    for var in [v for v in os.environ if v == "ACCELERATE_USE_FSDP" or v.startswith("FSDP_")]:
        del os.environ[var]


def uses_accelerate_with_one_process(cfg) -> bool:
    """Whether a single-process run still needs the model prepared by accelerate (autocast, grad scaler)."""
    return cfg.train.precision != "fp32"
