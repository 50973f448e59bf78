"""The change feed of a run (DESIGN.md section 4), as Debezium shapes it.

A run's feed is one or more files, read in name order: its changes to history
(``change-NNNNN``, by day, then sale_id; none in a run that changes nothing), then its inserts
(``insert-NNNNN``, one per part of the run's new day, by sale_id). One row per change: ``op`` (insert / update / delete; a soft delete is an update whose
``after`` has is_deleted), ``commit_version`` (the run), ``commit_ts``, ``sale_id``,
``sale_date`` and full row images ``before`` and ``after`` (null where they do not apply).
Without stress modes a run touches a sale_id at most once, so its rows may be applied in
any order. With any stress mode on (``fastgen.config.StressModel``) a run may change a sale
several times, and every row carries its position ``lsn`` (int64): the run's changes to
history, then its inserts, then the changes of the new rows on their own day, each in file
order (``lsn`` is ``commit_version << 40`` plus the place in the run: ``HISTORY_BASE``,
``INSERT_BASE`` + the row's index among the run's new rows, ``SAME_DAY_BASE``), so the
dataset's feeds in name order are in ``lsn`` order, and applying them in ``lsn`` order gives
the export. With redelivery (``redelivery_share``) a run's feed ends with ``tail-00000``: rows
of the previous run's feed again, unchanged, positions included; a consumer skips a position
it has applied. With late events (``late_event_share``) the tail also holds the events the
previous run held back (``held/``), with their own positions: a consumer applies those, in
``lsn`` order with the run's own, and has the export only once they arrived
(``fastgen.delivered``).
"""

from __future__ import annotations

from datetime import date, datetime

import numpy as np
import polars as pl

from fastgen.kernels import changes as ck
from fastgen.schema import (CHANNEL, FEED_SCHEMA, LSN, PARTITION_KEY, SALES_COLUMNS, image_type,
                            sales_frame)

# Where each part of a run's feed starts in its lsn range (see the module's docstring): a run
# has fewer than 2**38 changes to history and 2**31 new rows.
RUN_SHIFT = 40
HISTORY_BASE, INSERT_BASE, SAME_DAY_BASE = 0, 1 << 38, 1 << 39


def _frame(op: pl.Expr | str, run: int, commit_ts: datetime, dates: pl.Series,
           before: pl.DataFrame | None, after: pl.DataFrame | None) -> pl.DataFrame:
    images = after if after is not None else before
    n = images.height
    image_columns = [*SALES_COLUMNS, *([CHANNEL] if CHANNEL in images.columns else [])]
    schema = {**FEED_SCHEMA, "before": image_type(image_columns),
              "after": image_type(image_columns)}

    def image(frame: pl.DataFrame | None) -> pl.Series:
        if frame is None:
            return pl.repeat(None, n, dtype=schema["after"], eager=True)
        return frame.select(pl.struct(image_columns)).to_series()

    frame = pl.DataFrame({
        "op": op if isinstance(op, pl.Series) else pl.repeat(op, n, eager=True),
        "sale_id": images["sale_id"],
        PARTITION_KEY: dates,
        "before": image(before),
        "after": image(after),
    })
    return frame.with_columns(commit_version=pl.lit(run, pl.Int64),
                              commit_ts=pl.lit(commit_ts, FEED_SCHEMA["commit_ts"])
                              ).select(list(schema)).cast(schema)


def changes(run: int, commit_ts: datetime, day: date, kinds: np.ndarray, before: dict,
            after: dict) -> pl.DataFrame:
    """Feed rows of one run's changes to one day: updates, soft deletes, hard deletes."""
    hard = kinds == ck.HARD_DELETE
    dates = pl.repeat(day, kinds.size, dtype=pl.Date, eager=True)
    ops = pl.Series(hard).replace_strict({True: "delete", False: "update"},
                                         return_dtype=pl.String)
    frame = _frame(ops, run, commit_ts, dates, sales_frame(before), sales_frame(after))
    return frame.with_columns(
        pl.when(pl.col("op") == "delete").then(None).otherwise(pl.col("after")).alias("after"))


def inserts(run: int, commit_ts: datetime, rows: pl.DataFrame, dates: pl.Series) -> pl.DataFrame:
    """Feed rows of new rows: op insert, no before image; ``dates`` (Date) where each lands."""
    return _frame("insert", run, commit_ts, dates, None, rows)


def with_lsn(frame: pl.DataFrame, run: int, first: int) -> pl.DataFrame:
    """``frame`` with its positions: ``first`` (within run ``run``'s range) and on, in order."""
    start = (run << RUN_SHIFT) + first
    return frame.with_columns(pl.int_range(start, start + frame.height, dtype=pl.Int64)
                              .alias(LSN))


def insert_lsn(frame: pl.DataFrame, run: int, rows_per_day: int) -> pl.DataFrame:
    """Inserts of run ``run`` with their positions: by the row's index among the run's new
    rows, so that each part of the new day numbers its own rows."""
    first_id = run * rows_per_day + 1
    return frame.with_columns(((run << RUN_SHIFT) + INSERT_BASE - first_id
                               + pl.col("sale_id")).alias(LSN))


def replay(table: pl.DataFrame, feed: pl.DataFrame) -> pl.DataFrame:
    """Apply one run's feed to a table of sales rows (with ``sale_date``), as a MERGE would:
    each sale takes its last event (by ``lsn``, when the feed has positions)."""
    if LSN in feed.columns:
        feed = feed.sort(LSN).unique("sale_id", keep="last", maintain_order=True)
    after = (feed.filter(pl.col("op") != "delete")
             .select(pl.col("after").struct.unnest(), pl.col(PARTITION_KEY)))
    # diagonal: after a schema change the images have channel and older rows do not.
    return (pl.concat([table.join(feed.select("sale_id"), on="sale_id", how="anti"), after],
                      how="diagonal_relaxed")
            .sort("sale_id"))
