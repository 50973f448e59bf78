"""Type 2 history: ``sales_history``, one row per version of each sale, from the change feed.

Each run's feed (after the history's own position, its ``scd2`` control row) is applied in
order, in bounded pieces, by the exactly-once core (``fastgen.sinks.commit.feed``) on the
``HistoryWarehouse`` target: an ``insert`` opens version 1 (``dbt_valid_from`` = its
``updated_at``); an ``update`` (a soft delete too: a version like any other) closes the sale's
current version at the new version's ``updated_at`` and opens the new one; a ``delete`` (a
hard delete) closes it at the run's ``commit_ts``. The closes must find exactly the current
versions the feed names, else the load is refused and rolled back. Column names follow dbt
snapshots (``dbt_scd_id`` = md5 of sale_id and updated_at, ``dbt_updated_at``,
``dbt_valid_from``, ``dbt_valid_to``), plus ``is_current`` and the version's sales columns.

The history's position is its own control row, so ``sales`` and ``sales_history`` may be
loaded by different strategies at different times in one warehouse; each load of either is
one transaction with its control row. A first load has no shortcut: the export holds only the
last version of each sale, so every run's feed is applied, from run 0, each in pieces (memory
stays bounded; the work is that of every run's load once). Later loads cost what the runs
since changed, plus a scan of the current versions per piece.
"""

from __future__ import annotations

import duckdb

from fastgen.dataset import Dataset, UsageError
from fastgen.loaders.tables import HISTORY_STRATEGY, HISTORY_TABLE, State
from fastgen.loaders.target import HistoryWarehouse
from fastgen.loaders.warehouse import LoadStats, run_load
from fastgen.sinks.commit import Work, feed, runs


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection) -> LoadStats:
    """Bring ``sales_history`` to the dataset's last run, in one transaction."""
    return run_load(HISTORY_STRATEGY, dataset, con, _apply, needs_history=True,
                    target=HistoryWarehouse)


def _apply(target: HistoryWarehouse, dataset: Dataset, before: State | None,
           last: dict) -> Work:
    if before is None and target.row_count():
        raise UsageError(f"{target.name} has rows but no {HISTORY_STRATEGY} control row; "
                         f"fastgen did not make it. Drop {HISTORY_TABLE}, or name another "
                         "warehouse.")
    work = Work(HISTORY_STRATEGY, fed=before.fed if before else False)
    first = before.last_run + 1 if before else 0
    if first > last["run"]:
        return work
    fed = before.fed if before else True
    for manifest in runs(dataset, first, last):
        work = work.then(feed(dataset, target, last, manifest, fed=fed))
        fed = True
    return work
