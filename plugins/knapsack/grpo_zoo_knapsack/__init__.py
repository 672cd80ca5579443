"""Knapsack RL for grpo-zoo: per-task rollout budgets that maximize the expected learning signal (arXiv 2509.25849)."""
__version__ = "0.1.0"

from .allocate import Plan, gini, plan_budgets  # noqa: E402
from .solver import solve_dp, solve_fast, total_value  # noqa: E402
from .value import info_gain, marginal_gain, p_nonzero, value  # noqa: E402

__all__ = [
    "Plan",
    "gini",
    "info_gain",
    "marginal_gain",
    "p_nonzero",
    "plan_budgets",
    "solve_dp",
    "solve_fast",
    "total_value",
    "value",
]
