"""The DuckDB warehouse that the reference loaders keep equal to a dataset.

Two tables. ``sales`` holds the columns of ``fastgen.schema.SALES_SCHEMA`` plus ``sale_date``,
one row per row of the dataset's current export (soft-deleted rows included, with their flag).
``fastgen_load_state`` holds one row per strategy that has loaded this warehouse: the run it
loaded up to (``last_run``; for CDC also the last applied ``commit_version``), the largest
``updated_at`` loaded (``watermark``), a fingerprint of the dataset, and the stats of that load.

Every load runs in one DuckDB transaction that also writes its control row, so it commits
whole or not at all: a load that fails or is killed halfway leaves the previous table and
state, and the next load simply starts again from there (DuckDB's write-ahead log makes the
commit atomic on disk). Every strategy leaves the same table (the snapshot after ``last_run``),
so the warehouse's position is the ``last_run`` of its most recent load, whichever strategy
made it: strategies may be switched on one warehouse.

Loads read the files the last manifest lists, never a glob; while a crashed commit still owes
a file's rename, they read it under its temporary name, as ``Dataset.scan`` does. Loads are
meant to run between generator runs, as in a daily pipeline: one that overlaps a generator's
call may read a day newer than the run it records, which the next load reloads (incremental)
or rebuilds (full); CDC reads only feeds, which never change once committed.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import polars as pl

from fastgen.dataset import Dataset, DatasetError, UsageError
from fastgen.digest import digest_arrays
from fastgen.schema import FEED_SCHEMA, NOT_DELETED, PARTITION_KEY, SALES_SCHEMA

TABLE = "sales"
STATE_TABLE = "fastgen_load_state"
STRATEGIES = ("full", "incremental", "cdc")
# Rows held in memory at a time by verify_warehouse: a few days at the 1M-rows scale.
VERIFY_BATCH_ROWS = 4_000_000
EPOCH = date(1970, 1, 1)


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
class State:
    """The warehouse's position: its most recent load."""

    strategy: str
    last_run: int
    watermark: datetime | None
    dataset: str
    load_number: int


@dataclass(frozen=True)
class Work:
    """What a strategy's body reports back to ``run_load``."""

    rows_read: int
    bytes_read: int
    partitions: int
    rows_changed: int
    watermark: datetime | None


# ---- schema ---------------------------------------------------------------------------------
def sql_type(dtype: pl.DataType) -> str:
    """The DuckDB type of a column of ``fastgen.schema``."""
    if isinstance(dtype, pl.Decimal):
        return f"DECIMAL({dtype.precision}, {dtype.scale})"
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMP"  # microseconds, as in the files
    return {pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Boolean: "BOOLEAN", pl.Date: "DATE",
            pl.String: "VARCHAR"}[dtype.base_type()]


SALES_COLUMNS_SQL = ", ".join(f"{name} {sql_type(t)}" for name, t in SALES_SCHEMA.items())
TABLE_COLUMNS = (*SALES_SCHEMA, PARTITION_KEY)
CREATE_SALES = f"CREATE TABLE {TABLE} ({SALES_COLUMNS_SQL}, {PARTITION_KEY} DATE)"
CREATE_STATE = f"""CREATE TABLE IF NOT EXISTS {STATE_TABLE} (
    strategy VARCHAR NOT NULL, last_run INTEGER NOT NULL, last_run_date DATE NOT NULL,
    commit_version BIGINT NOT NULL, watermark TIMESTAMP, dataset VARCHAR NOT NULL,
    load_number BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL,
    rows_read BIGINT, bytes_read BIGINT, partitions_touched INTEGER, rows_changed BIGINT)"""


