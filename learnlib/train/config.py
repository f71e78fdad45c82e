"""Config composition for the training path: `learnlib.configs.compose`, re-exported."""

from learnlib.configs.compose import CONFIG_MODULE, compose, list_experiments

__all__ = ["CONFIG_MODULE", "compose", "list_experiments"]
