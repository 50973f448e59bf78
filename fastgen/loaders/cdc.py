"""Change data capture: apply the change feed of every run after the last applied one.

The warehouse's ``last_run`` is also the last applied ``commit_version``. A load applies the
feeds of runs last_run+1 .. T in order (each run's files from its manifest), each read in
bounded pieces and applied by the exactly-once core (``fastgen.sinks.commit.feed``): an
``insert`` inserts the after image, an ``update`` (a soft delete too: its image carries
is_deleted) overwrites every column from it, a ``delete`` (a hard delete) removes the row, and
each must find the row it names (or, for an insert, its absence), else the load is refused
and rolled back: the table was not the previous run's. A calm run touches a sale_id at most
once, so the rows of one feed may be applied in any order; a stressed run's events are applied
in ``lsn`` order, in rounds (``fastgen.sinks.source.feed_pieces``); runs must be applied in
order. Each feed
file is checked against the last manifest before it is read. Cost grows with the rows
changed, not with the history, and memory stays bounded whatever the size of a run.

An empty warehouse (never loaded) takes the bulk path instead (``commit.first_load``): the
export after the last run is a snapshot of the whole history, so its files are inserted
once, as a full load does, rather than every run's feed merged in turn.
"""

from __future__ import annotations

from dataclasses import replace

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.tables import TABLE, State
from fastgen.loaders.target import Warehouse
from fastgen.loaders.warehouse import LoadStats, run_load
from fastgen.sinks.commit import Work, feed, first_load, runs


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> LoadStats:
    """Apply the feeds the warehouse has not seen, in order, in one transaction."""
    return run_load("cdc", dataset, con, _apply, needs_history=True)


def _apply(target: Warehouse, dataset: Dataset, before: State | None, last: dict) -> Work:
    if before is None:
        work = first_load(dataset, target, last)
        mark = target.con.execute(f"SELECT max(updated_at) FROM {TABLE}").fetchone()[0]
        return replace(work, watermark=mark)
    work, fed = Work("cdc", fed=before.fed), before.fed
    if before.last_run < last["run"]:
        for manifest in runs(dataset, before.last_run + 1, last):
            work = work.then(feed(dataset, target, last, manifest, fed=fed))
            fed = True
    return work
