"""A part: one file's worth of one day, as kernel arrays by slot, and how it moves through runs.

A part is made from the keys (``Simulation.new_part``) or from its committed file
(``Part.from_frame``), then moved forward run by run (``Part.advance``): late rows that land
on its day are appended, and the changes of every run that picked its day are replayed in
place, with the row images of what each run did when asked. Only a simulation's keys and
tables are read; nothing here touches the disk.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fastgen.limits import MAX_CHANGES_PER_RUN
from fastgen.kernels import changes as ck
from fastgen.kernels.random import Stream
from fastgen.schema import (CHANNEL, NO_CHANNEL, NOT_DELETED, channel_codes, sales_frame,
                            source_columns)

if TYPE_CHECKING:
    from fastgen.model import Simulation

# Columns a change can alter, in the order of the replay kernel's before_* arguments.
_CHANGING = ("quantity", "amount", "updated_at", "version", "is_deleted", "deleted_at")
# The keys of one run's changes to one day, in the order of the replay kernel's run_keys.
_STREAMS = (Stream.CHANGE_PICK, Stream.CHANGE_KIND, Stream.CHANGE_TIME, Stream.CHANGE_QUANTITY,
            Stream.CHANGE_REPEAT, Stream.LATE_COMMIT)


@dataclass
class Changes:
    """What one run did to one part: kinds (see kernels.changes) with row images."""

    kinds: np.ndarray
    before: dict[str, np.ndarray]
    after: dict[str, np.ndarray]


@dataclass
class Part:
    """One file's worth of one day: arrays by slot, holes and hard deletes marked not alive."""

    day: int
    index: int
    run: int  # changes of runs <= run are applied
    slots: np.ndarray
    alive: np.ndarray
    columns: dict[str, np.ndarray]
    channel_from: int = 0  # the run from which the file has the column channel (0: never)
    # The last run that rewrote the day's files (-1: as ``run``), kept with a schema change.
    written: int = -1

    def frame(self) -> pl.DataFrame:
        """The part's file: without the column channel if it was last written before the
        schema change (``schema.source_columns``)."""
        written = self.run if self.written < 0 else self.written
        return sales_frame(source_columns(self.columns, 0 < self.channel_from <= written),
                           keep=self.alive)

    @classmethod
    def from_frame(cls, sim: Simulation, day: int, index: int, run: int,
                   frame: pl.DataFrame) -> Part:
        """Part ``index`` of ``day`` from its export after ``run`` (as written to disk).

        The inverse of ``Part.frame``: a daily run starts from the committed file of a day
        instead of replaying its whole history. Slots come back from sale_ids: on-time rows
        by their index in the day's run, late rows by their place among the day's late ids.
        """
        cols = {name: frame[name].to_numpy() for name in ("sale_id", "store_id", "product_id",
                                                          "quantity", "version", "is_deleted")}
        for name in ("sold_at", "created_at", "updated_at", "deleted_at"):
            cols[name] = frame[name].dt.epoch("us").fill_null(NOT_DELETED).to_numpy()
        for name in ("unit_price", "amount"):
            cols[name] = (frame[name] * 100).cast(pl.Int64).to_numpy()
        if sim.model.stress.schema_change_run:  # files written before it have no channel
            cols[CHANNEL] = (channel_codes(frame[CHANNEL]) if CHANNEL in frame.columns
                             else np.full(frame.height, NO_CHANNEL, np.int8))
        # Polars hands out read-only views; the changes write into these arrays.
        cols = {name: np.array(col, copy=not col.flags.writeable) for name, col in cols.items()}
        first_id = day * sim.rows + 1
        slots = cols["sale_id"] - first_id
        late = slots >= sim.rows
        if late.any():
            late_ids = np.concatenate([r * sim.rows + rows + 1
                                       for r, rows in sim.late_into(day, run)])
            slots[late] = sim.rows + np.searchsorted(late_ids, cols["sale_id"][late])
        return cls(day, index, run, slots, np.ones(slots.size, np.bool_), cols,
                   sim.model.stress.schema_change_run)

    def advance(self, sim: Simulation, run: int, capture: bool = False) -> dict[int, Changes]:
        """Move forward to after ``run``: add late rows, replay changes, in place.

        With ``capture``, return what each replayed run did, as row images before and after.
        """
        captured: dict[int, Changes] = {}
        if run <= self.run:
            return captured
        if self.index == sim.parts() - 1:  # late rows land in a day's last part
            self._add_late(sim, self.run, run)
        runs = [r for r in range(self.run + 1, run + 1) if sim.changes_day(r, self.day)]
        if runs and self.slots.size:
            self._replay(sim, runs, capture and runs[-1] == run, captured)
        if self.channel_from:  # which runs rewrote the day matters to the channel only
            rewrites = [r for r in range(self.run + 1, run + 1) if self.day in sim.touched(r)]
            if rewrites:
                self.written = rewrites[-1]
        self.run = run
        return captured

    def _replay(self, sim: Simulation, runs: list[int], capture: bool,
                captured: dict[int, Changes]) -> None:
        """Apply the changes of ``runs`` (which all change this part's day) in one kernel call."""
        c, s, stress = sim.model.changes, sim.model.sales, sim.model.stress
        late_count = {r: rows.size for r, rows in sim.late_into(self.day, runs[-1])}
        existing = np.array([sim.rows + sum(n for r2, n in late_count.items() if r2 < r)
                             for r in runs], dtype=np.int64)
        keys = np.array([[sim.key(st, r, self.day) for st in _STREAMS] for r in runs],
                        dtype=np.uint64)
        starts = np.array([sim.day_start_us(r) for r in runs], dtype=np.int64)
        same_day = np.array([r == self.day for r in runs], dtype=np.bool_)
        rates = np.where(same_day, stress.same_day_share, sim.change_rate)
        col = self.columns
        if col["updated_at"] is col["sold_at"]:
            col["updated_at"] = col["updated_at"].copy()  # about to change; created_at stays
        # A row changes at most MAX_CHANGES_PER_RUN times in one run, once without repeats.
        size = self.slots.size * (MAX_CHANGES_PER_RUN if stress.repeat_share else 1) \
            if capture else 0
        positions, kinds = np.empty(size, np.int64), np.empty(size, np.int8)
        before = {name: np.empty(size, col[name].dtype) for name in _CHANGING}
        count = ck.replay(keys, starts, existing, rates, same_day, sim.delete_given_change,
                          c.soft_share, stress.repeat_share, MAX_CHANGES_PER_RUN,
                          stress.late_commit_share, sim.late_commit_us, sim.hour_cdf,
                          s.quantity_min, s.quantity_max, self.slots, self.alive,
                          col["quantity"], col["unit_price"], col["amount"], col["updated_at"],
                          col["version"], col["is_deleted"], col["deleted_at"], positions, kinds,
                          *(before[name] for name in _CHANGING))
        if capture:
            captured[runs[-1]] = _images(col, positions[:count], kinds[:count],
                                         {name: v[:count] for name, v in before.items()})

    def _add_late(self, sim: Simulation, after_run: int, upto_run: int) -> None:
        pieces = [(r, rows) for r, rows in sim.late_into(self.day, upto_run) if r > after_run]
        if not pieces:
            return
        new = [sim.late_rows(self.day, r, rows) for r, rows in pieces]
        base = sim.rows + sum(r.size for _, r in sim.late_into(self.day, after_run))
        count = sum(r.size for _, r in pieces)
        self.columns = {k: np.concatenate([v] + [n[k] for n in new])
                        for k, v in self.columns.items()}
        self.slots = np.concatenate([self.slots, np.arange(base, base + count, dtype=np.int64)])
        self.alive = np.concatenate([self.alive, np.ones(count, np.bool_)])


def _images(col: dict[str, np.ndarray], positions: np.ndarray, kinds: np.ndarray,
            before: dict[str, np.ndarray]) -> Changes:
    """Row images of captured changes: a row changed again in the run is, after one change,
    what it is before the next; after its last change, what the part holds now."""
    after = {name: v[positions] for name, v in col.items()}
    again = np.flatnonzero(positions[1:] == positions[:-1])
    images = {name: before[name] if name in before else after[name] for name in col}
    for name in _CHANGING:
        after[name][again] = before[name][again + 1]
    return Changes(kinds, images, after)
