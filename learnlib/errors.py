"""Exceptions of the configuration, training and loading paths, each with a message that says what to do.

No heavy import here: anything can catch them cheaply.
"""


class ConfigError(ValueError):
    """An experiment name or a config key that does not exist."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite."""
