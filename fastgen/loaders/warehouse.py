"""The DuckDB warehouse that the reference loaders keep equal to a dataset: opening it, and
the one transaction around every load (``run_load``, on the exactly-once core's
``fastgen.sinks.commit.transact``, with the warehouse as its target: ``target.Warehouse``).

Its tables are described in ``fastgen.loaders.tables``; how DuckDB reads a commit's files in
``fastgen.loaders.files`` (checked against the manifest first by the core);
``verify_warehouse`` (``fastgen.loaders.verify``) checks the table against the last
manifest's ground truth.

Every load runs in one DuckDB transaction that also writes its control row (as each of a
sink's runs does), so it commits whole or not at all: a load that fails, is interrupted
(Ctrl-C) or killed halfway leaves the previous table and state, and the next load simply
starts again from there (DuckDB's write-ahead log makes the commit atomic on disk). Every
strategy of ``sales`` leaves the same table (the snapshot after ``last_run``; watermark only
without hard deletes), so its position is the ``last_run`` of its most recent load, whichever
strategy made it: strategies may be switched on one warehouse. ``scd2`` keeps another table,
``sales_history``, whose position is its own control row only (``tables.state``).

Loads are meant to run between generator runs, as in a daily pipeline, or inside
``Dataset.reading()`` (as ``fastgen load`` does), which holds the dataset at one committed run.
Without it, a writer's commit during a load replaces files under it: the checks of each file
against the manifest before it is read, and of the rows inserted against the manifest's
counts, refuse most such loads (rolled back) but cannot prove a file unchanged while DuckDB
reads it. CDC reads only feeds, which never change once committed.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import duckdb

from fastgen.dataset import Dataset, DatasetError, UsageError
from fastgen.loaders.tables import (ADD_FED, CREATE_SALES, CREATE_STATE, STATE_TABLE, State,
                                    strategy_state)
from fastgen.loaders.target import Warehouse, affected, save_state
from fastgen.loaders.verify import verify_warehouse
from fastgen.sinks.commit import Work, transact
from fastgen.sinks.position import Position, fingerprint
from fastgen.sinks.source import last_manifest

# Also importable from here, where they lived before the split.
__all__ = ["STATE_TABLE", "STRATEGIES", "LoadStats", "Warehouse", "Work", "affected",
           "connect", "fingerprint", "run_load", "save_state", "strategy_state",
           "verify_warehouse"]

STRATEGIES = ("full", "incremental", "cdc")  # exact for every dataset; and see LOADERS
# A DuckDB database file starts with its main header: an 8-byte checksum, then these magic
# bytes (DuckDB's MainHeader::MAGIC_BYTES, checked the same way when DuckDB opens a file).
DUCKDB_MAGIC, DUCKDB_MAGIC_OFFSET = b"DUCK", 8


@dataclass(frozen=True)
class LoadStats:
    """What one load did.

    ``rows_changed`` counts the rows DuckDB reports as deleted, inserted or updated in
    ``sales``: a reloaded row counts twice (deleted, then inserted), an update once.
    """

    strategy: str
    from_run: int  # the warehouse's run before the load; -1 when it was empty
    to_run: int
    to_date: date
    rows_read: int
    bytes_read: int
    partitions: int
    rows_changed: int
    seconds: float
    row_groups: int | None = None  # Parquet row groups read (watermark)
    notes: tuple[str, ...] = ()  # what the user must know of this load (one line each)

    def extra_info(self) -> dict:
        return {"rows_read": self.rows_read, "bytes_read": self.bytes_read,
                "partitions_touched": self.partitions, "rows_changed": self.rows_changed,
                "from_run": self.from_run, "to_run": self.to_run,
                **({"row_groups": self.row_groups} if self.row_groups is not None else {})}

def connect(path: str | os.PathLike, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created if missing, unless ``read_only``) with its tables.

    An existing file must be a DuckDB database: DuckDB itself opens a ``.parquet`` or
    ``.csv`` path as an empty in-memory database with a view of that file, so a load would
    report success and keep nothing. An empty file is refused too (DuckDB refuses it, and a
    file the user made is not ours to delete): remove it, or name a file that does not exist.
    """
    path = Path(path)
    if read_only and not path.exists():
        raise UsageError(f"--warehouse {path} does not exist.")
    if not path.parent.is_dir():
        raise UsageError(f"--warehouse {path}: folder {path.parent} does not exist.")
    _check_is_duckdb(path)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        first = str(exc).splitlines()[0]
        busy = "; is another load using it?" if "lock" in first.lower() else ""
        raise DatasetError(f"cannot open the warehouse {path} ({first}){busy}") from None
    except duckdb.Error as exc:
        raise UsageError(f"--warehouse {path} is not a DuckDB database "
                         f"({str(exc).splitlines()[0]}).") from None
    main = con.execute("SELECT path FROM duckdb_databases() "
                       "WHERE database_name = current_database()").fetchone()
    if main is None or main[0] is None:  # the file appeared since the check, as a non-database
        con.close()
        raise UsageError(f"--warehouse {path} is not a DuckDB database file.")
    # Only the command line prints: no progress bar on stdout from a long load.
    con.execute("SET enable_progress_bar = false")
    if not read_only:
        con.execute("BEGIN")
        con.execute(CREATE_SALES.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
        con.execute(CREATE_STATE)
        con.execute(ADD_FED)
        con.execute("COMMIT")
    return con


def _check_is_duckdb(path: Path) -> None:
    """UsageError unless ``path`` is missing or starts with DuckDB's header."""
    if path.is_dir():
        raise UsageError(f"--warehouse {path} is a folder, not a DuckDB database file.")
    if not path.exists():
        return
    with open(path, "rb") as f:
        head = f.read(DUCKDB_MAGIC_OFFSET + len(DUCKDB_MAGIC))
    if not head:
        raise UsageError(f"--warehouse {path} is an empty file, not a DuckDB database; "
                         "remove it or name a new file.")
    if head[DUCKDB_MAGIC_OFFSET:] != DUCKDB_MAGIC:
        raise UsageError(f"--warehouse {path} is not a DuckDB database (it lacks DuckDB's "
                         "file header); name a warehouse file or a new file.")


# ---- the transaction around every load ---------------------------------------------------
Body = Callable[[Warehouse, Dataset, State | None, dict], Work]


def run_load(strategy: str, dataset: Dataset, con: duckdb.DuckDBPyConnection, body: Body, *,
             needs_history: bool, target: type[Warehouse] = Warehouse) -> LoadStats:
    """Run ``body`` and the control-row update in one transaction (``commit.transact``);
    roll back on any error.

    With ``needs_history`` (incremental, CDC) the body continues from the warehouse's
    position, so the warehouse must hold this dataset and be at or behind its last run, and
    the watermark recorded never goes back. ``target`` is the table the body loads
    (``sales``, or ``sales_history``: ``target.HistoryWarehouse``) with its position.
    """
    t0 = time.perf_counter()
    last = last_manifest(dataset)
    target = target(con, strategy)

    def step(_: Position | None) -> tuple[int, Work]:
        before = target.state
        work = replace(body(target, dataset, before, last), method=strategy)
        if needs_history and before is not None and before.watermark is not None:
            mark = max(before.watermark, work.watermark or before.watermark)
            work = replace(work, watermark=mark)
        return last["run"], work

    before, _, work = transact(dataset, target, last, step, check=needs_history)
    return LoadStats(strategy, before.last_run if before else -1, last["run"],
                     date.fromisoformat(last["run_date"]), work.rows_read, work.bytes_read,
                     len(work.days), work.changes, time.perf_counter() - t0)
