"""Files written all at once: a temporary file in the target's folder, then a rename over the target.

A crash at any moment leaves the previous file or the new one, never half of one. New files get the
permissions a file of this user normally gets (0o666 less the umask), not mkstemp's 0o600.
Checkpoints, the SLat preprocessing cache, PLY files and GIFs are all written this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


def file_mode() -> int:
    """The permissions a new file of this user gets (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[BinaryIO]:
    """A binary handle whose content replaces `path` when the block ends without an error (fsync, then
    rename); on an error the temporary file is removed and `path` is untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Write `data` to `path` atomically; returns `path`."""
    with atomic_open(path) as handle:
        handle.write(data)
    return Path(path)
