"""Parquet as DESIGN.md section 4 fixes it: zstd, statistics on, row groups of about 1M rows."""

from __future__ import annotations

from typing import IO

import polars as pl

EXTENSION = ".parquet"
# About 1M rows a group: large enough for fast scans, small enough for row-group pruning.
ROW_GROUP_ROWS = 1 << 20
# zstd level 1 instead of Polars' default 3: here about 20% faster to write a day, for
# files about 3% larger (10M rows: 2.0 s and 150 MB against 2.5 s and 146 MB).
ZSTD_LEVEL = 1


def write(frame: pl.DataFrame, sink: IO[bytes]) -> None:
    frame.write_parquet(sink, compression="zstd", compression_level=ZSTD_LEVEL, statistics=True,
                        row_group_size=ROW_GROUP_ROWS)


def read(paths: list[str]) -> pl.DataFrame:
    return pl.read_parquet(paths)
