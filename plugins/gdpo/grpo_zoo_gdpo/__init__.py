"""GDPO for grpo-zoo: Group reward-Decoupled normalization Policy Optimization (arXiv 2601.05242)."""
__version__ = "0.1.0"

from .aggregate import distinct_per_group, gate_rewards, gdpo_advantages  # noqa: E402
from .config import Condition, GDPOConfig  # noqa: E402
from .plugin import GDPO  # noqa: E402

__all__ = ["GDPO", "Condition", "GDPOConfig", "distinct_per_group", "gate_rewards", "gdpo_advantages", "__version__"]
