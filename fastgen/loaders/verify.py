"""Check a warehouse's ``sales`` and ``sales_history`` against the ground truth in the
dataset's last manifest.

The comparison of ``sales`` is the one every target gets (``fastgen.sinks.verify.compare``):
per day, rows, live rows, sum(amount) and the order-independent row hash, read a batch of
days at a time. What differs from a sink's verify is the truth: a warehouse is checked
against the dataset's *last* run (a warehouse that is behind is said to be, and its days
differ).

A history table (``sales_history``, or any table with sale_id, version and valid_from /
valid_to or dbt snapshot's dbt_valid_from / dbt_valid_to) is checked per day against the
manifest's ``versions`` and ``history_hash`` (``fastgen.history.of_table``), a batch of days
at a time (``verify_history``); without a sale_date column, as one total.

A table that applied the last run from its feed, when the source held events back (stress mode
late events), is checked against what that feed delivered (``fastgen.delivered``).
"""

from __future__ import annotations

from datetime import date

import duckdb
import polars as pl

from fastgen import delivered
from fastgen.dataset import Dataset
from fastgen.history import NONE, History, of_table
from fastgen.loaders.tables import (HISTORY_STRATEGY, HISTORY_TABLE, STATE_TABLE, TABLE, State,
                                    is_interrupt, state)
from fastgen.loaders.target import Warehouse
from fastgen.sinks.position import fingerprint
from fastgen.sinks.verify import compare

WHERE = "the warehouse"
HISTORY_BATCH_DAYS = 31  # days of history read at once: memory stays bounded


def verify_warehouse(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> list[str]:
    """Each day whose rows in ``sales`` (or versions in ``sales_history``) differ from the
    last manifest; empty when all match.

    Compares row count, live rows, sum(amount) and the order-independent row hash per day.
    DuckDB encodes the columns as the kernels do (microseconds, cents, NOT_DELETED for a null
    deleted_at) and ``fastgen.digest.digest_arrays`` digests them, as the generator digested
    the manifest's, so any difference in any column of any row shows. ``sales_history`` is
    checked when the table exists; ``sales`` unless only the history was ever loaded. A
    warehouse last loaded from another dataset (another fingerprint) gets that one line
    instead of a list of days. Ctrl-C during a query raises KeyboardInterrupt.
    """
    last = dataset.committed()
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if TABLE not in tables:
        return [f"{WHERE} has no {TABLE} table; load it first"]
    try:
        where = state(con) if STATE_TABLE in tables else None
        scd2 = state(con, HISTORY_STRATEGY) if STATE_TABLE in tables else None
        if any(s is not None and s.dataset != fingerprint(dataset) for s in (where, scd2)):
            # Its days, dates and runs mean nothing against this dataset's manifest.
            return [f"{WHERE} holds another dataset than {dataset.root}"]
        truth = last["partitions"] if last else {}
        problems = []
        if HISTORY_TABLE in tables:
            problems += _behind(dataset, last, scd2, f"{WHERE}'s {HISTORY_TABLE}")
            problems += verify_history(_held(truth, last, scd2), con, HISTORY_TABLE)
        if where is None and scd2 is not None and not Warehouse(con, "verify").row_count():
            return problems  # only the history was ever loaded
        problems += _behind(dataset, last, where, WHERE)
        return problems + compare(_held(truth, last, where), Warehouse(con, "verify"), WHERE)
    except (duckdb.Error, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        if not isinstance(exc, duckdb.Error):
            raise
        # A table of another shape, not made by these loaders.
        return [f"{WHERE}'s tables cannot be read ({str(exc).splitlines()[0]})"]


def _held(truth: dict, last: dict | None, where: State | None) -> dict:
    """The truth a table holds: without the last run's held-back events when it applied that
    run from its feed (stress mode late events, ``fastgen.delivered``)."""
    return delivered.truth(truth, last) if where is not None and where.fed else truth


def _behind(dataset: Dataset, last: dict | None, where: State | None, name: str) -> list[str]:
    if not last or (where is not None and where.last_run == last["run"]):
        return []
    at = "has never been loaded" if where is None else \
        f"is at run {where.last_run} ({dataset.sim.date_of(where.last_run)})"
    return [f"{name} {at}; the dataset's last run is {last['run']} ({last['run_date']})"]


def verify_table(dataset: Dataset, con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """``verify_history`` of a user's table (``[schema.]table``, e.g. a dbt snapshot of the
    export) against the dataset's last run; a table that cannot be read gets one line."""
    last = dataset.committed()
    try:
        return verify_history(last["partitions"] if last else {}, con, table)
    except duckdb.Error as exc:
        return [f"{table} cannot be checked ({str(exc).splitlines()[0]})"]


def verify_history(truth: dict, con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Each day whose versions in the history ``table`` (``[schema.]table``) differ from
    ``truth`` (a manifest's partitions, with ``versions`` and ``history_hash``); empty when
    all match."""
    name = ".".join(f'"{part}"' for part in table.split("."))
    columns = {r[0] for r in con.execute(f"DESCRIBE {name}").fetchall()}
    picked = ", ".join(["sale_id", "version"] + [c if c in columns else f"dbt_{c}"
                                                 for c in ("valid_from", "valid_to")])
    wanted = {day: History.from_json(t) for day, t in truth.items()}
    if "sale_date" not in columns:
        got = of_table(_frame(con, f"SELECT {picked} FROM {name}"))
        whole = sum(wanted.values(), NONE)
        return [] if got == whole else [f"{table}: {got.versions:,} versions and their hash, "
                                        f"the manifest: {whole.versions:,} and another hash"]
    found = sorted({d.isoformat() for (d,) in con.execute(
        f"SELECT DISTINCT sale_date FROM {name}").fetchall()} | set(wanted))
    problems = []
    for start in range(0, len(found), HISTORY_BATCH_DAYS):
        days = found[start:start + HISTORY_BATCH_DAYS]
        frame = _frame(con, f"SELECT {picked}, sale_date FROM {name} "
                       "WHERE sale_date BETWEEN ? AND ?",
                       [date.fromisoformat(days[0]), date.fromisoformat(days[-1])])
        by_day = {key[0].isoformat(): part
                  for key, part in frame.partition_by("sale_date", as_dict=True).items()}
        for day in days:
            got = of_table(by_day[day]) if day in by_day else NONE
            expected = wanted.get(day, NONE)
            if got.versions != expected.versions:
                problems.append(f"day {day}: {table} has {got.versions:,} versions, the "
                                f"manifest {expected.versions:,}")
            elif got != expected:
                problems.append(f"day {day}: {table}'s history hash differs from the manifest's")
    return problems


def _frame(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> pl.DataFrame:
    return con.sql(sql, params=params).pl()
