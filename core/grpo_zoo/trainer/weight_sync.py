"""Keep an inference server's weights in step with the trained policy (``sampling.endpoint.sync``).

Runs from the ``zoo_after_update`` hook (``builtin.weight_sync``), so the loop
has no special case and a plugin can sync something else the same way.

- ``disk`` (written against vLLM 0.33.0): the main process saves the policy as
  safetensors under ``sync_dir/v<version>`` (written under a temporary name,
  then renamed, so the server never sees half a checkpoint), then drives the
  server's development routes (``VLLM_SERVER_DEV_MODE=1``), at the server root
  (``endpoint.url`` without ``/v1``)::

      POST /pause?mode=wait                      in-flight requests finish on the old weights
      POST /collective_rpc  {"method": "reload_weights", "kwargs": {"weights_path": DIR}}
      POST /reset_prefix_cache                   no KV computed with the old weights is reused
      POST /update_weight_version {"new_version": "<version>"}
      POST /resume

  vLLM 0.33 has no shared-disk weight-transfer backend; ``reload_weights`` is
  the worker method behind its in-place hot reload.
- ``nccl``: TRL 1.16's ``trl.generation.vllm_client.VLLMClient`` (a server
  started with ``--weight-transfer-config '{"backend": "nccl"}'``, CUDA only).

The version of the policy after training step ``s`` is ``s + 1`` (optimizer
rounds taken); rollouts of step ``s`` should come from version ``s``.
``sampling.max_staleness = k`` lets the push run in the background while the
next steps sample, as long as the server holds version >= step - k; 0 waits
for every push. The first sampling call of a run pushes the current weights
(fresh or resumed), so the server never starts from other weights.
"""
from __future__ import annotations

import os
import shutil
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ..hookspecs import hookimpl
from .durable import replace_folder

# Per-run state lives on the context object, not in ctx.info (checkpointed: threads and sockets
# do not pickle, and a resumed run must push again).
_KEY = "_zoo_weight_sync"
_FIRST = "_zoo_weight_sync_pushed"
_KEEP = 2  # checkpoint folders kept on disk: the loaded one and the one being pushed


def server_root(url: str) -> str:
    """The server root of an OpenAI-compatible base URL (``http://h:8000/v1`` -> ``http://h:8000``)."""
    url = url.rstrip("/")
    return url[: -len("/v1")] if url.endswith("/v1") else url


def is_main(ctx) -> bool:
    acc = ctx.accelerator
    return acc is None or acc.is_main_process


def save_atomically(model, folder: Path) -> Path:
    """``model`` as a safetensors checkpoint in ``folder``, which appears complete or not at all."""
    return replace_folder(folder, lambda tmp: model.save_pretrained(tmp, safe_serialization=True)).resolve()


class DiskSync:
    """Pushes through a shared folder and vLLM's reload route; pushes run in order on one worker thread."""

    def __init__(self, ctx):
        ep = ctx.config.sampling.endpoint
        from .openai_backend import Client

        root = Path(ep.sync_dir) if ep.sync_dir else Path(ctx.run_dir or ".") / "weight_sync"
        self.dir = root.resolve()
        self.dir.mkdir(parents=True, exist_ok=True)
        self.client = Client(server_root(ep.url), ep.timeout_s, os.environ.get(ep.api_key_env) or None)
        self.version: int | None = None  # version the server confirmed holding
        self.pending: Future | None = None
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="grpo-zoo-weight-sync")
        self.lock = threading.Lock()
        self.pushes = 0

    def push(self, model, version: int) -> Future:
        if self.pending is not None and self.pending.done():
            self.pending.result()  # a background push failed: say so now, not at the end of the run
        path = save_atomically(model, self.dir / f"v{version:06d}")  # on the caller's thread: these weights
        self.pending = self.pool.submit(self._load, path, version)
        return self.pending

    def _load(self, path: Path, version: int) -> None:
        c = self.client
        c.post("pause?mode=wait", {})
        try:
            c.post("collective_rpc", {"method": "reload_weights", "kwargs": {"weights_path": str(path)}})
            c.post("reset_prefix_cache", {})
            c.post("update_weight_version", {"new_version": str(version)})
        finally:
            c.post("resume", {})
        with self.lock:
            self.version = version
            self.pushes += 1
        for old in sorted(p for p in self.dir.glob("v*") if p.is_dir())[:-_KEEP]:
            shutil.rmtree(old, ignore_errors=True)

    def wait(self) -> None:
        """Block until the last push has finished; re-raise its error."""
        if self.pending is not None:
            self.pending.result()

    def close(self) -> None:
        self.pool.shutdown(wait=True)


