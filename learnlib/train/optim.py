"""AdamW with weight decay on matrices only: `learnlib.nn.optim.build_optimizer`, the one shared by training
and the memory measurement."""

from learnlib.nn.optim import build_optimizer

__all__ = ["build_optimizer"]