def connect(path: str | os.PathLike, *, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """Open the warehouse file (created if missing, unless ``read_only``) with its tables."""
    path = Path(path)
    if read_only and not path.exists():
        raise UsageError(f"--warehouse {path} does not exist.")
    if not path.parent.is_dir():
        raise UsageError(f"--warehouse {path}: folder {path.parent} does not exist.")
    try:
        con = duckdb.connect(str(path), read_only=read_only)
    except duckdb.IOException as exc:
        raise DatasetError(f"cannot open the warehouse {path} ({str(exc).splitlines()[0]}); "
                           "is another load using it?") from None
    except duckdb.Error as exc:
        raise UsageError(f"--warehouse {path} is not a DuckDB database "
                         f"({str(exc).splitlines()[0]}).") from None
    if not read_only:
        con.execute("BEGIN")
        con.execute(CREATE_SALES.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS", 1))
        con.execute(CREATE_STATE)
        con.execute("COMMIT")
    return con


def fingerprint(dataset: Dataset) -> str:
    """Identity of a dataset's contents: its model and start date (not its folder)."""
    key = json.dumps({"model": dataset.identity["model"], "start": dataset.start.isoformat()},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def state(con: duckdb.DuckDBPyConnection) -> State | None:
    """The warehouse's most recent load, or None for a warehouse never loaded."""
    row = con.execute(f"SELECT strategy, last_run, watermark, dataset, load_number FROM "
                      f"{STATE_TABLE} ORDER BY load_number DESC LIMIT 1").fetchone()
    return State(*row) if row else None


def strategy_state(con: duckdb.DuckDBPyConnection, strategy: str) -> dict | None:
    """The control row of one strategy, as a dict, or None."""
    cur = con.execute(f"SELECT * FROM {STATE_TABLE} WHERE strategy = ?", [strategy])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


# ---- reading the dataset ----------------------------------------------------------------------
def last_manifest(dataset: Dataset) -> dict:
    """The last committed manifest: what every load brings the warehouse to."""
    last = dataset.manifest()
    if last is None:
        raise UsageError(f"{dataset.root} has no committed run yet; nothing to load.")
    return last


def committed_paths(dataset: Dataset, last: dict, rels: list[str]) -> list[str]:
    """Paths of committed files, under their temporary names while the commit still owes
    their rename (a crash came between), as ``Dataset.scan`` reads them. A rename that lands
    while DuckDB opens the file fails the load, which rolls back; the next load succeeds."""
    owed = {final: tmp for tmp, final in last.get("renames", [])}
    out = []
    for rel in rels:
        tmp = owed.get(rel)
        out.append(str(dataset.root / (tmp if tmp and (dataset.root / tmp).exists() else rel)))
    return out


def file_bytes(dataset: Dataset, manifest: dict, rel: str) -> int:
    info = manifest.get("files", {}).get(rel)
    return info["bytes"] if info else (dataset.root / rel).stat().st_size


def sales_source(dataset: Dataset) -> str:
    """A table function over a list of sales files (parameter ``?``), with ``sale_date``."""
    hive = f"hive_partitioning = true, hive_types = {{'{PARTITION_KEY}': 'DATE'}}"
    if dataset.format == "parquet":
        return f"read_parquet(?, {hive})"
    columns = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in SALES_SCHEMA.items())
    return f"read_csv(?, header = true, columns = {{{columns}}}, {hive})"


def feed_select(dataset: Dataset) -> str:
    """SELECT of one feed file (parameter ``?``) as op, sale_date and the after-image columns."""
    if dataset.format == "parquet":
        images = ", ".join(f"after.{c} AS {c}" for c in SALES_SCHEMA if c != "sale_id")
        return (f"SELECT op, sale_id, {PARTITION_KEY}, {images} "
                "FROM read_parquet(?, hive_partitioning = false)")
    flat = {n: t for n, t in FEED_SCHEMA.items() if not isinstance(t, pl.Struct)}
    for side in ("before", "after"):
        flat |= {f"{side}.{c}": t for c, t in SALES_SCHEMA.items()}
    columns = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in flat.items())
    images = ", ".join(f'"after.{c}" AS {c}' for c in SALES_SCHEMA if c != "sale_id")
    return (f"SELECT op, sale_id, {PARTITION_KEY}, {images} FROM read_csv(?, header = true, "
            f"columns = {{{columns}}}, hive_partitioning = false)")


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
    """Append the rows of these committed sales files (relative to the dataset) to ``sales``."""
    if not rels:
        return 0
    columns = ", ".join(TABLE_COLUMNS)
    return affected(con, f"INSERT INTO {TABLE} ({columns}) SELECT {columns} "
                         f"FROM {sales_source(dataset)}", [committed_paths(dataset, last, rels)])


def affected(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> int:
    """Run a DML statement; the number of rows it changed."""
    row = con.execute(sql, params or []).fetchone()
    return int(row[0]) if row else 0


# ---- verification ---------------------------------------------------------------------------
def _encoded(name: str, dtype: pl.DataType) -> str:
    """SQL for a column in the kernels' int64 encoding (``fastgen.digest.digest_arrays``)."""
    if isinstance(dtype, pl.Decimal):
        return f"({name} * {10 ** dtype.scale})::BIGINT"
    if isinstance(dtype, pl.Datetime):
        return f"coalesce(epoch_us({name}), $null)" if name == "deleted_at" else f"epoch_us({name})"
    return f"{name}::BIGINT"


_DIGEST_SELECT = ", ".join(f"{_encoded(n, t)} AS {n}" for n, t in SALES_SCHEMA.items())


def verify_warehouse(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Each day whose rows in ``sales`` differ from the last manifest; empty when all match.

    Compares row count, live rows, sum(amount) and the order-independent row hash per day.
    DuckDB encodes the columns as the kernels do (microseconds, cents, NOT_DELETED for a null
    deleted_at) and ``fastgen.digest.digest_arrays`` digests them, as the generator digested
    the manifest's, so any difference in any column of any row shows.
    """
    last = dataset.manifest()
    truth = last["partitions"] if last else {}
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if TABLE not in tables:
        return [f"the warehouse has no {TABLE} table; load it first"]
    try:
        return _compare(dataset, con, last, truth, tables)
    except duckdb.Error as exc:  # a table of another shape, not made by these loaders
        return [f"the warehouse's tables cannot be read ({str(exc).splitlines()[0]})"]


def _compare(dataset: Dataset, con: duckdb.DuckDBPyConnection, last: dict | None, truth: dict,
             tables: set[str]) -> list[str]:
    problems = []
    where = state(con) if STATE_TABLE in tables else None
    if last and (where is None or where.last_run != last["run"]):
        at = "has never been loaded" if where is None else \
            f"is at run {where.last_run} ({dataset.sim.date_of(where.last_run)})"
        problems.append(f"the warehouse {at}; the dataset's last run is {last['run']} "
                        f"({last['run_date']})")
    counts = dict(con.execute(f"SELECT {PARTITION_KEY}, count(*) FROM {TABLE} "
                              f"GROUP BY ALL ORDER BY 1").fetchall())
    days = sorted(set(counts) | {date.fromisoformat(d) for d in truth})
    for batch in _batches([d for d in days if d in counts], counts):
        for day, actual in _digests(con, batch[0], batch[-1]).items():
            expected = truth.get(day.isoformat())
            if expected is None:
                problems.append(f"partition {day}: {counts[day]} rows in the warehouse, "
                                "none in the dataset")
                continue
            for key in ("rows", "live_rows", "amount", "row_hash"):
                if actual[key] != expected[key]:
                    problems.append(f"partition {day}: {key} is {actual[key]} in the "
                                    f"warehouse, the manifest says {expected[key]}")
    for day in days:
        if day not in counts and truth[day.isoformat()]["rows"]:
            problems.append(f"partition {day}: missing from the warehouse "
                            f"({truth[day.isoformat()]['rows']} rows in the dataset)")
    return sorted(problems, key=lambda p: (not p.startswith("the warehouse"), p))


def _digests(con: duckdb.DuckDBPyConnection, first: date, last: date) -> dict[date, dict]:
    """Digest of each day from first to last, from one query of kernel-encoded columns."""
    cols = con.execute(f"SELECT ({PARTITION_KEY} - DATE '1970-01-01')::BIGINT AS day_, "
                       f"{_DIGEST_SELECT} FROM {TABLE} WHERE {PARTITION_KEY} BETWEEN $first "
                       "AND $last", {"first": first, "last": last, "null": NOT_DELETED}
                       ).fetchnumpy()
    day = np.asarray(cols.pop("day_"))
    order = np.argsort(day, kind="stable")
    values, starts = np.unique(day[order], return_index=True)
    ends = np.append(starts[1:], day.size)
    arrays = {name: np.asarray(col)[order] for name, col in cols.items()}
    return {EPOCH + timedelta(days=int(v)):
            digest_arrays([{n: a[lo:hi] for n, a in arrays.items()}]).to_json()
            for v, lo, hi in zip(values, starts, ends)}


def _batches(days: list[date], counts: dict[date, int]) -> list[list[date]]:
    """Consecutive runs of days of at most VERIFY_BATCH_ROWS rows (one day may exceed it)."""
    out: list[list[date]] = []
    rows = 0
    for day in days:
        if out and rows + counts[day] <= VERIFY_BATCH_ROWS:
            out[-1].append(day)
            rows += counts[day]
        else:
            out.append([day])
            rows = counts[day]
    return out
