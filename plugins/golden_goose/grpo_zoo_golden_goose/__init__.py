"""Golden Goose for grpo-zoo: verifiable multiple-choice tasks synthesized from unverifiable text (arXiv 2601.22975)."""
__version__ = "0.1.0"
