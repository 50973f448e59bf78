"""What every target of the exactly-once core (``fastgen.sinks.commit``) is: a database with
transactions, a ``sales`` table, a control row and row-level DML (``Target``), and the rules
its SQL follows (``quoted`` identifiers, values only as parameters or COPY data).

Dialects: ``sqlite``, ``postgres``, and the loaders' DuckDB warehouse
(``fastgen.loaders.warehouse.Warehouse``).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from typing import TYPE_CHECKING

import polars as pl

from fastgen.dataset import Dataset
from fastgen.errors import UsageError
from fastgen.sinks.position import STATE_COLUMNS, STATE_TABLE, Position
from fastgen.schema import CHANNEL, CHANNELS, NO_CHANNEL
from fastgen.sinks.source import TABLE_COLUMNS, sales_pieces
from fastgen.sinks.url import DatabaseUrl

if TYPE_CHECKING:
    from fastgen.sinks.commit import Work

TABLE = "sales"
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,62}")


def quoted(name: str) -> str:
    """``name`` as a quoted SQL identifier, once it is known to be a plain lower-case name
    (so that it means the same in SQLite and PostgreSQL and cannot carry SQL)."""
    if not _IDENTIFIER.fullmatch(name):
        raise UsageError(f"{name!r} is not a valid table or column name (a-z, 0-9, _).")
    return f'"{name}"'


def shape_difference(found: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> str:
    """The first way a table's (column, type) list differs from fastgen's, in words."""
    for (name, kind), (w_name, w_kind) in zip(found, wanted):
        if name != w_name:
            return f"column {name!r} where fastgen has {w_name!r}"
        if kind != w_kind:
            return f"{name} is {kind}, fastgen's is {w_kind}"
    return f"{len(found)} columns, fastgen's has {len(wanted)}"


def channel_code() -> str:
    """SQL for the channel's code (``fastgen.schema.channel_codes``) of a row of ``sales``."""
    codes = " ".join(f"WHEN '{name}' THEN {code}" for code, name in enumerate(CHANNELS))
    return f"CASE {quoted(CHANNEL)} {codes} ELSE {NO_CHANNEL} END"


INDEXED = ("updated_at", "sold_at")  # a poller's watermark, and the event time


def create_statements(columns: dict[str, str], state_types: dict[str, str]) -> list[str]:
    """DDL, IF NOT EXISTS, of ``sales`` (``columns``: each column's type in the dialect, with
    its key), its indexes and the control table (``state_types``: the dialect's type for each
    portable type of ``position.STATE_COLUMNS``)."""
    table = quoted(TABLE)
    return [f"CREATE TABLE IF NOT EXISTS {table} ("
            + ", ".join(f"{quoted(c)} {t}" for c, t in columns.items()) + ")",
            *(f"CREATE INDEX IF NOT EXISTS {quoted(f'{TABLE}_{c}')} ON {table} ({quoted(c)})"
              for c in INDEXED),
            f"CREATE TABLE IF NOT EXISTS {quoted(STATE_TABLE)} ("
            + ", ".join(f"{quoted(c)} {state_types[t]}{'' if null else ' NOT NULL'}"
                        for c, t, null in STATE_COLUMNS)
            + f", PRIMARY KEY ({quoted('id')}))"]


