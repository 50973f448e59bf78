"""How DuckDB reads a commit's sales files: with each file's day from the manifest.

Loads read the files the last manifest lists, never a glob, checked first and under their
temporary names while a crashed commit still owes their rename (``fastgen.sinks.source``).

A sales file's day (``sale_date``) is taken from the manifest (``partitions[day]["files"]``),
never parsed from its path: DuckDB's hive parsing takes the *first* ``sale_date=`` of a path,
so a dataset under a folder such as ``/x/sale_date=1999-01-01/ds`` gave every row that date.
The files are read with ``hive_partitioning = false`` and each row gets its file's day from a
list indexed by DuckDB's ``file_index`` (the file's position in the list read): one statement
for every file, as fast as the hive read it replaces.
"""

from __future__ import annotations

from fastgen.dataset import Dataset
from fastgen.loaders.tables import sql_type
from fastgen.schema import PARTITION_KEY, SALES_SCHEMA
from fastgen.sinks.source import committed_paths


def sales_select(dataset: Dataset, last: dict, rels: list[str]) -> tuple[str, dict]:
    """SELECT of the ``sales`` columns of these committed sales files, with each file's day
    from the manifest, and its parameters."""
    day_of = {rel: day for day, part in last["partitions"].items() for rel in part["files"]}
    columns = ", ".join(SALES_SCHEMA)
    if dataset.format == "parquet":
        source = "read_parquet($paths, hive_partitioning = false)"
    else:
        types = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in SALES_SCHEMA.items())
        source = (f"read_csv($paths, header = true, columns = {{{types}}}, "
                  "hive_partitioning = false)")
    sql = (f"SELECT {columns}, ($days::DATE[])[file_index::BIGINT + 1] AS {PARTITION_KEY} "
           f"FROM {source}")
    return sql, {"paths": committed_paths(dataset, last, rels),
                 "days": [day_of[rel] for rel in rels]}
