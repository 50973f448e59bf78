"""How DuckDB reads a commit's sales files: with each file's day from the manifest.

Loads read the files the last manifest lists, never a glob, checked first and under their
temporary names while a crashed commit still owes their rename (``fastgen.sinks.source``).

A sales file's day (``sale_date``) is taken from the manifest (``partitions[day]["files"]``),
never parsed from its path: DuckDB's hive parsing takes the *first* ``sale_date=`` of a path,
so a dataset under a folder such as ``/x/sale_date=1999-01-01/ds`` gave every row that date.
The files are read with ``hive_partitioning = false`` and each row gets its file's day from a
list indexed by DuckDB's ``file_index`` (the file's position in the list read): one statement
for every file, as fast as the hive read it replaces.

A watermark load reads only the files, and row groups, whose ``updated_at`` statistics reach
past its watermark (``after_watermark``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pyarrow.parquet as pq

from fastgen.dataset import Dataset
from fastgen.loaders.tables import sql_type
from fastgen.schema import CHANNEL, PARTITION_KEY, SALES_SCHEMA
from fastgen.sinks.source import committed_paths, file_bytes, has_channel

WATERMARK_COLUMN = "updated_at"


def sales_select(dataset: Dataset, last: dict, rels: list[str], *, channel: bool = False
                 ) -> tuple[str, dict]:
    """SELECT of the ``sales`` columns of these committed sales files, with each file's day
    from the manifest, and its parameters. With ``channel`` (a table that has the column a
    schema change added) also that column: the files are read by name, and files written
    before the change, which lack it, give nulls (``union_by_name``)."""
    day_of = {rel: day for day, part in last["partitions"].items() for rel in part["files"]}
    paths = committed_paths(dataset, last, rels)
    added = ""  # after sale_date, as in the table
    if channel:
        named = any(has_channel(dataset, path) for path in paths)
        added = f", {CHANNEL}" if named else f", NULL::VARCHAR AS {CHANNEL}"
    union = ", union_by_name = true" if channel else ""
    if dataset.format == "parquet":
        source = f"read_parquet($paths, hive_partitioning = false{union})"
    else:
        # Fixed columns when the files agree: sniffing each file costs 3x the read.
        types = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in SALES_SCHEMA.items())
        given = f"types = {{{types}}}{union}" if channel else f"columns = {{{types}}}"
        source = f"read_csv($paths, header = true, {given}, hive_partitioning = false)"
    sql = (f"SELECT {', '.join(SALES_SCHEMA)}, ($days::DATE[])[file_index::BIGINT + 1] AS "
           f"{PARTITION_KEY}{added} FROM {source}")
    return sql, {"paths": paths, "days": [day_of[rel] for rel in rels]}


@dataclass(frozen=True)
class Pruned:
    """Which committed sales files a watermark must read: those with a row group whose
    ``updated_at`` statistics reach past it, and what reading those row groups costs."""

    files: list[str]  # relative paths
    row_groups: int  # of the files kept, those whose max updated_at is after the watermark
    row_groups_total: int  # in every file looked at
    rows: int  # in the row groups kept
    bytes: int  # compressed bytes of the row groups kept


def after_watermark(dataset: Dataset, last: dict, rels: list[str], since: datetime) -> Pruned:
    """Prune files and row groups by their ``updated_at`` max statistic: a row group whose
    max is not after ``since`` holds no row a watermark load wants (DuckDB's Parquet reader
    skips the same row groups given ``WHERE updated_at > since``). Only footers are read
    here. A CSV file has no statistics: every file is kept whole."""
    if dataset.format != "parquet":
        sizes = [file_bytes(dataset, last, rel) for rel in rels]
        rows = sum(last["partitions"][day]["rows"] for day in last["partitions"])
        return Pruned(list(rels), len(rels), len(rels), rows, sum(sizes))
    kept, groups, total, rows, size = [], 0, 0, 0, 0
    for rel, path in zip(rels, committed_paths(dataset, last, rels)):
        meta = pq.ParquetFile(path).metadata
        total += meta.num_row_groups
        found = 0
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            column = group.column(meta.schema.names.index(WATERMARK_COLUMN))
            stats = column.statistics
            if stats is not None and stats.has_min_max and stats.max <= since:
                continue
            found += 1
            rows += group.num_rows
            size += sum(group.column(c).total_compressed_size for c in range(group.num_columns))
        if found:
            kept.append(rel)
            groups += found
    return Pruned(kept, groups, total, rows, size)
