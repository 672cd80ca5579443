"""DAPO for grpo-zoo: dynamic sampling and overlong reward shaping (arXiv 2503.14476)."""
__version__ = "0.1.0"

from .config import DAPOConfig  # noqa: E402
from .formulas import group_spread_ok, overlong_penalty  # noqa: E402
from .plugin import DAPO  # noqa: E402

__all__ = ["DAPO", "DAPOConfig", "__version__", "group_spread_ok", "overlong_penalty"]
