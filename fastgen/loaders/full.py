"""Full reprocessing: rebuild the warehouse's ``sales`` from every committed file, every load.

The file list is the last manifest's (``partitions[day]["files"]``), never a glob, so a file
left by an unfinished generator run is never read; each file is checked against the manifest
first (``files.check_files``). Cost grows linearly with the history.
"""

from __future__ import annotations

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.files import check_files, file_bytes
from fastgen.loaders.tables import CREATE_SALES, TABLE, State
from fastgen.loaders.warehouse import LoadStats, Work, insert_files, run_load


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> LoadStats:
    """Replace ``sales`` with the dataset's last committed state, in one transaction."""
    return run_load("full", dataset, con, _rebuild, needs_history=False)


def _rebuild(con: duckdb.DuckDBPyConnection, dataset: Dataset, before: State | None,
             last: dict) -> Work:
    rels = [rel for part in last["partitions"].values() for rel in part["files"]]
    check_files(dataset, last, rels)
    dropped = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()[0]
    # Dropping the table (rather than deleting its rows) lets DuckDB reuse its blocks.
    con.execute(CREATE_SALES.replace("CREATE TABLE", "CREATE OR REPLACE TABLE", 1))
    inserted = insert_files(con, dataset, last, rels)
    watermark = con.execute(f"SELECT max(updated_at) FROM {TABLE}").fetchone()[0]
    return Work(rows_read=inserted, bytes_read=sum(file_bytes(dataset, last, r) for r in rels),
                partitions=len(last["partitions"]), rows_changed=dropped + inserted,
                watermark=watermark)
