"""Check a warehouse's ``sales`` against the ground truth in the dataset's last manifest.

The comparison is the one every target gets (``fastgen.sinks.verify.compare``): per day,
rows, live rows, sum(amount) and the order-independent row hash, read a batch of days at a
time. What differs from a sink's verify is the truth: a warehouse is checked against the
dataset's *last* run (a warehouse that is behind is said to be, and its days differ).
"""

from __future__ import annotations

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.tables import STATE_TABLE, TABLE, is_interrupt, state
from fastgen.loaders.target import Warehouse
from fastgen.sinks.position import fingerprint
from fastgen.sinks.verify import compare

WHERE = "the warehouse"


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
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if TABLE not in tables:
        return [f"{WHERE} has no {TABLE} table; load it first"]
    try:
        where = state(con) if STATE_TABLE in tables else None
        if where is not None and where.dataset != fingerprint(dataset):
            # Its days, dates and runs mean nothing against this dataset's manifest.
            return [f"{WHERE} holds another dataset than {dataset.root}"]
        problems = []
        if last and (where is None or where.last_run != last["run"]):
            at = "has never been loaded" if where is None else \
                f"is at run {where.last_run} ({dataset.sim.date_of(where.last_run)})"
            problems.append(f"{WHERE} {at}; the dataset's last run is {last['run']} "
                            f"({last['run_date']})")
        truth = last["partitions"] if last else {}
        return problems + compare(truth, Warehouse(con, "verify"), WHERE)
    except (duckdb.Error, RuntimeError) as exc:
        if is_interrupt(exc):
            raise KeyboardInterrupt from None
        if not isinstance(exc, duckdb.Error):
            raise
        # A table of another shape, not made by these loaders.
        return [f"{WHERE}'s tables cannot be read ({str(exc).splitlines()[0]})"]
