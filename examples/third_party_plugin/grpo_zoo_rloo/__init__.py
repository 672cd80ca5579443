"""RLOO leave-one-out baseline as a grpo-zoo plugin."""
__version__ = "0.1.0"
