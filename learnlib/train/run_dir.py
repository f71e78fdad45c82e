"""A run directory owned by one run at a time: locked, never mixing two runs' files.

`RunDirectory` takes an exclusive lock (released by the OS if the process dies), refuses to
start a fresh run over an existing one unless told to overwrite it, and removes the
temporary files a killed checkpoint write may have left.
"""

from __future__ import annotations

import fcntl
import os
import re
import shutil
import socket
from pathlib import Path

from learnlib.errors import ConfigError
from learnlib.train.checkpoint import atomic_copy

LOCK_NAME = ".lock"
RUN_FILES = ("config.yaml", "metrics.csv", "curves.png")  # what a run writes besides its folders
RUN_FOLDERS = ("checkpoints", "tensorboard")
# what a run writes inside its folders: checkpoint files and sharded folders, their staging names, event logs
RUN_CHECKPOINT_NAMES = re.compile(r"^\.?(last|best)(\.pt)?(\.partial|\.old|\..+\.tmp)?$")
RUN_TENSORBOARD_NAMES = re.compile(r"^events\.out\.tfevents\..+$")


def lock_folder(path: Path, what: str, key: str):
    """An open file holding an exclusive lock on `path`/.lock; ConfigError naming the holder if taken.

    `what` names the folder's use ("run_dir", "sweep folder") and `key` the override that picks another.
    """
    path.mkdir(parents=True, exist_ok=True)
    lock_path = path / LOCK_NAME
    handle = open(lock_path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown process"
        handle.close()
        raise ConfigError(f"{what} {path} is in use by another {'sweep' if key == 'sweep_dir' else 'run'} "
                          f"({owner}; lock {lock_path}); wait for it to finish or pass another {key}=...") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    handle.flush()
    return handle


def unlock_folder(handle) -> None:
    """Give back a lock that `lock_folder` took."""
    if handle is not None:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


class RunDirectory:
    """The folder of one run: `checkpoints/last.pt`, `best.pt`, metrics, TensorBoard, curves."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.checkpoints = self.path / "checkpoints"
        self.last, self.best = self.checkpoints / "last.pt", self.checkpoints / "best.pt"
        self._lock_handle = None

    def use_sharded_checkpoints(self) -> None:
        """Checkpoints are folders written by every rank (`checkpoints/last/`, `best/`), not files."""
        self.last, self.best = self.checkpoints / "last", self.checkpoints / "best"

    def copy_last_to_best(self) -> None:
        """Make `best` a copy of `last` (a file or a sharded folder), replacing it atomically."""
        if self.last.is_file():
            atomic_copy(self.last, self.best)
            return
        staging, old = self.checkpoints / ".best.partial", self.checkpoints / ".best.old"
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(self.last, staging)
        shutil.rmtree(old, ignore_errors=True)
        if self.best.exists():
            os.replace(self.best, old)
        os.replace(staging, self.best)
        shutil.rmtree(old, ignore_errors=True)

    def existing_run_files(self) -> list[str]:
        """Names of the files and folders of an earlier run found here."""
        found = [n for n in RUN_FILES + RUN_FOLDERS if (self.path / n).exists()]
        return found if set(found) - {"config.yaml"} else []  # a lone config.yaml is no run

    def check_start(self, resume: bool, overwrite: bool) -> None:
        """Refuse a fresh run over an earlier one unless `overwrite` (every rank calls this)."""
        found = self.existing_run_files()
        if resume or not found:
            return
        foreign = self.foreign_files()
        if foreign:  # overwrite=true would not help: it never removes what no run wrote
            raise ConfigError(_foreign_message(self.path, foreign))
        if overwrite:
            return
        raise ConfigError(
            f"run_dir {self.path} already holds a run ({', '.join(found)}); pass resume=true to continue it, "
            "overwrite=true to replace it, or another run_dir=... for a new run"
        )

    def acquire(self) -> None:
        """Take the run's lock; ConfigError naming the other process if it is held."""
        self._lock_handle = lock_folder(self.path, "run_dir", "run_dir")

    def release(self) -> None:
        """Give the lock back."""
        unlock_folder(self._lock_handle)
        self._lock_handle = None

    def has_checkpoint(self) -> bool:
        """Whether a run left a checkpoint to resume here (a file, a sharded folder or its previous copy)."""
        names = ("last.pt", "last", ".last.old")
        return any((self.checkpoints / name).exists() for name in names)

    def has_sharded_checkpoint(self) -> bool:
        """Whether the last checkpoint here is a sharded folder (written under FSDP), not a single file."""
        folder, old = self.checkpoints / "last", self.checkpoints / ".last.old"
        single = (self.checkpoints / "last.pt").exists()
        return not single and ((folder / ".metadata").is_file() or (old / "extra.pt").is_file())

    def foreign_files(self) -> list[str]:
        """Files inside the run's folders that no run writes (e.g. `checkpoints/` of a repository): never removed."""
        foreign = []
        for folder, pattern in (("checkpoints", RUN_CHECKPOINT_NAMES), ("tensorboard", RUN_TENSORBOARD_NAMES)):
            path = self.path / folder
            if path.is_dir():
                foreign += [f"{folder}/{p.name}" for p in sorted(path.iterdir()) if not pattern.match(p.name)]
            elif path.exists():
                foreign.append(folder)
        return foreign

    def clear(self) -> None:
        """Remove an earlier run's files (overwrite=true); ConfigError, removing nothing, if other files are there."""
        foreign = self.foreign_files()
        if foreign:
            raise ConfigError(_foreign_message(self.path, foreign))
        for name in RUN_FILES:
            (self.path / name).unlink(missing_ok=True)
        for name in RUN_FOLDERS:
            shutil.rmtree(self.path / name, ignore_errors=True)

    def remove_partial_checkpoints(self) -> list[Path]:
        """Delete temporary files left by a checkpoint write that was killed; returns them."""
        if not self.checkpoints.is_dir():
            return []
        partial = sorted(self.checkpoints.glob(".*.pt.*.tmp"))
        for path in partial:
            path.unlink(missing_ok=True)
        return partial


def _foreign_message(path: Path, foreign: list[str]) -> str:
    shown = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
    return (f"run_dir {path} holds files that no run writes ({shown}); a run never replaces them "
            "(overwrite=true removes only a run's own files): pass another run_dir=... for this run")
