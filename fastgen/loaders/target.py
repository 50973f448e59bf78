"""The warehouse as a target of the exactly-once core (``fastgen.sinks.base.Target``).

The core (``fastgen.sinks.commit``) decides what a transaction does and checks it; this is
DuckDB's way of doing it: a sales file is read by DuckDB itself (``files.sales_select``), a
piece of a feed is registered as a view and becomes three set-based statements (INSERT,
UPDATE ... FROM, DELETE ... USING), whose row counts the core checks against the feed.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import duckdb
import polars as pl

from fastgen.dataset import Dataset
from fastgen.loaders.files import sales_select
from fastgen.loaders.tables import (CREATE_HISTORY, HISTORY_STRATEGY, HISTORY_TABLE,
                                    STATE_TABLE, TABLE, TABLE_COLUMNS, State, state)
from fastgen.schema import CHANNEL, NOT_DELETED, PARTITION_KEY, SALES_SCHEMA
from fastgen.sinks.base import Target, channel_code
from fastgen.sinks.commit import Work
from fastgen.sinks.position import Position

PIECE = "fastgen_piece"  # a feed or sales piece, registered as a view while it is applied
_SALES = ", ".join(TABLE_COLUMNS)  # the history's version columns, before its own


def _encoded(name: str, dtype: pl.DataType) -> str:
    """SQL for a column in the kernels' int64 encoding (``fastgen.digest.digest_arrays``)."""
    if isinstance(dtype, pl.Decimal):
        return f"({name} * {10 ** dtype.scale})::BIGINT"
    if isinstance(dtype, pl.Datetime):
        us = f"epoch_us({name})"
        return f"coalesce({us}, {NOT_DELETED})" if name == "deleted_at" else us
    return f"{name}::BIGINT"


def encoded_sql(channel: bool) -> str:
    """The rows of days ? .. ? of ``sales`` in the kernels' encoding, with the channel's code
    (fastgen.schema.channel_codes) when the table has the column."""
    named = f", {channel_code()} AS {CHANNEL}" if channel else ""
    return (f"SELECT ({PARTITION_KEY} - DATE '1970-01-01')::BIGINT AS day, "
            + ", ".join(f"{_encoded(n, t)} AS {n}" for n, t in SALES_SCHEMA.items())
            + f"{named} FROM {TABLE} WHERE {PARTITION_KEY} BETWEEN ? AND ?")


class Warehouse(Target):
    """The warehouse, seen by the core as one strategy's target: its position is its most
    recent load (``tables.state``, any strategy), its control row the strategy's own. Its
    tables are made by ``warehouse.connect`` (so ``expected`` and ``create`` stay empty); a
    table of another shape fails in the load's first statement."""

    state_table = STATE_TABLE
    remedy = "load it with --strategy full first"
    channel_type = "VARCHAR"

    def __init__(self, con: duckdb.DuckDBPyConnection, strategy: str):
        super().__init__(None)
        self.con, self.strategy = con, strategy
        self.state: State | None = None  # read with the position, under the transaction

    @property
    def name(self) -> str:
        return "the warehouse"

    def close(self, committed: bool) -> None:
        """The connection is the caller's (``connect``)."""

    def position(self) -> Position | None:
        self.state = state(self.con)
        return self.state.position if self.state else None

    def record(self, position: Position, work: Work) -> None:
        number = self.con.execute(f"SELECT coalesce(max(load_number), 0) + 1 "
                                  f"FROM {STATE_TABLE}").fetchone()[0]
        save_state(self.con, self.strategy, position, work, number)

    def row_count(self) -> int:
        return self.con.execute(f"SELECT count(*) FROM {TABLE}").fetchall()[0][0]

    def columns(self, table: str) -> list[tuple[str, str]]:
        return self.con.execute("SELECT column_name, data_type FROM information_schema.columns "
                                "WHERE table_name = ? AND table_schema = current_schema() "
                                "ORDER BY ordinal_position", [table]).fetchall()

    @property
    def cols(self) -> str:
        """The table's columns, as a SELECT or INSERT list."""
        return ", ".join(self.table_columns)

    def insert_files(self, dataset: Dataset, last: dict, rels: list[str]) -> int:
        """DuckDB reads the files itself, in parallel, each row under its file's day."""
        select, params = sales_select(dataset, last, rels, channel=self.channel)
        return affected(self.con, f"INSERT INTO {TABLE} ({self.cols}) {select}", params)

    def insert_rows(self, piece: pl.DataFrame) -> int:
        with self._registered(piece):
            return affected(self.con, f"INSERT INTO {TABLE} ({self.cols}) "
                                      f"SELECT {self.cols} FROM {PIECE}")

    def apply_changes(self, piece: pl.DataFrame) -> tuple[int, int, int]:
        assign = ", ".join(f"{c} = p.{c}" for c in self.table_columns if c != "sale_id")
        with self._registered(piece):
            return (affected(self.con, f"INSERT INTO {TABLE} ({self.cols}) SELECT {self.cols} "
                                       f"FROM {PIECE} WHERE op = 'insert'"),
                    affected(self.con, f"UPDATE {TABLE} AS t SET {assign} FROM {PIECE} AS p "
                                       "WHERE p.op = 'update' AND t.sale_id = p.sale_id"),
                    affected(self.con, f"DELETE FROM {TABLE} AS t USING {PIECE} AS p "
                                       "WHERE p.op = 'delete' AND t.sale_id = p.sale_id"))

    @contextmanager
    def _registered(self, piece: pl.DataFrame) -> Iterator[None]:
        self.con.register(PIECE, piece.to_arrow())
        try:
            yield
        finally:
            self.con.unregister(PIECE)

    def day_counts(self) -> dict[date, int]:
        return dict(self.con.execute(f"SELECT {PARTITION_KEY}, count(*) FROM {TABLE} "
                                     "GROUP BY ALL").fetchall())

    def encoded(self, first: date, last: date) -> pl.DataFrame:
        channel = any(name == CHANNEL for name, _ in self.columns(TABLE))
        return pl.DataFrame(self.con.execute(encoded_sql(channel), [first, last]).fetchnumpy())