class NcclSync:
    """TRL's VLLMClient: an NCCL group between this process and the server's workers (CUDA only)."""

    def __init__(self, ctx):
        try:
            from trl.generation.vllm_client import VLLMClient
        except ImportError as exc:  # TRL imports vllm for the NCCL engine
            raise RuntimeError(f"sampling.endpoint.sync = 'nccl' needs vLLM (pip install grpo-zoo[vllm]): {exc}") from None
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("sampling.endpoint.sync = 'nccl' needs a CUDA device; use sync = 'disk' on CPU")
        ep = ctx.config.sampling.endpoint
        from .openai_backend import Client

        self.vllm = VLLMClient(base_url=server_root(ep.url), group_port=ep.sync_group_port,
                               connection_timeout=ep.timeout_s)
        self.vllm.init_communicator(device=ctx.engine.model.device)
        self.client = Client(server_root(ep.url), ep.timeout_s, os.environ.get(ep.api_key_env) or None)
        self.version: int | None = None
        self.pushes = 0

    def push(self, model, version: int):
        self.client.post("pause?mode=wait", {})
        try:
            self.vllm.update_model_params(model)
            self.vllm.reset_prefix_cache()
            self.client.post("update_weight_version", {"new_version": str(version)})
        finally:
            self.client.post("resume", {})
        self.version = version
        self.pushes += 1

    def wait(self) -> None:
        pass

    def close(self) -> None:
        self.vllm.close_communicator()


def syncer(ctx):
    """This run's syncer (main process, sync != none, HTTP backend), created on first use; else None."""
    cfg = ctx.config.sampling
    if cfg.backend != "openai" or cfg.endpoint.sync == "none" or not is_main(ctx) or ctx.engine is None:
        return None
    if getattr(ctx, _KEY, None) is None:
        setattr(ctx, _KEY, DiskSync(ctx) if cfg.endpoint.sync == "disk" else NcclSync(ctx))
    return getattr(ctx, _KEY)


def _barrier(ctx) -> None:
    if ctx.accelerator is not None:
        ctx.accelerator.wait_for_everyone()


def before_sampling(ctx) -> int | None:
    """Called by the HTTP backend before a step samples: returns the weight version its rollouts record.

    Pushes the current weights on the run's first call; waits until the server
    holds version >= step - max_staleness. Ranks other than the main one know
    the version only when max_staleness = 0 (then it is the step); else None.
    """
    cfg = ctx.config.sampling
    if cfg.backend != "openai" or cfg.endpoint.sync == "none":
        return 0  # the server keeps the weights it started with
    sync = syncer(ctx)
    if not getattr(ctx, _FIRST, False):
        setattr(ctx, _FIRST, True)
        if sync is not None:
            sync.push(unwrapped(ctx), ctx.step)
            sync.wait()
        _barrier(ctx)
    if sync is None:  # another rank (the main one pushed, then all met at a barrier), or no trainer: unknown
        return ctx.step if cfg.max_staleness == 0 and ctx.engine is not None else None
    need = ctx.step - cfg.max_staleness
    if sync.version is None or sync.version < need:
        sync.wait()  # pushes finish in order: after the last one the server holds the newest version
    if sync.version is None or sync.version < need:
        raise RuntimeError(f"weight sync: server holds version {sync.version}, step {ctx.step} needs >= {need}")
    return sync.version


def unwrapped(ctx):
    model = ctx.engine.model
    acc = ctx.accelerator
    return acc.unwrap_model(model) if acc is not None else model


@hookimpl
def zoo_after_update(ctx, step):
    cfg = ctx.config.sampling
    if cfg.backend == "vllm":  # colocated engine: TRL's VLLMGeneration copies the weights in (every rank)
        from .vllm_backend import sync_weights

        sync_weights(ctx)
        return
    if cfg.backend != "openai" or cfg.endpoint.sync == "none":
        return
    sync = syncer(ctx)
    if sync is not None:
        sync.push(unwrapped(ctx), step + 1)
        if cfg.max_staleness == 0:
            sync.wait()
    if cfg.max_staleness == 0:
        _barrier(ctx)  # no rank samples before the server holds the new weights


@hookimpl
def zoo_run_end(ctx, metrics):
    sync = getattr(ctx, _KEY, None)
    setattr(ctx, _KEY, None)
    if sync is not None:
        sync.wait()
        sync.close()
