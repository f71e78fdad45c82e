"""Unreadable training data reported in one line: which file, and what to do about it."""

from __future__ import annotations

import contextlib
import re

from learnlib.data.image_folder import UnreadableImageError
from learnlib.errors import DataReadError

ADVICE = "replace or delete that file, or pass data.skip_unreadable=true to leave unreadable images out"
# a DataLoader worker re-raises the error as a RuntimeError holding the worker's traceback text
_WORKER_LINE = re.compile(r"^\S*UnreadableImageError: (.+)$", re.MULTILINE)


@contextlib.contextmanager
def reading_data():
    """Turn an unreadable image (read here or in a DataLoader worker) into a one-line DataReadError."""
    try:
        yield
    except UnreadableImageError as err:
        raise DataReadError(f"{err}; {ADVICE}") from None
    except RuntimeError as err:
        found = _WORKER_LINE.findall(str(err))
        if not found or isinstance(err, DataReadError):
            raise
        raise DataReadError(f"{found[-1]}; {ADVICE}") from None
