"""The error of config composition (no Hydra import: cheap to catch anywhere)."""


class ConfigError(ValueError):
    """An experiment name or a config key that does not exist."""
