"""The training engine: models, sampling backends, the GRPO loop, run folders and checkpoints."""
