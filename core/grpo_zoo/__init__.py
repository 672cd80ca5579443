"""grpo-zoo: a plugin-based zoo of GRPO-family RL algorithms for language models."""
__version__ = "0.1.0"

from .api import train  # noqa: E402
from .context import RunContext, load_config, make_context  # noqa: E402
from .hookspecs import hookimpl  # noqa: E402
from .segments import Groups  # noqa: E402
from .types import LossInputs, RolloutRequest, Rollouts, Task  # noqa: E402

__all__ = [
    "Groups",
    "LossInputs",
    "RolloutRequest",
    "RunContext",
    "Rollouts",
    "Task",
    "__version__",
    "hookimpl",
    "load_config",
    "make_context",
    "train",
]
