"""FSDP2 sharding (``train.sharding = "fsdp2"``): torch's ``fully_shard``, driven directly.

Why not accelerate's FSDP plugin: it wraps the module handed to ``prepare``
and is refused on CPU, so the 2-process CPU (gloo) test would not exercise the
path GPUs run. Driving ``fully_shard`` ourselves keeps one code path for both.

Layout. Every decoder layer (the model's ``_no_split_modules`` classes, as
accelerate's transformer auto-wrap does) is one FSDP unit; the root unit is the
:class:`~grpo_zoo.trainer.engine.CompletionLogprobs` scorer, not the causal LM,
because the scorer's forward is what training calls (it runs the backbone and
``lm_head`` itself, which would bypass the causal LM's root hooks). The root
unit holds what no layer holds: embeddings, final norm and ``lm_head``.

Sampling. The sampler and entropy probes call the causal LM directly, one
forward per generated token. Under :func:`gathered` every unit is all-gathered
once and kept whole until the window closes, instead of being gathered again
for each token; the trainer opens one window around each step's rollouts and
around each evaluation, which every rank enters together (the all-gather is a
collective), so ranks may generate different amounts inside it. The
alternative, an unsharded sampling copy refreshed after each update, also
costs one all-gather per step but holds the full weights during backward too.

Checkpoints. Each rank writes its own shards of the weights
(``model/shard-RRRRR-of-NNNNN.safetensors``) and of the optimizer state
(``optimizer-RRRRR.safetensors``); rank 0 writes the config, tokenizer and
training state and, after every rank's files are fsynced, the manifest.
FSDP2 shards every tensor along dim 0 in ``torch.chunk`` pieces in rank order,
so the full tensor is the concatenation of the shards: :func:`load_full_state`
rebuilds it for resume (each rank then shards it again, bitwise) and for
``grpo-zoo eval`` on a sharded checkpoint.
"""
from __future__ import annotations

import contextlib
import json
import re
from pathlib import Path

import torch

SHARD_FILE = "shard-{rank:05d}-of-{world:05d}.safetensors"
_SHARD_RE = re.compile(r"^shard-(\d{5})-of-(\d{5})\.safetensors$")
OPTIM_FILE = "optimizer-{rank:05d}"
META_KEY = "grpo_zoo_fsdp2"


def _fsdp():
    from torch.distributed.fsdp import FSDPModule, fully_shard

    return FSDPModule, fully_shard


def shard(scorer, model) -> None:
    """Shard ``scorer`` (a CompletionLogprobs around ``model``) in place: one unit per decoder layer, scorer as root."""
    from torch.distributed.device_mesh import init_device_mesh

    _, fully_shard = _fsdp()
    device = next(model.parameters()).device
    mesh = init_device_mesh(device.type, (torch.distributed.get_world_size(),))
    names = set(getattr(model, "_no_split_modules", None) or [])
    layers = [m for m in model.modules() if type(m).__name__ in names]
    if not layers:
        raise ValueError(f"train.sharding = 'fsdp2': {type(model).__name__} names no decoder layer class "
                         "(_no_split_modules); cannot shard it layer by layer")
    for layer in layers:
        fully_shard(layer, mesh=mesh)
    # The root is resharded after its forward explicitly: left to FSDP's default for roots, its
    # parameters (embeddings, norm, the tied lm_head) stayed unsharded after backward here, so the
    # next forward ran on the pre-step weights while the optimizer had updated the shards.
    fully_shard(scorer, mesh=mesh, reshard_after_forward=True)
    # FSDP initializes itself at the first forward and takes whichever unit runs first as the root:
    # one token through the scorer now, so the sampler's direct calls into the layers never come first.
    with torch.no_grad():
        ids = torch.zeros((1, 2), dtype=torch.long, device=device)
        scorer(ids, torch.zeros((1, 2), dtype=torch.long, device=device), torch.zeros(1, dtype=torch.long, device=device))


@contextlib.contextmanager
def gathered(root):
    """Every FSDP unit under ``root`` all-gathered once and kept whole until the block ends (a collective)."""
    FSDPModule, _ = _fsdp()
    units = [m for m in root.modules() if isinstance(m, FSDPModule)]
    # Unshard outside inference mode: the gathered parameters must stay usable by autograd afterwards.
    with torch.inference_mode(False), torch.no_grad():
        for m in units:
            m.unshard()
    for m in units:
        m.set_reshard_after_forward(False)
    try:
        yield
    finally:
        for m in units:
            m.reshard()
            m.set_reshard_after_forward(True)


