"""Anticipated failures: the CLI prints their message as one line (``grpo-zoo: error: ...``, exit 2).

Raise these (or ``ConfigError``/``PluginError``) for mistakes a user can fix
without reading a traceback: a missing model folder, a malformed task file, a
damaged checkpoint, a NaN reward. ``GRPO_ZOO_DEBUG=1`` shows the traceback.
"""
from __future__ import annotations


class RunError(RuntimeError):
    """A run cannot start or continue for a reason the message states in full."""


class RunFolderError(RunError):
    """The run folder given to ``--out``/``--resume`` cannot be used as asked."""


class CheckpointError(RunError):
    """A checkpoint cannot be written or loaded safely."""


class ModelFolderError(RunError):
    """The model named by ``model = ...`` cannot be found or loaded."""


class TaskFileError(RunError, ValueError):
    """A task file is malformed; the message names file and line."""


class NonFiniteError(RunError):
    """A reward, loss or gradient is NaN or infinite."""


class CorruptFileError(RunError, ValueError):
    """A run-folder file cannot be read; the message names file and line."""
