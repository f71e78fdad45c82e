"""The chapter-00 MLP classifier. Importing this package registers `mlp_digits`."""

from learnlib.mlp.model import MLPClassifier, mlp_digits

__all__ = ["MLPClassifier", "mlp_digits"]
