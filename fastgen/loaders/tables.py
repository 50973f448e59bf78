"""The warehouse's two tables, their DuckDB types, and the position a load records.

``sales`` holds the columns of ``fastgen.schema.SALES_SCHEMA`` plus ``sale_date``, one row
per row of the dataset's current export (soft-deleted rows included, with their flag).
``fastgen_load_state`` holds one row per strategy that has loaded this warehouse: the run it
loaded up to (``last_run``; for CDC also the last applied ``commit_version``), the largest
``updated_at`` loaded (``watermark``), a fingerprint of the dataset, and the stats of that load.

``sales_history`` (made by the first ``scd2`` load) holds one row per version of each sale,
with dbt snapshot's column names. Its position is its own control row (strategy ``scd2``),
never the ``sales`` table's: the two tables may stand at different runs, and a ``sales``
strategy's position is the most recent load of the others (``state``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import polars as pl

from fastgen.schema import PARTITION_KEY, SALES_SCHEMA
from fastgen.sinks.position import Position

TABLE = "sales"
STATE_TABLE = "fastgen_load_state"
HISTORY_TABLE = "sales_history"
HISTORY_STRATEGY = "scd2"  # the one strategy that loads HISTORY_TABLE, not TABLE


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
    rows_read BIGINT, bytes_read BIGINT, partitions_touched INTEGER, rows_changed BIGINT,
    fed BOOLEAN)"""
# A warehouse made before ``fed`` existed gets it (null: not applied from a feed).
ADD_FED = f"ALTER TABLE {STATE_TABLE} ADD COLUMN IF NOT EXISTS fed BOOLEAN"
# dbt snapshot's columns (dbt_scd_id, dbt_updated_at, dbt_valid_from, dbt_valid_to) around the
# version's sales columns; is_current = (dbt_valid_to IS NULL), kept for plain SQL users.
CREATE_HISTORY = (f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (dbt_scd_id VARCHAR, "
                  f"{SALES_COLUMNS_SQL}, {PARTITION_KEY} DATE, dbt_updated_at TIMESTAMP, "
                  "dbt_valid_from TIMESTAMP, dbt_valid_to TIMESTAMP, is_current BOOLEAN)")


@dataclass(frozen=True)
class State:
    """The warehouse's position: its most recent load."""

    strategy: str
    last_run: int
    last_run_date: date
    watermark: datetime | None
    dataset: str
    load_number: int
    fed: bool = False  # the last run was applied from its feed (``Position.fed``)

    @property
    def position(self) -> Position:
        return Position(self.dataset, self.last_run, self.last_run_date, self.fed)


def state(con: duckdb.DuckDBPyConnection, strategy: str | None = None) -> State | None:
    """The position of ``sales`` (the most recent load of a strategy that keeps it), or with
    ``strategy`` that strategy's own; None for a table never loaded."""
    where, params = ("= ?", [strategy]) if strategy else ("<> ?", [HISTORY_STRATEGY])
    # A warehouse last loaded by a fastgen before ``fed`` existed, opened read-only (verify),
    # lacks the column: none of its loads was fed.
    fed = "coalesce(fed, false)" if con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE table_name = ? AND column_name = 'fed' "
        "AND schema_name = current_schema() AND database_name = current_database()",
        [STATE_TABLE]).fetchone()[0] else "false"
    rows = con.execute(f"SELECT strategy, last_run, last_run_date, watermark, dataset, "
                       f"load_number, {fed} FROM {STATE_TABLE} "
                       f"WHERE strategy {where} ORDER BY load_number DESC LIMIT 1",
                       params).fetchall()
    return State(*rows[0]) if rows else None


def strategy_state(con: duckdb.DuckDBPyConnection, strategy: str) -> dict | None:
    """The control row of one strategy, as a dict, or None."""
    cur = con.execute(f"SELECT * FROM {STATE_TABLE} WHERE strategy = ?", [strategy])
    row = cur.fetchone()
    return dict(zip([d[0] for d in cur.description], row)) if row else None


def is_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` is DuckDB's report of a query stopped by Ctrl-C.

    DuckDB's Python client watches for SIGINT while a query runs; it then stops the query,
    swallows the KeyboardInterrupt and raises ``RuntimeError("Query interrupted")`` (a plain
    RuntimeError, not a ``duckdb.Error``); ``con.interrupt()`` raises ``InterruptException``.
    """
    return isinstance(exc, duckdb.InterruptException) or (
        type(exc) is RuntimeError and str(exc).strip().lower() == "query interrupted")
