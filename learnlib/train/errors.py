"""Exceptions of the training path, each with a message that says what to do."""

from learnlib.configs.errors import ConfigError

__all__ = ["CheckpointError", "ConfigError", "NonFiniteLossError"]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite."""
