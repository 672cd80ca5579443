"""Checkpoint state without pickle: a JSON tree plus the tensors it refers to, in safetensors.

Loading a pickle runs whatever code it names, and run folders are shared and
downloaded like model folders, so checkpoints hold only data. The allowed
values (the plugin-state contract, see docs/hooks.md) are: ``None``, ``bool``,
``int``, ``float`` (NaN and inf included), ``str``, ``list``, ``tuple``,
``dict`` with keys of those scalar types (torch optimizer state dicts key
parameters by int), and ``torch.Tensor`` (any dtype safetensors stores; views
are copied). NumPy scalars become Python numbers and NumPy arrays tensors.
They round-trip exactly: same types, same bits.

Encoding: JSON natives stand for themselves; everything else is a one-key
object whose key starts with ``$`` (``{"$tensor": "t17"}``, ``{"$tuple": [...]}``,
``{"$float": "nan"}``, ``{"$dict": [[key, value], ...]}`` for dicts whose keys
are not all plain strings or that use a ``$`` key of their own).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from ..errors import CheckpointError

_SCALARS = (type(None), bool, int, float, str)


class Unserializable(TypeError):
    pass


def _numpy_plain(value):
    """NumPy scalars and arrays as Python numbers and tensors; anything else unchanged."""
    mod = type(value).__module__
    if not mod.startswith("numpy"):
        return value
    import numpy as np

    if isinstance(value, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(value))
    if isinstance(value, np.generic):
        return value.item()
    return value


class Encoder:
    def __init__(self):
        self.tensors: dict[str, torch.Tensor] = {}
        self._storages: set[int] = set()

    def _storable(self, value: torch.Tensor) -> torch.Tensor:
        """``value`` on the CPU as safetensors accepts it: a view, or a tensor whose storage another
        saved tensor shares, is copied; the rest (optimizer moments: most of the bytes) are not."""
        t = value.detach().to("cpu")
        storage = t.untyped_storage()
        whole = t.is_contiguous() and t.storage_offset() == 0 and storage.nbytes() == t.numel() * t.element_size()
        if not whole or t.numel() == 0 or storage.data_ptr() in self._storages:
            t = t.contiguous().clone()
        self._storages.add(t.untyped_storage().data_ptr())
        return t

    def encode(self, value, where: str):
        value = _numpy_plain(value)
        if isinstance(value, float) and not math.isfinite(value):
            return {"$float": repr(value)}  # 'nan', 'inf', '-inf'
        if isinstance(value, _SCALARS):
            return value
        if isinstance(value, torch.Tensor):
            key = f"t{len(self.tensors)}"
            self.tensors[key] = self._storable(value)
            return {"$tensor": key}
        if isinstance(value, list):
            return [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, tuple):
            return {"$tuple": [self.encode(v, f"{where}[{i}]") for i, v in enumerate(value)]}
        if isinstance(value, dict):
            plain = all(type(k) is str and not k.startswith("$") for k in value)
            if plain:
                return {k: self.encode(v, f"{where}[{k!r}]") for k, v in value.items()}
            items = []
            for k, v in value.items():
                k = _numpy_plain(k)
                if not isinstance(k, _SCALARS) and not isinstance(k, tuple):
                    raise Unserializable(f"{where} has a dict key of type {type(k).__name__} ({k!r})")
                items.append([self.encode(k, f"{where} key {k!r}"), self.encode(v, f"{where}[{k!r}]")])
            return {"$dict": items}
        raise Unserializable(
            f"{where} is a {type(value).__module__}.{type(value).__qualname__}; checkpoint state may hold only "
            "None, bool, int, float, str, list, tuple, dict and torch.Tensor"
        )


def decode(node, tensors: dict[str, torch.Tensor]):
    if isinstance(node, list):
        return [decode(v, tensors) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) == 1:
        (tag, body), = node.items()
        if tag == "$tensor":
            return tensors[body]
        if tag == "$tuple":
            return tuple(decode(v, tensors) for v in body)
        if tag == "$float":
            return float(body)
        if tag == "$dict":
            return {_hashable(decode(k, tensors)): decode(v, tensors) for k, v in body}
    if any(k.startswith("$") for k in node):
        raise CheckpointError(f"unknown checkpoint state tag in {sorted(node)}")
    return {k: decode(v, tensors) for k, v in node.items()}


def _hashable(key):
    return tuple(key) if isinstance(key, list) else key


def save(state: dict[str, object], json_path: Path, tensor_path: Path) -> None:
    """Write ``state`` ({section: value}) as JSON + safetensors; a section that breaks the contract
    raises CheckpointError naming it (plugin sections are named ``plugin 'x'``)."""
    from safetensors.torch import save_file

    enc = Encoder()
    tree = {}
    for section, value in state.items():
        if section == "plugins":  # one entry per plugin: an error names the plugin whose state is bad
            tree[section] = {}
            for name, st in value.items():
                try:
                    tree[section][name] = enc.encode(st, "its state")
                except Unserializable as exc:
                    raise CheckpointError(f"plugin {name!r}: zoo_state_dict returned unsaveable state: {exc}") from None
            continue
        try:
            tree[section] = enc.encode(value, section)
        except Unserializable as exc:
            raise CheckpointError(f"cannot checkpoint the run's {section}: {exc}") from None
    json_path.write_text(json.dumps(tree, allow_nan=False))
    save_file(enc.tensors, str(tensor_path))


def load(json_path: Path, tensor_path: Path) -> dict:
    """Read what :func:`save` wrote; never executes anything from the files."""
    from safetensors.torch import load_file

    tensors = load_file(str(tensor_path))
    return decode(json.loads(json_path.read_text()), tensors)
