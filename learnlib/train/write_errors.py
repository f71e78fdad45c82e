"""File-system failures while a run writes (disk full, read-only folder, name too long) in one line."""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

from learnlib.errors import RunWriteError

# torch.save's C++ writer reports a full disk as a RuntimeError that never mentions space
_TORCH_WRITER_FAILURES = ("inline_container", "PytorchStreamWriter", "unexpected pos")


def describe_write_failure(err: BaseException, folder: Path) -> str | None:
    """What went wrong writing into `folder`, in words, or None when `err` is no such failure."""
    name = getattr(err, "filename", None) or folder
    if isinstance(err, OSError) and not _inside(Path(name), folder):
        return None  # e.g. a data file that cannot be read: not the run's own writing
    if isinstance(err, OSError):
        if err.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"no space left on {folder}; free some space there or pass another run_dir=..."
        if err.errno == errno.EROFS:
            return f"{name} is on a read-only file system; pass a writable run_dir=..."
        if err.errno in (errno.EACCES, errno.EPERM):
            return f"permission denied on {name}; make {folder} writable or pass another run_dir=..."
        if err.errno == errno.ENAMETOOLONG:
            return (f"a file or folder name in {name} is too long for its file system (at most 255 bytes per "
                    "name); pass a shorter run_dir=...")
        return None
    if isinstance(err, RuntimeError) and any(word in str(err) for word in _TORCH_WRITER_FAILURES):
        return f"no space left on {folder}; free some space there or pass another run_dir=..."
    return None


def _inside(path: Path, folder: Path) -> bool:
    path, folder = Path(os.path.abspath(path)), Path(os.path.abspath(folder))
    return path == folder or folder in path.parents


@contextlib.contextmanager
def writing_run_files(folder: str | Path, intact: str | None = None):
    """Turn a file-system failure while writing into `folder` into a one-line RunWriteError.

    `intact` says what survived (e.g. "last good checkpoint .../last.pt (step 8) is intact").
    """
    try:
        yield
    except (OSError, RuntimeError) as err:
        why = None if isinstance(err, RunWriteError) else describe_write_failure(err, Path(folder))
        if why is None:
            raise
        what, _, advice = why.partition("; ")
        parts = [what, intact, advice]
        raise RunWriteError("; ".join(p for p in parts if p)) from None
