"""Full reprocessing: rebuild the warehouse's ``sales`` from every committed file, every load.

The file list is the last manifest's (``partitions[day]["files"]``), never a glob, so a file
left by an unfinished generator run is never read; each file is checked against the manifest
first, and the rows inserted against its counts (``fastgen.sinks.commit.insert_days``, the
bulk path of every target). Cost grows linearly with the history.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.tables import CREATE_SALES, TABLE, State
from fastgen.loaders.target import Warehouse
from fastgen.loaders.warehouse import LoadStats, run_load
from fastgen.sinks.commit import Work, insert_days


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> LoadStats:
    """Replace ``sales`` with the dataset's last committed state, in one transaction."""
    return run_load("full", dataset, con, _rebuild, needs_history=False)


def _rebuild(target: Warehouse, dataset: Dataset, before: State | None, last: dict) -> Work:
    dropped = target.row_count()
    # Dropping the table (rather than deleting its rows) lets DuckDB reuse its blocks.
    target.con.execute(CREATE_SALES.replace("CREATE TABLE", "CREATE OR REPLACE TABLE", 1))
    target.evolve(target.channel)  # the column a schema change added, again
    work = insert_days(dataset, target, last, list(last["partitions"]))
    mark = target.con.execute(f"SELECT max(updated_at) FROM {TABLE}").fetchone()[0]
    return replace(work, changes=dropped + work.changes, watermark=mark)
