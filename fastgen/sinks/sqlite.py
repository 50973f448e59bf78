"""SQLite target (Python's sqlite3): the embedded default sink.

The file is in WAL mode (readers, such as a poller of ``updated_at``, never block the sink
and see whole runs). Each transaction is ``BEGIN IMMEDIATE``, which takes SQLite's write lock
at once: a second sink waits (``busy_timeout``) instead of failing halfway.

Types: SQLite stores what it is given, so fastgen gives it readable, sortable values under
the usual declared types: timestamps as ISO text with six fraction digits (``YYYY-MM-DD
HH:MM:SS.ffffff``, what Python's sqlite3 converters read, sorted by the ``updated_at``
index), dates as ``YYYY-MM-DD``, money as REAL (DECIMAL(p,s) declares NUMERIC affinity; a
double holds every cent of decimal(12,2) exactly up to 2**53 cents, and verify rounds), the
flag as 0/1. Rows go through ``executemany`` of one prepared statement per kind of change.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import polars as pl

from fastgen.errors import DatasetError, UsageError
from fastgen.schema import CHANNEL, NOT_DELETED, PARTITION_KEY, SALES_COLUMNS
from fastgen.sinks.base import TABLE, Target, channel_code, create_statements, quoted
from fastgen.sinks.commit import Work
from fastgen.sinks.position import STATE_COLUMNS, STATE_ROW_ID, STATE_TABLE, Position
from fastgen.sinks.source import sql_types
from fastgen.sinks.url import DatabaseUrl

TYPES = sql_types({pl.Int64: "BIGINT", pl.Int32: "INTEGER", pl.Boolean: "BOOLEAN",
                   pl.Date: "DATE", pl.Datetime: "TIMESTAMP", pl.Decimal: "DECIMAL({p},{s})"})
TIME_TEXT = "%Y-%m-%d %H:%M:%S%.6f"
BUSY_MS = 60_000  # how long a sink waits for another one's transaction
CACHE_KIB = 256 * 1024  # SQLite's page cache for this connection (its default is 2 MB)
_T = quoted(TABLE)
DELETE = f"DELETE FROM {_T} WHERE {quoted('sale_id')} = ?"
# sale_id INTEGER PRIMARY KEY: the rowid itself, so a change finds its row in one B-tree.
CREATE = create_statements(
    {c: "INTEGER PRIMARY KEY" if c == "sale_id" else t for c, t in TYPES.items()},
    {t: t for _, t, _ in STATE_COLUMNS})
EXPECTED = {TABLE: [(c, "INTEGER" if c == "sale_id" else t) for c, t in TYPES.items()],
            STATE_TABLE: [(c, t) for c, t, _ in STATE_COLUMNS]}


class SqliteTarget(Target):
    begin = "BEGIN IMMEDIATE"  # takes SQLite's write lock at once
    expected, create = EXPECTED, CREATE

    def __init__(self, url: DatabaseUrl):
        super().__init__(url)
        path = url.path
        if path.is_dir():
            raise UsageError(f"{url} is a folder, not a database file.")
        if not path.parent.is_dir():
            raise UsageError(f"{url}: folder {path.parent} does not exist.")
        self._created = not path.exists()
        try:
            self.con = sqlite3.connect(path, isolation_level=None, timeout=BUSY_MS / 1000)
            self.con.execute(f"PRAGMA busy_timeout = {BUSY_MS}")
            if self.con.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                raise UsageError(f"{url} cannot be put in WAL mode.")
            self.con.execute("PRAGMA synchronous = NORMAL")  # durable at each WAL checkpoint
            # Index pages of a large first load stay in memory: about 20% faster at 1M rows.
            self.con.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"{url} is not a SQLite database ({exc}).") from None

    def close(self, committed: bool) -> None:
        self.con.close()
        if self._created and not committed:  # a file this sink made and never filled
            for suffix in ("", "-wal", "-shm"):
                self.url.path.with_name(self.url.path.name + suffix).unlink(missing_ok=True)

    @contextmanager
    def reading(self) -> Iterator[None]:
        self.con.execute("BEGIN")  # a snapshot: no write lock, a sink may go on meanwhile
        try:
            yield
        finally:
            self.con.execute("ROLLBACK")

    # ---- tables --------------------------------------------------------------------------
    def columns(self, table: str) -> list[tuple[str, str]]:
        rows = self.con.execute("SELECT name, type FROM pragma_table_info(?)", [table])
        return [(name, kind.upper()) for name, kind in rows]

    def position(self) -> Position | None:
        row = self.con.execute(f"SELECT dataset, last_run, last_run_date, method FROM "
                               f"{quoted(STATE_TABLE)} WHERE id = ?", [STATE_ROW_ID]).fetchone()
        return Position(row[0], row[1], date.fromisoformat(row[2]), row[3] == "feed") \
            if row else None

    def record(self, position: Position, work: Work) -> None:
        self.con.execute(f"INSERT OR REPLACE INTO {quoted(STATE_TABLE)} VALUES "
                         "(?, ?, ?, ?, strftime('%Y-%m-%d %H:%M:%f', 'now'), ?, ?)",
                         [STATE_ROW_ID, position.dataset, position.last_run,
                          position.last_run_date.isoformat(), work.method, work.changes])

    def row_count(self) -> int:
        return self.con.execute(f"SELECT count(*) FROM {_T}").fetchone()[0]

    # ---- data ---------------------------------------------------------------------------
    def _insert(self) -> str:
        columns = self.table_columns
        return (f"INSERT INTO {_T} ({', '.join(quoted(c) for c in columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})")

    def insert_rows(self, piece: pl.DataFrame) -> int:
        return self._many(self._insert(), _values(piece, self.table_columns))

    def apply_changes(self, piece: pl.DataFrame) -> tuple[int, int, int]:
        ops = piece["op"]
        columns = self.table_columns
        inserted = self._many(self._insert(), _values(piece.filter(ops == "insert"), columns))
        setters = [c for c in columns if c != "sale_id"]
        update = (f"UPDATE {_T} SET {', '.join(f'{quoted(c)} = ?' for c in setters)} "
                  f"WHERE {quoted('sale_id')} = ?")
        updated = self._many(update, _values(piece.filter(ops == "update"),
                                             [*setters, "sale_id"]))
        deleted = self._many(DELETE, _values(piece.filter(ops == "delete"), ["sale_id"]))
        return inserted, updated, deleted

    def _many(self, sql: str, rows) -> int:
        if rows is None:
            return 0
        return self.con.executemany(sql, rows).rowcount

    def day_counts(self) -> dict[date, int]:
        rows = self.con.execute(f"SELECT {quoted(PARTITION_KEY)}, count(*) FROM {_T} GROUP BY 1")
        return {date.fromisoformat(d): n for d, n in rows}

    def encoded(self, first: date, last: date) -> pl.DataFrame:
        cols = ", ".join(quoted(c) for c in (PARTITION_KEY, *SALES_COLUMNS))
        channel = any(name == CHANNEL for name, _ in self.columns(TABLE))
        if channel:  # a table that has the column a schema change added
            cols += f", {channel_code()}"
        cur = self.con.execute(f"SELECT {cols} FROM {_T} WHERE {quoted(PARTITION_KEY)} "
                               "BETWEEN ? AND ?", [first.isoformat(), last.isoformat()])
        stamps = [c for c, t in TYPES.items() if t == "TIMESTAMP"]
        money = [c for c, t in TYPES.items() if t.startswith("DECIMAL")]
        schema = {"day": pl.String, **{c: pl.String if c in stamps else pl.Float64
                                       if c in money else pl.Int64 for c in SALES_COLUMNS},
                  **({CHANNEL: pl.Int8} if channel else {})}
        frame = pl.DataFrame(cur.fetchall(), schema=schema, orient="row")
        return frame.select(*([CHANNEL] if channel else []),
            (pl.col("day").str.to_date("%Y-%m-%d").cast(pl.Int64)).alias("day"),
            *[(pl.col(c).str.to_datetime(TIME_TEXT, time_unit="us").cast(pl.Int64)
               .fill_null(NOT_DELETED) if c in stamps else
               (pl.col(c).cast(pl.Float64) * 100).round(0).cast(pl.Int64) if c in money else
               pl.col(c).cast(pl.Int64)).alias(c) for c in SALES_COLUMNS])


def _values(piece: pl.DataFrame, columns: list[str] | tuple[str, ...]):
    """Rows of plain Python values (text times, float money, int flags) in ``columns``' order,
    or None for an empty piece. Converting whole columns in Polars first keeps the per-row
    work inside sqlite3's C loop."""
    if piece.is_empty():
        return None
    out = []
    for name in columns:
        column = piece[name]
        if column.dtype == pl.Datetime:
            column = column.dt.to_string(TIME_TEXT)
        elif column.dtype == pl.Date:
            column = column.dt.to_string("%Y-%m-%d")
        elif isinstance(column.dtype, pl.Decimal):
            column = column.cast(pl.Float64)
        elif column.dtype == pl.Boolean:
            column = column.cast(pl.Int8)
        out.append(column.to_list())
    return zip(*out)


def as_error(exc: sqlite3.Error, url: DatabaseUrl) -> DatasetError:
    """One line for a failure SQLite reported."""
    first = url.scrub(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    if isinstance(exc, sqlite3.DatabaseError) and "not a database" in first:
        return UsageError(f"{url} is not a SQLite database ({first}).")
    return DatasetError(f"the sink into {url} failed and was rolled back ({first}).")
