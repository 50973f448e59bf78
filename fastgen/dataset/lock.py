"""The two locks of a dataset folder, both ``flock``s that the kernel drops when a holder dies.

- The *writer lock* (``.fastgen.lock``): one writer at a time; a second fails at once,
  naming the first's pid.
- The *commit lock* (``.fastgen.commit.lock``): readers (load, verify, scan, info) hold it
  shared while they read a manifest and the files it names; a writer holds it exclusively
  only while it renames a commit's files into place (milliseconds to seconds). So a reader
  sees exactly one committed run, never files of two, and a writer's minutes of generation
  never block a reader. Whoever has to wait is told, through ``on_wait``, before it blocks.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path

from fastgen.dataset.layout import COMMIT_LOCK, LOCK
from fastgen.errors import LockedError

Wait = Callable[[], None] | None


class WriterLock:
    """Become the one writer of ``root``, or fail at once naming the holder's pid."""

    def __init__(self, root: Path):
        self.root = root
        self.fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{self.root} is being written by another fastgen "
                              f"(pid {holder}); wait for it or stop it.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self.fd = fd
        # Readers need the commit lock's file; create it while this writer is alone.
        os.close(os.open(self.root / COMMIT_LOCK, os.O_RDWR | os.O_CREAT, 0o644))

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


@contextlib.contextmanager
def committing(root: Path, on_wait: Wait = None) -> Iterator[None]:
    """Hold the commit lock exclusively: no reader is between a manifest and its files."""
    with _flock(root, fcntl.LOCK_EX, on_wait, create=True):
        yield


@contextlib.contextmanager
def reading(root: Path, on_wait: Wait = None) -> Iterator[None]:
    """Hold the commit lock shared: the committed run cannot change until the block ends.

    A folder whose lock file cannot be opened (never written by this version, or read-only
    to this user while no writer can write it either) is read without the lock.
    """
    with _flock(root, fcntl.LOCK_SH, on_wait, create=False):
        yield


@contextlib.contextmanager
def _flock(root: Path, mode: int, on_wait: Wait, *, create: bool) -> Iterator[None]:
    path = root / COMMIT_LOCK
    try:
        fd = os.open(path, (os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY, 0o644)
    except OSError as exc:
        if create or exc.errno not in (errno.ENOENT, errno.EACCES, errno.EROFS):
            raise
        yield
        return
    try:
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            if on_wait is not None:
                on_wait()
            fcntl.flock(fd, mode)
        yield
    finally:
        os.close(fd)