class Target(ABC):
    """A database a sink writes: its connection, transactions, DDL and DML.

    Subclasses give the dialect; ``apply`` gives the order. All SQL is built from validated,
    quoted identifiers (``quoted``); every value goes as a parameter or as COPY data.
    """

    state_table = STATE_TABLE  # where its control row lives
    begin = "BEGIN"  # opens a write transaction (``transaction``)
    # What a user can do about a target of another dataset, ahead of it, or not made by fastgen.
    remedy = f"use another database, or drop its tables {TABLE} and {STATE_TABLE}"

    def __init__(self, url: DatabaseUrl | None):
        self.url = url

    @property
    def name(self) -> str:
        """How messages name the target (a URL without its password)."""
        return str(self.url)

    # ---- connection and transactions ----------------------------------------------------
    @abstractmethod
    def close(self, committed: bool) -> None:
        """Close the connection; ``committed`` says whether anything was ever committed."""

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN with the target's write lock held; COMMIT, or ROLLBACK on any exception.

        This one serves a DB-API connection ``self.con`` whose ``begin`` statement takes the
        write lock; a driver with its own transaction blocks overrides it."""
        self.con.execute(self.begin)
        try:
            yield
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        self.con.execute("COMMIT")

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A consistent read of the tables (a transaction that changes nothing)."""
        with self.transaction():
            yield

    # ---- tables --------------------------------------------------------------------------
    # Each table's (column, type) list as ``columns`` reports it, and the statements that
    # create the tables and indexes where missing: the dialect's.
    expected: dict[str, list[tuple[str, str]]] = {}
    create: list[str] = []
    shape_remedy = "use another database"

    def columns(self, table: str) -> list[tuple[str, str]]:
        """A table's (column, type) list, empty when it does not exist."""
        raise NotImplementedError

    def check_shape(self) -> None:
        """UsageError if ``sales`` or the control table exists with another shape (``sales``
        may end with the column channel: ``evolve``)."""
        for table, wanted in self.expected.items():
            found = self.columns(table)
            if table == TABLE and found[-1:] == [(CHANNEL, self.channel_type)]:
                found = found[:-1]
            if found and found != wanted:
                raise UsageError(f"the {table} table of {self.name} has another shape than "
                                 f"fastgen's ({shape_difference(found, wanted)}); "
                                 f"{self.shape_remedy}.")

    def prepare(self) -> None:
        """Create ``sales`` and the control table where missing; UsageError for a table of
        another shape. Inside a transaction."""
        self.check_shape()
        for statement in self.create:
            self.con.execute(statement)

    # Schema evolution: whether ``table`` has the column channel, and its type in the dialect.
    table = TABLE
    channel = False
    channel_type = "TEXT"
    commit_ts = False  # whether feed pieces end with each event's commit_ts (feed_pieces)

    def evolve(self, wanted: bool) -> None:
        """Give ``sales`` the column channel, last, once the dataset's source has it (stress
        mode ``schema_change_run``), as a loader must when its source grows a column; inside
        the transaction. A table that has it keeps it."""
        have = any(name == CHANNEL for name, _ in self.columns(self.table))
        if wanted and not have:
            self.con.execute(f"ALTER TABLE {quoted(self.table)} ADD COLUMN {quoted(CHANNEL)} "
                             f"{self.channel_type}")
        self.channel = wanted or have

    @property
    def table_columns(self) -> tuple[str, ...]:
        """The columns of ``sales`` (``source.TABLE_COLUMNS``, and channel once it has it)."""
        return (*TABLE_COLUMNS, *((CHANNEL,) if self.channel else ()))

    @contextmanager
    def indexes_after(self) -> Iterator[None]:
        """Around the bulk path into an empty ``sales``: its secondary indexes are dropped,
        then built once the rows are in (one sort each instead of an index insert per row),
        in the same transaction."""
        indexes = [s for s in self.create if s.startswith("CREATE INDEX")]
        for column in INDEXED:
            self.con.execute(f"DROP INDEX IF EXISTS {quoted(f'{TABLE}_{column}')}")
        yield
        for statement in indexes:
            self.con.execute(statement)

    def has_tables(self) -> bool:
        """Whether both tables exist (a target that was never applied to may lack them)."""
        return all(self.columns(t) for t in self.expected)

    @abstractmethod
    def position(self) -> Position | None:
        """The control row, or None."""

    @abstractmethod
    def record(self, position: Position, work: Work) -> None:
        """Write the control row."""

    @abstractmethod
    def row_count(self) -> int:
        """Rows in ``sales``."""

    # ---- data ---------------------------------------------------------------------------
    def insert_files(self, dataset: Dataset, last: dict, rels: list[str]) -> int:
        """Insert the rows of these committed sales files (checked already); rows inserted.
        By default in pieces through ``insert_rows``; a database that reads Parquet itself
        may do better."""
        return sum(self.insert_rows(piece)
                   for piece in sales_pieces(dataset, last, rels, channel=self.channel))

    @abstractmethod
    def insert_rows(self, piece: pl.DataFrame) -> int:
        """Insert rows (columns ``source.TABLE_COLUMNS``) with the bulk path; rows inserted."""

    @abstractmethod
    def apply_changes(self, piece: pl.DataFrame) -> tuple[int, int, int]:
        """Apply feed rows (``source.FEED_COLUMNS``): rows (inserted, updated, deleted)."""

    @abstractmethod
    def day_counts(self) -> dict[date, int]:
        """Rows of ``sales`` per sale_date."""

    @abstractmethod
    def encoded(self, first: date, last: date) -> pl.DataFrame:
        """The rows of days first..last as Int64 columns ``day`` (days since 1970-01-01) and
        ``fastgen.schema.SALES_COLUMNS`` in the kernels' encoding (us, cents, 0/1,
        NOT_DELETED for a null deleted_at), for ``fastgen.digest.digest_arrays``."""