def local(t):
    """A DTensor's shard on this rank; other tensors as they are."""
    return t.to_local() if hasattr(t, "to_local") else t


# ------------------------------------------------------------------------------------------------ checkpoints
def write_model_shard(model, folder: Path, rank: int, world: int) -> Path:
    """This rank's shard of every parameter (and persistent buffer) of ``model`` into ``folder``."""
    from safetensors.torch import save_file

    tensors, shapes = {}, {}
    for name, t in _named_state(model):
        tensors[name] = local(t.detach()).contiguous().cpu()
        shapes[name] = list(t.shape)
    # one metadata key: safetensors writes several in a per-process random order, and equal
    # checkpoints must be equal files (their manifest hashes are compared)
    meta = {META_KEY: json.dumps({"rank": rank, "world": world, "shapes": shapes})}
    path = folder / SHARD_FILE.format(rank=rank, world=world)
    save_file(tensors, str(path), metadata=meta)
    return path


def _named_state(model):
    """Parameters (tied ones once, as named_parameters gives them) and persistent buffers."""
    yield from model.named_parameters()
    persistent = {k for k in model.state_dict()}
    for name, b in model.named_buffers():
        if name in persistent:
            yield name, b


def shard_files(folder: Path) -> list[Path]:
    """A sharded checkpoint's weight files in rank order ([] for an ordinary model folder)."""
    found = sorted((int(m.group(1)), int(m.group(2)), p) for p in Path(folder).glob("shard-*-of-*.safetensors")
                   if (m := _SHARD_RE.match(p.name)))
    if not found:
        return []
    world = found[0][1]
    if [r for r, _, _ in found] != list(range(world)) or any(w != world for _, w, _ in found):
        raise ValueError(f"{folder}: incomplete set of weight shards {[p.name for _, _, p in found]} "
                         f"(expected ranks 0..{world - 1} of {world})")
    return [p for _, _, p in found]


def load_full_state(folder: Path) -> dict[str, torch.Tensor]:
    """The full tensors of a sharded checkpoint: shards concatenated along dim 0, in rank order."""
    from safetensors import safe_open

    parts: dict[str, list[torch.Tensor]] = {}
    shapes: dict[str, list[int]] = {}
    for path in shard_files(folder):
        with safe_open(str(path), framework="pt") as f:
            shapes = json.loads(f.metadata()[META_KEY])["shapes"]
            for name in f.keys():
                parts.setdefault(name, []).append(f.get_tensor(name))
    full = {}
    for name, pieces in parts.items():
        t = pieces[0] if len(pieces[0].shape) == 0 else torch.cat(pieces, dim=0)
        if list(t.shape) != shapes[name]:
            raise ValueError(f"{folder}: {name} rebuilt as {list(t.shape)} from its shards, {shapes[name]} expected")
        full[name] = t
    return full


def load_sharded_model(folder: Path, dtype):
    """A transformers model from a sharded checkpoint's ``model/`` folder (config + shards)."""
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    state = load_full_state(folder)
    missing, unexpected = model.load_state_dict(state, strict=False)
    expected = {n for n, _ in _named_state(model)}
    lost = sorted(set(missing) & expected)
    if lost or unexpected:
        raise ValueError(f"{folder}: shards do not fit {type(model).__name__} (missing {lost[:3]}, unexpected {unexpected[:3]})")
    model.tie_weights()
    return model


def optimizer_state(optimizer) -> dict:
    """This rank's optimizer state: the shards of the moment tensors, as plain tensors."""
    sd = optimizer.state_dict()
    sd["state"] = {k: {n: local(v) for n, v in s.items()} for k, s in sd["state"].items()}
    return sd


def load_optimizer_state(optimizer, sd: dict) -> None:
    """Load a state from :func:`optimizer_state` and turn each moment back into a DTensor like its parameter."""
    from torch.distributed.tensor import DTensor

    optimizer.load_state_dict(sd)
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state.get(p, {})
            for name, v in list(state.items()):
                if isinstance(p, DTensor) and torch.is_tensor(v) and not isinstance(v, DTensor) and v.dim() > 0:
                    if v.shape != p.to_local().shape:
                        raise ValueError(f"optimizer state {name}: shard shape {tuple(v.shape)} does not fit the "
                                         f"parameter's shard {tuple(p.to_local().shape)} (saved with another world size?)")
                    state[name] = DTensor.from_local(v, p.device_mesh, p.placements, shape=p.shape, stride=p.stride())
