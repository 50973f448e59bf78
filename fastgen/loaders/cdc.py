"""Change data capture: apply the change feed of every run after the last applied one.

The warehouse's ``last_run`` is also the last applied ``commit_version``. A load reads the
feeds of runs last_run+1 .. T in order (each run's path from its manifest) and applies each
with one MERGE on ``sale_id``: an ``insert`` or ``update`` writes the after image (an update
whose row is missing is inserted, an insert whose row exists overwrites it, so a replayed feed
is harmless), a soft delete is an update whose image carries is_deleted, and a ``delete`` (a
hard delete) removes the row. A run touches a sale_id at most once, so the rows of one feed
may be applied in any order; runs must be applied in order. Every feed file is checked
against the last manifest before the first is applied (``files.check_files``). Cost grows
with the rows changed, not with the history.
"""

from __future__ import annotations

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.files import check_files, committed_paths, feed_select, file_bytes
from fastgen.loaders.tables import TABLE, TABLE_COLUMNS, State
from fastgen.loaders.warehouse import LoadStats, Work, affected, run_load
from fastgen.schema import PARTITION_KEY

STAGE = "fastgen_feed"
_SET = ", ".join(f"{c} = f.{c}" for c in TABLE_COLUMNS if c != "sale_id")
_COLS = ", ".join(TABLE_COLUMNS)
_VALUES = ", ".join(f"f.{c}" for c in TABLE_COLUMNS)
MERGE = f"""MERGE INTO {TABLE} AS t USING {STAGE} AS f ON t.sale_id = f.sale_id
    WHEN MATCHED AND f.op = 'delete' THEN DELETE
    WHEN MATCHED THEN UPDATE SET {_SET}
    WHEN NOT MATCHED AND f.op <> 'delete' THEN INSERT ({_COLS}) VALUES ({_VALUES})"""


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> LoadStats:
    """Apply the feeds the warehouse has not seen, in order, in one transaction."""
    return run_load("cdc", dataset, con, _apply, needs_history=True)


def _apply(con: duckdb.DuckDBPyConnection, dataset: Dataset, before: State | None,
           last: dict) -> Work:
    first = before.last_run + 1 if before else 0
    feeds = [manifest["feed"] for manifest in dataset.manifests(first, last["run"])]
    check_files(dataset, last, [rel for rels in feeds for rel in rels])
    rows = size = changed = 0
    days: set = set()
    watermark = None
    for rels in feeds:
        n, run_days, mark, merged = apply_feed(con, dataset, committed_paths(dataset, last, rels))
        rows += n
        size += sum(file_bytes(dataset, last, rel) for rel in rels)
        changed += merged
        days |= run_days
        watermark = mark if watermark is None or (mark and mark > watermark) else watermark
    return Work(rows_read=rows, bytes_read=size, partitions=len(days), rows_changed=changed,
                watermark=watermark)


def apply_feed(con: duckdb.DuckDBPyConnection, dataset: Dataset, paths: list[str]):
    """MERGE one run's feed into ``sales``: (feed rows, days, max updated_at, rows changed)."""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {STAGE} AS {feed_select(dataset)}", [paths])
    n, mark = con.execute(f"SELECT count(*), max(updated_at) FROM {STAGE}").fetchone()
    days = {d for (d,) in con.execute(f"SELECT DISTINCT {PARTITION_KEY} FROM {STAGE}").fetchall()}
    merged = affected(con, MERGE)
    con.execute(f"DROP TABLE {STAGE}")
    return n, days, mark, merged
