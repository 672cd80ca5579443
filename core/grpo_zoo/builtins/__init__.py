"""Core's built-in hook implementations, registered as plugins named ``builtin.*``."""
