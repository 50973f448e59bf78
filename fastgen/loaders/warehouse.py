"""The DuckDB warehouse that the reference loaders keep equal to a dataset: opening it, and
the one transaction around every load.

Its tables are described in ``fastgen.loaders.tables``; what a load reads, and how the files
are checked against the manifest first, in ``fastgen.loaders.files``; ``verify_warehouse``
(``fastgen.loaders.verify``) checks the table against the last manifest's ground truth.

Every load runs in one DuckDB transaction that also writes its control row, so it commits
whole or not at all: a load that fails, is interrupted (Ctrl-C) or killed halfway leaves the
previous table and state, and the next load simply starts again from there (DuckDB's
write-ahead log makes the commit atomic on disk). Every strategy leaves the same table (the
snapshot after ``last_run``), so the warehouse's position is the ``last_run`` of its most
recent load, whichever strategy made it: strategies may be switched on one warehouse.

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
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb

from fastgen.dataset import Dataset, DatasetError, UsageError
from fastgen.loaders.files import last_manifest, sales_select
from fastgen.loaders.tables import (
    CREATE_SALES,
    CREATE_STATE,
    STATE_TABLE,
    TABLE,
    TABLE_COLUMNS,
    State,
    fingerprint,
    state,
    strategy_state,
)
from fastgen.loaders.verify import verify_warehouse

# Also importable from here, where they lived before the split.
__all__ = ["STATE_TABLE", "STRATEGIES", "LoadStats", "Work", "affected", "connect",
           "fingerprint", "insert_files", "run_load", "save_state", "strategy_state",
           "verify_warehouse"]

STRATEGIES = ("full", "incremental", "cdc")
# A DuckDB database file starts with its main header: an 8-byte checksum, then these magic
# bytes (DuckDB's MainHeader::MAGIC_BYTES, checked the same way when DuckDB opens a file).
DUCKDB_MAGIC, DUCKDB_MAGIC_OFFSET = b"DUCK", 8


@dataclass(frozen=True)
class LoadStats:
    """What one load did.

    ``rows_changed`` counts the rows DuckDB reports as deleted, inserted or updated in
    ``sales``: a reloaded row counts twice (deleted, then inserted), a MERGE update once.
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

    def extra_info(self) -> dict:
        return {"rows_read": self.rows_read, "bytes_read": self.bytes_read,
                "partitions_touched": self.partitions, "rows_changed": self.rows_changed,
                "from_run": self.from_run, "to_run": self.to_run}


@dataclass(frozen=True)
class Work:
    """What a strategy's body reports back to ``run_load``."""

    rows_read: int
    bytes_read: int
    partitions: int
    rows_changed: int
    watermark: datetime | None


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
Body = Callable[[duckdb.DuckDBPyConnection, Dataset, State | None, dict], Work]


def run_load(strategy: str, dataset: Dataset, con: duckdb.DuckDBPyConnection, body: Body, *,
             needs_history: bool) -> LoadStats:
    """Run ``body`` and the control-row update in one transaction; roll back on any error.

    With ``needs_history`` (incremental, CDC) the body continues from the warehouse's
    position, so the warehouse must hold this dataset and be at or behind its last run.
    """
    t0 = time.perf_counter()
    last = last_manifest(dataset)
    ident = fingerprint(dataset)
    con.execute("BEGIN")
    try:
        before = state(con)
        if needs_history and before is not None:
            if before.dataset != ident:
                raise UsageError(f"the warehouse holds another dataset than {dataset.root}; "
                                 "load it with --strategy full first.")
            if before.last_run > last["run"]:
                raise UsageError(f"the warehouse is at run {before.last_run}, ahead of "
                                 f"{dataset.root} (run {last['run']}); load it with "
                                 "--strategy full first.")
        work = body(con, dataset, before, last)
        watermark = work.watermark
        if before is not None and before.watermark is not None and needs_history:
            watermark = max(before.watermark, watermark) if watermark else before.watermark
        save_state(con, strategy, last, work, watermark, ident,
                   (before.load_number if before else 0) + 1)
        con.execute("COMMIT")
    except BaseException:
        try:
            con.execute("ROLLBACK")
        except duckdb.Error:  # the failure was in COMMIT itself, which ends the transaction
            pass
        raise
    return LoadStats(strategy, before.last_run if before else -1, last["run"],
                     date.fromisoformat(last["run_date"]), work.rows_read, work.bytes_read,
                     work.partitions, work.rows_changed, time.perf_counter() - t0)


def save_state(con: duckdb.DuckDBPyConnection, strategy: str, last: dict, work: Work,
               watermark: datetime | None, ident: str, load_number: int) -> None:
    """Write the strategy's control row (inside the load's transaction)."""
    con.execute(f"DELETE FROM {STATE_TABLE} WHERE strategy = ?", [strategy])
    con.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, "
                "?, ?, ?, ?)",
                [strategy, last["run"], date.fromisoformat(last["run_date"]), last["run"],
                 watermark, ident, load_number, work.rows_read, work.bytes_read,
                 work.partitions, work.rows_changed])


def insert_files(con: duckdb.DuckDBPyConnection, dataset: Dataset, last: dict,
                 rels: list[str]) -> int:
    """Append the rows of these committed sales files (relative to the dataset, whole days)
    to ``sales``, each row under its file's day in ``last``; the files were checked with
    ``files.check_files``. The rows inserted must be the manifest's count for those days."""
    if not rels:
        return 0
    select, params = sales_select(dataset, last, rels)
    inserted = affected(con, f"INSERT INTO {TABLE} ({', '.join(TABLE_COLUMNS)}) {select}",
                        params)
    days = set(params["days"])
    expected = sum(last["partitions"][day]["rows"] for day in days)
    if inserted != expected:  # a file replaced after it was checked
        raise DatasetError(f"the files of {len(days)} day(s) held {inserted} rows, the "
                           f"manifest of run {last['run']} says {expected}; nothing was loaded "
                           "(was a generator committing? load again).")
    return inserted


def affected(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> int:
    """Run a DML statement; the number of rows it changed."""
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0
