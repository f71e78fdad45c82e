"""The training path: `compose` a config, `fit` it. Same code for notebooks, the CLI and torchrun."""

from learnlib.models import build_model
from learnlib.train.config import compose, list_experiments
from learnlib.train.errors import CheckpointError, ConfigError, NonFiniteLossError
from learnlib.train.export import export_checkpoint, load_model
from learnlib.train.trainer import FitResult, fit

__all__ = ["compose", "fit", "list_experiments", "load_model", "export_checkpoint", "build_model", "FitResult",
           "CheckpointError", "ConfigError", "NonFiniteLossError"]
