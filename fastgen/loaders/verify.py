"""Check a warehouse's ``sales`` against the ground truth in the dataset's last manifest."""

from __future__ import annotations

from datetime import date, timedelta

import duckdb
import numpy as np
import polars as pl

from fastgen.dataset import Dataset
from fastgen.digest import digest_arrays
from fastgen.loaders.tables import STATE_TABLE, TABLE, fingerprint, is_interrupt, state
from fastgen.schema import NOT_DELETED, PARTITION_KEY, SALES_SCHEMA

# Rows held in memory at a time by verify_warehouse: a few days at the 1M-rows scale.
VERIFY_BATCH_ROWS = 4_000_000
EPOCH = date(1970, 1, 1)


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
    the manifest's, so any difference in any column of any row shows. A warehouse last loaded
    from another dataset (another fingerprint) gets that one line instead of a list of days.
    Ctrl-C during a query raises KeyboardInterrupt.
    """
    last = dataset.committed()
    truth = last["partitions"] if last else {}
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if TABLE not in tables:
        return [f"the warehouse has no {TABLE} table; load it first"]
    try:
        return _compare(dataset, con, last, truth, tables)
    except (duckdb.Error, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        if not isinstance(exc, duckdb.Error):
            raise
        # A table of another shape, not made by these loaders.
        return [f"the warehouse's tables cannot be read ({str(exc).splitlines()[0]})"]


def _compare(dataset: Dataset, con: duckdb.DuckDBPyConnection, last: dict | None, truth: dict,
             tables: set[str]) -> list[str]:
    problems = []
    where = state(con) if STATE_TABLE in tables else None
    if where is not None and where.dataset != fingerprint(dataset):
        # Its days, dates and runs mean nothing against this dataset's manifest.
        return [f"the warehouse holds another dataset than {dataset.root}"]
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
