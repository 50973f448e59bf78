"""Writers and readers of the files in a dataset: Parquet (default) and CSV."""

from __future__ import annotations

import hashlib
import os
import re
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import polars as pl

from fastgen.faults import fault
from fastgen.formats import csv, parquet

FORMATS = {"parquet": parquet, "csv": csv}


@dataclass(frozen=True)
class Written:
    """What one file write put on disk."""

    bytes: int
    sha256: str


def write_file(frame: pl.DataFrame, path: Path, fmt: str, *, wait: bool = True
               ) -> Written | Future[Written]:
    """Serialise ``frame`` to ``path`` and flush it to disk; return its size and checksum.

    The checksum is taken by reading the file back (from the page cache): cheaper in memory
    than serialising into a buffer first, which held a second copy of every file. With
    ``wait=False`` the fsync and the checksum run on a background thread and a future is
    returned: the caller serialises its next file meanwhile (fsync waits for the disk, and
    sha256 takes one core while Polars' writer seldom keeps both busy).
    """
    f = open(path, "wb")
    try:
        FORMATS[fmt].write(frame, f)
        fault("write")
    except (pl.exceptions.PolarsError, OSError) as exc:
        f.close()
        raise _as_os_error(exc, path) from exc
    except BaseException:
        f.close()
        raise
    if wait:
        return _finish(f, path)
    return _FINISHER.submit(_finish, f, path)


_FINISHER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastgen-fsync")


def _finish(f: IO[bytes], path: Path) -> Written:
    with f:
        try:
            f.flush()
            os.fsync(f.fileno())
        except OSError as exc:  # a full disk can surface only now
            raise _as_os_error(exc, path) from exc
        size = f.tell()
    return Written(size, file_checksum(path))


# Polars reports a failed write as a ComputeError whose text ends in "(os error N)".
_OS_ERROR = re.compile(r"\(os error (\d+)\)")


def _as_os_error(exc: Exception, path: Path) -> Exception:
    """The OSError under a writer's failure, naming the file, so that callers can tell a full
    disk (ENOSPC) from a bug; any other failure is returned as it was."""
    if isinstance(exc, OSError):
        number = exc.errno
    else:
        found = _OS_ERROR.search(str(exc))
        number = int(found.group(1)) if found else None
    if number is None:
        return exc
    return OSError(number, os.strerror(number), str(path))


def file_checksum(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
