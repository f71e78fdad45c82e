"""learnlib: the package behind the learnlib deep-learning course."""

__version__ = "0.1.0"
