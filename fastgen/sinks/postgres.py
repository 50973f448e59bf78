"""PostgreSQL target (psycopg 3).

A run's feed goes, piece by piece, into a temporary staging table with COPY (CSV text
written by Polars), then becomes three set-based statements on ``sales``:
``INSERT ... SELECT`` (inserts), ``UPDATE ... FROM`` (updates and soft deletes: every
column from the after image) and ``DELETE ... USING`` (hard deletes). Each is still one
row-level change per feed row in the WAL, so logical decoding (Debezium, pgoutput) sees one
event per change. The bulk path (a first load) is ``COPY sales FROM STDIN``.

Every transaction starts with ``pg_advisory_xact_lock``: two sinks on one database take
turns, and each re-reads the position after it got the lock. The password is never shown:
libpq reads it from the URL, ``PGPASSWORD`` or ``~/.pgpass``, and every message from the
server or driver is scrubbed of it (``DatabaseUrl.scrub``).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date

import polars as pl
import psycopg

from fastgen.errors import DatasetError, UsageError
from fastgen.schema import CHANNEL, NOT_DELETED, PARTITION_KEY, SALES_COLUMNS
from fastgen.sinks.base import TABLE, Target, channel_code, create_statements, quoted
from fastgen.sinks.commit import Work
from fastgen.sinks.position import STATE_COLUMNS, STATE_ROW_ID, STATE_TABLE, Position
from fastgen.sinks.source import sql_types
from fastgen.sinks.url import DatabaseUrl

TYPES = sql_types({pl.Int64: "bigint", pl.Int32: "integer", pl.Boolean: "boolean",
                   pl.Date: "date", pl.Datetime: "timestamp without time zone",
                   pl.Decimal: "numeric({p},{s})"})
STATE_TYPES = {"INTEGER": "integer", "TEXT": "text", "DATE": "date",
               "TIMESTAMP": "timestamp without time zone", "BIGINT": "bigint"}
CONNECT_SECONDS = 10  # an unreachable server fails in one line, not after minutes
# Key of the advisory lock that serialises sinks on one database (any constant bigint).
LOCK_KEY = 0x66617374_67656E
STAGE = "fastgen_stage"
TIME_TEXT = "%Y-%m-%d %H:%M:%S%.6f"

_T, _S = quoted(TABLE), quoted(STAGE)
CREATE = create_statements(
    {c: f"{t} PRIMARY KEY" if c == "sale_id" else t for c, t in TYPES.items()}, STATE_TYPES)
EXPECTED = {TABLE: list(TYPES.items()),
            STATE_TABLE: [(c, STATE_TYPES[t]) for c, t, _ in STATE_COLUMNS]}
DELETE = f"DELETE FROM {_T} AS t USING {_S} AS s WHERE s.op = %s AND t.sale_id = s.sale_id"


def _statements(columns: tuple[str, ...]) -> dict[str, str]:
    """The DML of a table with these columns (``Target.table_columns``)."""
    names = ", ".join(quoted(c) for c in columns)
    types = {**TYPES, CHANNEL: "text"}
    return {
        "stage": (f"CREATE TEMP TABLE IF NOT EXISTS {_S} (op text, "
                  + ", ".join(f"{quoted(c)} {types[c]}" for c in columns) + ") ON COMMIT DROP"),
        "copy_stage": f"COPY {_S} (op, {names}) FROM STDIN (FORMAT csv)",
        "copy_sales": f"COPY {_T} ({names}) FROM STDIN (FORMAT csv)",
        "insert": f"INSERT INTO {_T} ({names}) SELECT {names} FROM {_S} WHERE op = %s",
        "update": (f"UPDATE {_T} AS t SET "
                   + ", ".join(f"{quoted(c)} = s.{quoted(c)}" for c in columns if c != "sale_id")
                   + f" FROM {_S} AS s WHERE s.op = %s AND t.sale_id = s.sale_id"),
    }


def _encoded_sql(channel: bool) -> str:
    """SELECT of days first..last (%s, %s) in the kernels' int64 encoding (and the channel's
    code, for a table that has the column)."""
    def one(name: str, kind: str) -> str:
        q = quoted(name)
        if kind.startswith("timestamp"):
            us = f"(extract(epoch FROM {q}) * 1000000)::bigint"
            return f"coalesce({us}, {NOT_DELETED})" if name == "deleted_at" else us
        if kind.startswith("numeric"):
            return f"({q} * 100)::bigint"
        return f"{q}::integer::bigint" if kind == "boolean" else f"{q}::bigint"
    cols = ", ".join(f"{one(c, TYPES[c])} AS {quoted(c)}" for c in SALES_COLUMNS)
    if channel:
        cols += f", {channel_code()} AS {quoted(CHANNEL)}"
    return (f"SELECT ({quoted(PARTITION_KEY)} - DATE '1970-01-01')::bigint AS day, {cols} "
            f"FROM {_T} WHERE {quoted(PARTITION_KEY)} BETWEEN %s AND %s")


class PostgresTarget(Target):
    expected, create = EXPECTED, CREATE
    shape_remedy = "use another database or schema"
    channel_type = "text"

    def __init__(self, url: DatabaseUrl):
        super().__init__(url)
        try:
            self.con = psycopg.connect(url.conninfo, connect_timeout=CONNECT_SECONDS,
                                       autocommit=True, application_name="fastgen sink")
        except psycopg.ProgrammingError as exc:  # libpq could not parse the URL
            raise UsageError(f"{url} is not a valid PostgreSQL URL ({_first(exc, url)}).") \
                from None
        except psycopg.Error as exc:
            raise DatasetError(f"cannot connect to {url} ({_first(exc, url)}).") from None

    def close(self, committed: bool) -> None:
        self.con.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.con.transaction():
            self.con.execute("SELECT pg_advisory_xact_lock(%s)", [LOCK_KEY])
            yield

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self.con.transaction():
            self.con.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield

    # ---- tables --------------------------------------------------------------------------
    def columns(self, table: str) -> list[tuple[str, str]]:
        rows = self.con.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = to_regclass(%s) AND a.attnum > 0 AND NOT a.attisdropped "
            "ORDER BY a.attnum", [quoted(table)]).fetchall()
        return [tuple(r) for r in rows]

    def position(self) -> Position | None:
        row = self.con.execute(f"SELECT dataset, last_run, last_run_date, method FROM "
                               f"{quoted(STATE_TABLE)} WHERE id = %s", [STATE_ROW_ID]).fetchone()
        return Position(*row[:3], row[3] == "feed") if row else None

    def record(self, position: Position, work: Work) -> None:
        self.con.execute(
            f"INSERT INTO {quoted(STATE_TABLE)} VALUES (%s, %s, %s, %s, "
            "localtimestamp, %s, %s) ON CONFLICT (id) DO UPDATE SET dataset = EXCLUDED.dataset, "
            "last_run = EXCLUDED.last_run, last_run_date = EXCLUDED.last_run_date, "
            "applied_at = EXCLUDED.applied_at, method = EXCLUDED.method, "
            "changes = EXCLUDED.changes",
            [STATE_ROW_ID, position.dataset, position.last_run, position.last_run_date,
             work.method, work.changes])

    def row_count(self) -> int:
        return self.con.execute(f"SELECT count(*) FROM {_T}").fetchone()[0]

    # ---- data ---------------------------------------------------------------------------
    def insert_rows(self, piece: pl.DataFrame) -> int:
        with self.con.cursor() as cur:
            with cur.copy(_statements(self.table_columns)["copy_sales"]) as copy:
                copy.write(_csv(piece))
            return cur.rowcount

    def apply_changes(self, piece: pl.DataFrame) -> tuple[int, int, int]:
        sql = _statements(self.table_columns)
        with self.con.cursor() as cur:
            cur.execute(sql["stage"])
            cur.execute(f"TRUNCATE {_S}")
            with cur.copy(sql["copy_stage"]) as copy:
                copy.write(_csv(piece))
            counts = []
            for statement, op in ((sql["insert"], "insert"), (sql["update"], "update"),
                                  (DELETE, "delete")):
                cur.execute(statement, [op])
                counts.append(cur.rowcount)
        return tuple(counts)

    def day_counts(self) -> dict[date, int]:
        rows = self.con.execute(f"SELECT {quoted(PARTITION_KEY)}, count(*) FROM {_T} "
                                "GROUP BY 1").fetchall()
        return dict(rows)

    def encoded(self, first: date, last: date) -> pl.DataFrame:
        buffer = io.BytesIO()
        channel = any(name == CHANNEL for name, _ in self.columns(TABLE))
        with self.con.cursor() as cur:
            # COPY takes no server-side parameters: psycopg binds the two dates client-side.
            with cur.copy(f"COPY ({_encoded_sql(channel)}) TO STDOUT (FORMAT csv)",
                          [first, last]) as copy:
                for block in copy:
                    buffer.write(block)
        names = ["day", *SALES_COLUMNS, *([CHANNEL] if channel else [])]
        if not buffer.tell():
            return pl.DataFrame(schema={n: pl.Int64 for n in names})
        buffer.seek(0)
        return pl.read_csv(buffer, has_header=False, new_columns=names,
                           schema_overrides={n: pl.Int64 for n in names})


def _csv(piece: pl.DataFrame) -> bytes:
    """A piece as COPY's CSV: no header, empty unquoted fields for nulls."""
    return piece.write_csv(include_header=False, datetime_format=TIME_TEXT,
                           date_format="%Y-%m-%d").encode()


def _first(exc: BaseException, url: DatabaseUrl) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return url.scrub(lines[0] if lines else type(exc).__name__)


def as_error(exc: psycopg.Error, url: DatabaseUrl) -> DatasetError:
    """One line for a failure PostgreSQL or psycopg reported."""
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return DatasetError(f"lost the connection to {url} ({_first(exc, url)}); the run in "
                            "progress was rolled back by the server.")
    return DatasetError(f"the sink into {url} failed and was rolled back ({_first(exc, url)}).")
