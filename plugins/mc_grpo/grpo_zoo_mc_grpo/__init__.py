"""MC-GRPO for grpo-zoo: median-centred GRPO for small groups (arXiv 2601.22582)."""
__version__ = "0.1.0"

from .config import MCGRPOConfig  # noqa: E402
from .median import mad_scale, mc_advantages, median_center, pivot_index, pivot_mask, rescale  # noqa: E402
from .plugin import MCGRPO  # noqa: E402

__all__ = [
    "MCGRPO",
    "MCGRPOConfig",
    "__version__",
    "mad_scale",
    "mc_advantages",
    "median_center",
    "pivot_index",
    "pivot_mask",
    "rescale",
]
