"""Exceptions of the configuration, training and loading paths, each with a message that says what to do.

No heavy import here: anything can catch them cheaply.
"""


class ConfigError(ValueError):
    """An experiment name or a config key that does not exist."""


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


class RunWriteError(RuntimeError):
    """A checkpoint or run file that cannot be written (no space left, read-only folder, name too long)."""


class DataReadError(RuntimeError):
    """A training or held-out item that cannot be read (a corrupt or truncated image)."""


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite."""


# what the CLI and a sweep report in one line, without a traceback
EXPECTED_ERRORS = (ConfigError, CheckpointError, RunWriteError, DataReadError, NonFiniteLossError, FileNotFoundError,
                   ValueError, KeyError)
