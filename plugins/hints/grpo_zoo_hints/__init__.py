"""Hint learning for grpo-zoo: hints for all-incorrect groups (HiLL, arXiv 2604.00698; SAGE; Guide)."""
__version__ = "0.1.0"
