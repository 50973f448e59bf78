"""The exactly-once core of every sink: apply run r and record it, in one transaction.

``apply`` brings a target (a database, ``Target``) from its position to the dataset's last
committed run:

- a target that holds nothing yet takes the *bulk path*: the export after the last run is a
  snapshot of the whole history, so its rows are inserted (in pieces, with the database's
  fastest insert) and that run is recorded, in one transaction;
- otherwise each run after the target's position is applied in its own transaction: the
  run's feed, read in bounded pieces, becomes row-level DML on ``sales`` (an insert, an
  UPDATE of every column for an update or a soft delete, a DELETE for a hard delete), then
  the control row moves to that run, then COMMIT. A CDC tool reading the database's log sees
  one event per change of the feed, and no untouched row is rewritten.

Every transaction first takes the target's write lock, then re-reads the position, so two
sinks on one database apply each run once. A run's DML must touch exactly the rows its feed
names: an UPDATE or DELETE of a row that is not there means the table is not the previous
run's, and the run is rolled back with a message, never half-applied. Killed anywhere, the
target keeps its last whole run, and the next ``apply`` goes on from there.
"""

from __future__ import annotations

import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import polars as pl

from fastgen.dataset import Dataset
from fastgen.errors import DatasetError, UsageError
from fastgen.faults import fault
from fastgen.loaders.files import last_manifest
from fastgen.sinks import position as positions
from fastgen.sinks.position import Position, fingerprint
from fastgen.sinks.source import feed_pieces, snapshot_pieces
from fastgen.sinks.url import DatabaseUrl

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


@dataclass(frozen=True)
class Applied:
    """One transaction a sink committed."""

    run: int
    run_date: date
    method: str  # "bulk" (a snapshot) or "feed"
    changes: int  # rows inserted, updated or deleted
    seconds: float


@dataclass(frozen=True)
class SinkStats:
    target: str  # the redacted URL
    from_run: int  # -1: the target held nothing
    to_run: int
    to_date: date
    applied: tuple[Applied, ...]

    @property
    def changes(self) -> int:
        return sum(a.changes for a in self.applied)


class Target(ABC):
    """A database a sink writes: its connection, transactions, DDL and DML.

    Subclasses give the dialect; ``apply`` gives the order. All SQL is built from validated,
    quoted identifiers (``quoted``); every value goes as a parameter or as COPY data.
    """

    def __init__(self, url: DatabaseUrl):
        self.url = url

    # ---- connection and transactions ----------------------------------------------------
    @abstractmethod
    def close(self, committed: bool) -> None:
        """Close the connection; ``committed`` says whether anything was ever committed."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[None]:
        """BEGIN with the target's write lock held; COMMIT, or ROLLBACK on any exception."""

    @contextmanager
    def reading(self) -> Iterator[None]:
        """A consistent read of the tables (a transaction that changes nothing)."""
        with self.transaction():
            yield

    # ---- tables --------------------------------------------------------------------------
    @abstractmethod
    def check_shape(self) -> None:
        """UsageError if ``sales`` or the control table exists with another shape."""

    @abstractmethod
    def prepare(self) -> None:
        """Create ``sales`` and the control table where missing; UsageError for a table of
        another shape. Inside a transaction."""

    @abstractmethod
    def has_tables(self) -> bool:
        """Whether both tables exist (a target that was never applied to may lack them)."""

    @abstractmethod
    def position(self) -> Position | None:
        """The control row, or None."""

    @abstractmethod
    def record(self, position: Position, method: str, changes: int) -> None:
        """Write the control row."""

    @abstractmethod
    def row_count(self) -> int:
        """Rows in ``sales``."""

    # ---- data ---------------------------------------------------------------------------
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


def apply(dataset: Dataset, target: Target,
          on_applied: Callable[[Applied], None] | None = None) -> SinkStats:
    """Bring ``target`` to the dataset's last committed run, one transaction per run.

    Hold ``dataset.reading()`` around it (as ``fastgen sink`` does) so that a commit does not
    replace files while they are read.
    """
    last = last_manifest(dataset)
    ident = fingerprint(dataset)
    done: list[Applied] = []
    start: int | None = None
    manifests: dict[int, dict] = {}
    while True:
        t0 = time.perf_counter()
        with target.transaction():
            target.prepare()
            where = target.position()
            positions.check(where, dataset, last, str(target.url))
            run = where.last_run if where else -1
            start = run if start is None else start
            if run == last["run"]:
                break
            if where is None:
                if target.row_count():
                    raise UsageError(f"the sales table of {target.url} has rows but no "
                                     f"{positions.STATE_TABLE} row; fastgen did not make it. "
                                     "Use another database, or empty the table.")
                method, run, changes = "bulk", last["run"], _bulk(dataset, target, last)
            else:
                run += 1
                if run not in manifests:
                    manifests.update(_manifests(dataset, run, last))
                method, changes = "feed", _feed(dataset, target, last, manifests[run])
            fault("sink")
            target.record(Position(ident, run, dataset.sim.date_of(run)), method, changes)
        applied = Applied(run, dataset.sim.date_of(run), method, changes,
                          time.perf_counter() - t0)
        done.append(applied)
        if on_applied:
            on_applied(applied)
    return SinkStats(str(target.url), start, last["run"], date.fromisoformat(last["run_date"]),
                     tuple(done))


def _manifests(dataset: Dataset, first: int, last: dict) -> dict[int, dict]:
    if dataset.feed == "none":
        raise UsageError(f"{dataset.root} has no change feed (it was made with --feed none), "
                         f"so runs after {first - 1} cannot be applied as changes; sink it "
                         "into a new database (the first apply copies the whole export).")
    return {m["run"]: m for m in dataset.manifests(first, last["run"])}


def _bulk(dataset: Dataset, target: Target, last: dict) -> int:
    inserted = sum(target.insert_rows(piece) for piece in snapshot_pieces(dataset, last))
    expected = sum(truth["rows"] for truth in last["partitions"].values())
    if inserted != expected:
        raise DatasetError(f"the export of run {last['run']} held {inserted} rows, its "
                           f"manifest says {expected}; nothing was applied (run "
                           "`fastgen verify`).")
    return inserted


def _feed(dataset: Dataset, target: Target, last: dict, manifest: dict) -> int:
    """Apply one run's feed; its counts must be what the feed asked for."""
    wanted = [0, 0, 0]
    got = [0, 0, 0]
    for piece in feed_pieces(dataset, last, manifest["feed"]):
        ops = piece["op"]
        for i, op in enumerate(("insert", "update", "delete")):
            wanted[i] += int((ops == op).sum())
        for i, n in enumerate(target.apply_changes(piece)):
            got[i] += n
    if got != wanted:
        kinds = ", ".join(f"{g} of {w} {k}" for g, w, k in
                          zip(got, wanted, ("inserts", "updates", "deletes")) if g != w)
        raise DatasetError(f"the sales table of {target.url} is not at run "
                           f"{manifest['run'] - 1}: run {manifest['run']} found {kinds}; "
                           "nothing of it was applied (run `fastgen verify --db`).")
    return sum(got)