class HistoryWarehouse(Warehouse):
    """The warehouse's ``sales_history`` as the core's target (``scd2``): its position is its
    own control row; a feed piece closes the current version of each sale it updates or
    deletes and opens the new version of each it inserts or updates. A hard delete closes the
    version at its event's ``commit_ts`` (a held-back event's run, not the one delivering it)."""

    remedy = f"drop its {HISTORY_TABLE} table and its {HISTORY_STRATEGY} control row"
    create = [CREATE_HISTORY]
    table = HISTORY_TABLE
    commit_ts = True

    @property
    def name(self) -> str:
        return f"the warehouse's {HISTORY_TABLE}"

    def position(self) -> Position | None:
        self.state = state(self.con, HISTORY_STRATEGY)
        return self.state.position if self.state else None

    def row_count(self) -> int:
        return self.con.execute(f"SELECT count(*) FROM {HISTORY_TABLE}").fetchall()[0][0]

    def apply_changes(self, piece: pl.DataFrame) -> tuple[int, int, int]:
        """(sales inserted, versions closed by an update, versions closed by a delete); the
        versions an update opens are its rows, so the core's check of the closes covers it."""
        channel = f", {CHANNEL}" if self.channel else ""
        with self._registered(piece):
            closed = [affected(self.con, f"UPDATE {HISTORY_TABLE} AS h SET is_current = false, "
                                         f"dbt_valid_to = {to} FROM {PIECE} AS p WHERE "
                                         f"p.op = '{op}' AND h.sale_id = p.sale_id "
                                         "AND h.is_current")
                      for op, to in (("update", "p.updated_at"), ("delete", "p.commit_ts"))]
            opened = affected(self.con, f"INSERT INTO {HISTORY_TABLE} SELECT md5(sale_id::VARCHAR "
                                        f"|| '|' || updated_at::VARCHAR), {_SALES}, updated_at, "
                                        f"updated_at, NULL, true{channel} FROM {PIECE} "
                                        "WHERE op IN ('insert', 'update') ORDER BY sale_id")
        return opened - int((piece["op"] == "update").sum()), closed[0], closed[1]


def save_state(con: duckdb.DuckDBPyConnection, strategy: str, position: Position, work: Work,
               load_number: int) -> None:
    """Write the strategy's control row (inside the load's transaction)."""
    con.execute(f"DELETE FROM {STATE_TABLE} WHERE strategy = ?", [strategy])
    con.execute(f"INSERT INTO {STATE_TABLE} VALUES (?, ?, ?, ?, ?, ?, ?, now()::TIMESTAMP, "
                "?, ?, ?, ?, ?)",
                [strategy, position.last_run, position.last_run_date, position.last_run,
                 work.watermark, position.dataset, load_number, work.rows_read,
                 work.bytes_read, len(work.days), work.changes, work.fed])


def affected(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> int:
    """Run a DML statement; the number of rows it changed. (Fetched to the end: DuckDB
    refuses to register a view while a result is unfinished.)"""
    rows = con.execute(sql, params or []).fetchall()
    return int(rows[0][0]) if rows else 0
