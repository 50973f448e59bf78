"""Incremental load: reload only the days whose partitions changed since the last load.

Which days: the union of the ``touched`` lists of the manifests of every run after the
warehouse's last loaded run (a manifest's ``touched`` names every day whose partition that
run rewrote: its new day, days that received late rows, days it changed). Each such day is
reloaded whole: its rows are deleted from ``sales`` and the day's current file(s), as listed
by the last manifest, are inserted (``fastgen.sinks.commit.insert_days``: checked
against the manifest first, their rows counted after). Because a
day is replaced rather than patched, this handles soft deletes (the row comes back with
is_deleted and deleted_at set) and hard deletes (the row is absent from the new file, so it
disappears) without any special case.

This loader uses the manifests' touched partitions, not an ``updated_at`` watermark: a
watermark finds updated and soft-deleted rows, but a hard-deleted row leaves no row behind to
carry a new ``updated_at``, so a watermark alone would keep it forever. The watermark is still
recorded in the control table, for information. Cost grows with the days touched since the
last load, which levels off once history is longer than the window of changed days.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.tables import TABLE, State
from fastgen.loaders.target import Warehouse, affected
from fastgen.loaders.warehouse import LoadStats, run_load
from fastgen.schema import PARTITION_KEY
from fastgen.sinks.commit import Work, insert_days


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> LoadStats:
    """Bring ``sales`` from the warehouse's last run to the dataset's, in one transaction."""
    return run_load("incremental", dataset, con, _reload, needs_history=True)


def changed_days(dataset: Dataset, after_run: int, last: dict) -> list[str]:
    """Days (ISO dates) whose partitions runs after_run+1 .. last rewrote."""
    if after_run < 0:
        return sorted(last["partitions"])
    days: set[str] = set()
    for manifest in dataset.manifests(after_run + 1, last["run"]):
        days.update(manifest["touched"])
    return sorted(days)


def _reload(target: Warehouse, dataset: Dataset, before: State | None, last: dict) -> Work:
    days = changed_days(dataset, before.last_run if before else -1, last)
    if before is not None and before.fed:
        # A cdc load left ``sales`` without its last run's held-back events (stress mode
        # late events): the days they change are reloaded too.
        held = dataset.manifests(before.last_run, before.last_run)[0].get("held", {})
        days = sorted(set(days) | set(held.get("days", {})))
    if not days:
        return Work("incremental")
    # Literal dates (ISO strings from manifests) let DuckDB prune row groups by zonemap.
    in_days = ", ".join(f"DATE '{day}'" for day in days)
    deleted = delete_days(target.con, in_days)
    work = insert_days(dataset, target, last, days)
    mark = target.con.execute(f"SELECT max(updated_at) FROM {TABLE} "
                              f"WHERE {PARTITION_KEY} IN ({in_days})").fetchone()[0]
    return replace(work, changes=deleted + work.changes, watermark=mark)


def delete_days(con: duckdb.DuckDBPyConnection, in_days: str) -> int:
    return affected(con, f"DELETE FROM {TABLE} WHERE {PARTITION_KEY} IN ({in_days})")
