"""Graders the exercises call: `learnlib.check.<exercise>(your_function)` prints PASSED or the first mismatch."""

from learnlib.check.core import CheckResult, Mismatch, assert_close, run_check
from learnlib.check.fundamentals import evaluate, pad_collate, train_step

__all__ = ["CheckResult", "Mismatch", "assert_close", "run_check", "pad_collate", "train_step", "evaluate"]
