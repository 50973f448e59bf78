"""Writers and readers of the files in a dataset: Parquet (default) and CSV."""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from fastgen.formats import csv, parquet

FORMATS = {"parquet": parquet, "csv": csv}


@dataclass(frozen=True)
class Written:
    """What one file write put on disk."""

    bytes: int
    sha256: str


def write_file(frame: pl.DataFrame, path: Path, fmt: str) -> Written:
    """Serialise ``frame`` to ``path`` and flush it to disk; return its size and checksum."""
    buffer = io.BytesIO()
    FORMATS[fmt].write(frame, buffer)
    data = buffer.getbuffer()
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    return Written(len(data), hashlib.sha256(data).hexdigest())


def file_checksum(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
