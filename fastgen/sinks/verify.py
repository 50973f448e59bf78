"""Check a target's ``sales`` against the ground truth of the last run applied to it.

Per day: rows, live rows, sum(amount) and the order-independent row hash of
``fastgen.digest``. The database encodes its columns as the kernels do (``Target.encoded``)
and ``digest_arrays`` digests them, so a difference in any column of any row shows. The
truth is the dataset's state after the target's own position (``Dataset.snapshot``), so a
target that is behind is checked for what it claims to hold; that it is behind is said too.
A target that applied that run from its feed holds what the feed delivered: without the events
the source held back to the next run (stress mode late events, ``fastgen.delivered``).
Days are read a batch at a time (``BATCH_ROWS``): memory stays bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import polars as pl

from fastgen import delivered
from fastgen.dataset import Dataset
from fastgen.digest import digest_arrays
from fastgen.schema import CHANNEL, SALES_COLUMNS
from fastgen.sinks.base import Target
from fastgen.sinks.position import fingerprint

BATCH_ROWS = 2_000_000
EPOCH = date(1970, 1, 1)
KEYS = ("rows", "live_rows", "amount", "row_hash")


@dataclass(frozen=True)
class Report:
    problems: list[str]  # empty when every day matches
    run: int | None  # the target's position (None: nothing applied)
    run_date: date | None
    days: int  # days checked
    behind: str | None  # "the dataset is at run N (date)" when the target is behind it


def verify(dataset: Dataset, target: Target) -> Report:
    """Each day of ``sales`` that differs from the truth after the target's last run."""
    with target.reading():
        if not target.has_tables():
            return Report([f"{target.name} has no fastgen tables; run `fastgen sink` first"],
                          None, None, 0, None)
        target.check_shape()
        where = target.position()
        if where is None:
            return Report([f"{target.name} has never been applied to"], None, None, 0, None)
        if where.dataset != fingerprint(dataset):
            return Report([f"{target.name} holds another dataset than {dataset.root}"],
                          where.last_run, where.last_run_date, 0, None)
        state = dataset.snapshot(where.last_run)
        if state is None:
            return Report([f"{target.name} is at run {where.last_run} "
                           f"({where.last_run_date}), which {dataset.root} has not made"],
                          where.last_run, where.last_run_date, 0, None)
        truth = delivered.truth(state["partitions"], state) if where.fed else state["partitions"]
        problems = compare(truth, target)
    last = dataset.last_run()
    behind = (f"the dataset is at run {last} ({dataset.sim.date_of(last)})"
              if last > where.last_run else None)
    return Report(problems, where.last_run, where.last_run_date, len(state["partitions"]),
                  behind)


def compare(truth: dict[str, dict], target: Target, place: str = "the database") -> list[str]:
    """Differences between the manifest's days (``truth``) and the target's, by day, each
    in one line that names the day (and calls the target ``place``)."""
    counts = target.day_counts()
    problems = []
    present = sorted(counts)
    for first, last in _batches(present, counts):
        for day, actual in _digests(target.encoded(first, last)).items():
            expected = truth.get(day.isoformat())
            if expected is None:
                problems.append(f"day {day}: {actual['rows']} rows in {place}, none in the "
                                "dataset")
                continue
            for key in KEYS:
                if actual[key] != expected[key]:
                    problems.append(f"day {day}: {key} is {actual[key]} in {place}, "
                                    f"the manifest says {expected[key]}")
    for day, expected in truth.items():
        if date.fromisoformat(day) not in counts and expected["rows"]:
            problems.append(f"day {day}: missing from {place} ({expected['rows']} rows "
                            "in the dataset)")
    return sorted(problems)


def _digests(frame: pl.DataFrame) -> dict[date, dict]:
    """Digest of each day of an encoded frame (``Target.encoded``)."""
    day = frame["day"].to_numpy()
    order = np.argsort(day, kind="stable")
    values, starts = np.unique(day[order], return_index=True)
    ends = np.append(starts[1:], day.size)
    arrays = {n: np.ascontiguousarray(frame[n].to_numpy()[order], dtype=np.int64)
              for n in SALES_COLUMNS}
    if CHANNEL in frame.columns:  # a table that has the column a schema change added
        arrays[CHANNEL] = frame[CHANNEL].cast(pl.Int8).to_numpy()[order]
    return {EPOCH + timedelta(days=int(v)):
            digest_arrays([{n: a[lo:hi] for n, a in arrays.items()}]).to_json()
            for v, lo, hi in zip(values, starts, ends)}


def _batches(days: list[date], counts: dict[date, int]) -> list[tuple[date, date]]:
    """Ranges of consecutive present days of at most BATCH_ROWS rows (a day may exceed it)."""
    out: list[list[date]] = []
    rows = 0
    for day in days:
        if out and rows + counts[day] <= BATCH_ROWS:
            out[-1].append(day)
            rows += counts[day]
        else:
            out.append([day])
            rows = counts[day]
    return [(batch[0], batch[-1]) for batch in out]
