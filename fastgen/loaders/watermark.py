"""Watermark ("tracking the last updated record"): merge the export's rows updated since the
last load into ``sales``.

The watermark is the largest ``updated_at`` loaded so far, kept in the control row with the
table, in the same transaction. A load reads the rows with ``updated_at > watermark -
lookback`` from the files the last manifest lists, and merges them by sale_id (the old row
deleted, the new one inserted). It never reads the whole history to find them: files and row
groups whose ``updated_at`` max statistic is not after the watermark are skipped
(``files.after_watermark``, from the Parquet footers; DuckDB's reader skips the same row
groups given the WHERE), and the row groups and bytes read are reported. ``updated_at``
never decreases and each run's changes are stamped inside its own day, so with no lookback
nothing is missed.

Soft deletes are updates (the row comes back with is_deleted and a new updated_at), so a
dataset made with ``--delete-mode soft`` is loaded exactly. A hard delete leaves no row to
carry a watermark: the deleted row stays in ``sales`` forever. On a dataset that may
hard-delete, every load says so in one line (``LoadStats.notes``: how many rows the runs it
loaded hard-deleted, from the manifests' counts), and ``fastgen verify --warehouse`` names the
days that are wrong. The first load into an empty warehouse takes the bulk path (the export
after the last run), which is exact.

After a cdc load that applied its last run from the feed, with late events, the table lacks
that run's held-back events, whose rows may be stamped before the watermark the cdc load
left: the merge then reaches back to the start of that run's day (and as far before it as the
run's changes were stamped, ``late_commit_reach_us``), which brings them.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, time, timedelta

import duckdb

from fastgen.dataset import Dataset
from fastgen.loaders.files import after_watermark, sales_select
from fastgen.loaders.tables import TABLE, State
from fastgen.loaders.target import Warehouse, affected
from fastgen.loaders.warehouse import LoadStats, run_load
from fastgen.schema import PARTITION_KEY
from fastgen.sinks.commit import Work, first_load
from fastgen.sinks.source import check_files

CHANGED = "fastgen_changed"  # the rows a load merges, a temporary table inside its transaction


def load(dataset: Dataset, con: duckdb.DuckDBPyConnection,
         lookback: timedelta = timedelta(0)) -> LoadStats:
    """Merge the rows updated since the watermark (minus ``lookback``), in one transaction."""
    scanned: dict[str, int] = {}

    def merge(target: Warehouse, ds: Dataset, before: State | None, last: dict) -> Work:
        if before is None or before.watermark is None:
            work = first_load(ds, target, last)
            mark = target.con.execute(f"SELECT max(updated_at) FROM {TABLE}").fetchone()[0]
            return replace(work, watermark=mark)
        return _merge(target, ds, last, _since(ds, before, lookback), scanned)

    stats = run_load("watermark", dataset, con, merge, needs_history=True)
    return replace(stats, row_groups=scanned.get("row_groups"),
                   notes=hard_deletes_kept(dataset, stats.from_run, stats.to_run)
                   + late_commits_missed(dataset, stats.from_run, stats.to_run, lookback))


def _since(dataset: Dataset, before: State, lookback: timedelta) -> datetime:
    """Where the merge starts: the watermark less the lookback, or earlier after a fed load
    whose run held events back (the module's docstring)."""
    since = before.watermark - lookback
    if not (before.fed and dataset.model.stress.late_event_share):
        return since
    fed = dataset.manifests(before.last_run, before.last_run)[0]
    reach = timedelta(microseconds=fed["counts"].get("late_commit_reach_us", 0))
    return min(since, datetime.combine(dataset.sim.date_of(before.last_run), time()) - reach)


def _merge(target: Warehouse, dataset: Dataset, last: dict, since, scanned: dict) -> Work:
    rels = [rel for day in last["partitions"].values() for rel in day["files"]]
    pruned = after_watermark(dataset, last, rels, since)
    scanned["row_groups"] = pruned.row_groups
    if not pruned.files:
        return Work("watermark")
    check_files(dataset, last, pruned.files)
    select, params = sales_select(dataset, last, pruned.files, channel=target.channel)
    con = target.con
    con.execute(f"CREATE TEMP TABLE {CHANGED} AS SELECT * FROM ({select}) "
                "WHERE updated_at > $since", {**params, "since": since})
    try:
        deleted = affected(con, f"DELETE FROM {TABLE} AS t USING {CHANGED} AS c "
                                "WHERE t.sale_id = c.sale_id")
        inserted = affected(con, f"INSERT INTO {TABLE} ({target.cols}) "
                                 f"SELECT {target.cols} FROM {CHANGED}")
        mark, days = con.execute(f"SELECT max(updated_at), list(DISTINCT {PARTITION_KEY}::VARCHAR)"
                                 f" FROM {CHANGED}").fetchone()
    finally:
        con.execute(f"DROP TABLE {CHANGED}")
    return Work("watermark", deleted + inserted, pruned.rows, pruned.bytes,
                frozenset(days or ()), mark)


def hard_deletes_kept(dataset: Dataset, from_run: int, to_run: int) -> tuple[str, ...]:
    """One line on a dataset that may hard-delete: how many rows the runs after ``from_run``
    hard-deleted (the manifests' counts), which a watermark cannot see; none otherwise."""
    changes = dataset.model.changes
    if changes.delete_mode == "soft" or changes.delete_rate == 0:
        return ()
    if from_run < 0 or from_run >= to_run:  # a bulk load is exact; nothing loaded
        n, runs = 0, "no runs loaded"
    else:
        n = sum(m["counts"]["hard_deletes"] for m in dataset.manifests(from_run + 1, to_run))
        runs = f"runs {from_run + 1}..{to_run}"
    return (f"watermark: {dataset.root} has hard deletes ({changes.delete_mode} mode), which "
            f"leave no row to carry a watermark: {n:,} rows hard-deleted by {runs} are still in "
            f"{TABLE} (use --strategy incremental or cdc, or a dataset made with --delete-mode "
            "soft, for an exact table)",)


def late_commits_missed(dataset: Dataset, from_run: int, to_run: int,
                        lookback: timedelta) -> tuple[str, ...]:
    """One line when runs after ``from_run`` committed changes stamped further before their
    day than ``lookback`` reaches (stress mode ``late_commit_share``; the manifests say how
    far): such rows may be behind the watermark already, and then are not loaded."""
    if from_run < 0 or from_run >= to_run or not dataset.model.stress.late_commit_share:
        return ()
    counts = [m["counts"] for m in dataset.manifests(from_run + 1, to_run)]
    reach = timedelta(microseconds=max(c["late_commit_reach_us"] for c in counts))
    if reach <= lookback:
        return ()
    late = sum(c["late_commits"] for c in counts)
    return (f"watermark: runs {from_run + 1}..{to_run} committed {late:,} changes stamped up "
            f"to {reach} before their run's day, beyond the lookback of {lookback}: those "
            f"stamped before the watermark were not loaded (use --lookback {_hours(reach)} "
            "or more)",)


def _hours(span: timedelta) -> str:
    return f"{-(-span.total_seconds() // 3600):.0f}h"
