"""The simulation as pure functions of ``(model, start date, day, run)`` (DESIGN.md sections 1-2).

Words: run *r* is the r-th simulated day of work (run 0 is the start date); day *d* is the
partition of sales whose sold_at falls on start + d. Run *r* inserts ``rows_per_day`` new
rows with ids ``r * rows_per_day + i + 1`` (i = 0.., ordered by created_at); a few of them are
late and land on an earlier day. Then it changes rows of earlier days, picked per day.

The state of day *d* after run *T* is computed from the keys alone, never read from disk:
its on-time rows are regenerated, its late rows (from runs d+1..d+7) are added, and the
changes of every run that picked *d* are replayed. Changes are picked by geometric skips, so
replaying a run costs O(rows it changes), and a daily run costs what it touches. A day's
file is a ``Part`` (``fastgen.part``), which moves itself through runs with these keys.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from functools import lru_cache

import numpy as np
import polars as pl

from fastgen.config import Model
from fastgen.kernels import changes as ck
from fastgen.kernels import sales as sk
from fastgen.kernels.random import Stream, derive_key, uniforms, uniforms_at
from fastgen.part import Part
from fastgen.schema import (CHANNEL, CHANNEL_WEIGHTS, NO_CHANNEL, NOT_DELETED, sales_frame,
                            source_columns)

US_PER_DAY = 86_400_000_000
EPOCH = date(1970, 1, 1)
# Kernel call size while filling one file's rows; any value gives the same bytes.
DEFAULT_CHUNK_ROWS = 1 << 20


def hour_probabilities(model: Model) -> np.ndarray:
    """P(hour = h) under the wrapped mixture of Gaussians over the time of day (24 values)."""
    s = model.sales
    weights = np.asarray(s.rush_weights, dtype=np.float64) / sum(s.rush_weights)

    def cdf(x: float, mu: float) -> float:
        return 0.5 * (1.0 + math.erf((x - mu) / (s.rush_sigma * math.sqrt(2.0))))

    # The day wraps: mass that spills past midnight lands on the other side, as many days
    # out as 10 sigma reach.
    wraps = range(-math.ceil(10 * s.rush_sigma / 24) - 1, math.ceil(10 * s.rush_sigma / 24) + 2)
    p = np.zeros(24)
    for w, mu in zip(weights, s.rush_hours):
        for h in range(24):
            p[h] += w * sum(cdf(h + 1 + 24 * k, mu) - cdf(h + 24 * k, mu) for k in wraps)
    return p / p.sum()


def zipf_weights(n: int, skew: float) -> np.ndarray:
    return np.arange(1, n + 1, dtype=np.float64) ** -skew


class Simulation:
    """All of a dataset's values, addressable by day and run. Cheap to build; caches per-run tables."""

    def __init__(self, model: Model, start: date, *, chunk_rows: int = DEFAULT_CHUNK_ROWS):
        self.model = model.validate()
        self.start = start
        self.chunk_rows = chunk_rows
        self.rows = model.sales.rows_per_day
        s, c = model.sales, model.changes
        self.hour_cdf = np.concatenate([[0.0], np.cumsum(hour_probabilities(model))])
        # The running sum can round above 1 before its end, which would give the last hour a
        # negative probability; capping changes nothing when it does not.
        self.hour_cdf = np.minimum(self.hour_cdf, 1.0)
        self.hour_cdf[-1] = 1.0
        self.store_prob, self.store_alias = sk.alias_table(zipf_weights(s.stores, s.store_skew))
        self.product_prob, self.product_alias = sk.alias_table(
            zipf_weights(s.products, s.product_skew))
        u = uniforms(np.uint64(derive_key(model.seed, Stream.PRICE)), 0, s.products)
        lo, hi = math.log(s.price_min_cents), math.log(s.price_max_cents)
        self.prices = np.clip(np.rint(np.exp(lo + u * (hi - lo))), s.price_min_cents,
                              s.price_max_cents).astype(np.int64)
        self.change_rate = c.update_rate + c.delete_rate
        self.late_commit_us = round(model.stress.late_commit_max_hours * 3_600_000_000)
        self.delete_given_change = c.delete_rate / self.change_rate if self.change_rate else 0.0
        self.second_start = lru_cache(maxsize=32)(self._second_start)
        # Late rows of recent runs (a touched-days lookup walks back late_max_days runs); a
        # bound, since a run of 50M rows holds about 8 MB of them.
        self.late = lru_cache(maxsize=64)(self._late)
        self.chosen_days = lru_cache(maxsize=None)(self._chosen_days)
        self.chosen_set = lru_cache(maxsize=None)(
            lambda run: frozenset(self.chosen_days(run).tolist()))

    # ---- dates -------------------------------------------------------------------------
    def date_of(self, day: int) -> date:
        return self.start + timedelta(days=day)

    def index_of(self, when: date) -> int:
        return (when - self.start).days

    def day_start_us(self, day: int) -> int:
        return (self.date_of(day) - EPOCH).days * US_PER_DAY

    def key(self, stream: Stream, *parts: int) -> np.uint64:
        return np.uint64(derive_key(self.model.seed, stream, *parts))

    # ---- per-run tables ----------------------------------------------------------------
    def _second_start(self, run: int) -> np.ndarray:
        """Rows before each second of the run's day: a multinomial over the 86,400 seconds."""
        p_second = np.repeat(np.diff(self.hour_cdf) / 3600.0, 3600)
        # numpy's Philox is counter-based too; it is keyed like every other stream.
        gen = np.random.Generator(np.random.Philox(key=int(self.key(Stream.SECOND_COUNTS, run))))
        counts = gen.multinomial(self.rows, p_second / p_second.sum())
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def _late(self, run: int) -> tuple[np.ndarray, np.ndarray]:
        """Row indices of the run's late arrivals, and how many days late each is."""
        c = self.model.changes
        if run == 0 or c.late_share == 0:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        rows = ck.geometric_positions(self.key(Stream.LATE_PICK, run), c.late_share, self.rows)
        max_days = min(c.late_max_days, run)
        cdf = np.cumsum(c.late_decay ** np.arange(max_days))
        u = uniforms_at(self.key(Stream.LATENESS, run), rows)
        days = np.minimum(np.searchsorted(cdf, u * cdf[-1], side="right"), max_days - 1) + 1
        return rows, days.astype(np.int64)

    def _chosen_days(self, run: int) -> np.ndarray:
        """Distinct earlier days that run ``run`` changes: sigmoid-weighted draws with replacement."""
        c = self.model.changes
        history = run
        midpoint = history / 2 if history < c.sigmoid_switch_days else history - c.sigmoid_recent_days
        draws = int(midpoint)
        if draws <= 0 or self.change_rate == 0:
            return np.empty(0, np.int64)
        weights = 1.0 / (1.0 + np.exp(-c.sigmoid_steepness * (np.arange(history) - midpoint)))
        cum = np.cumsum(weights)
        u = uniforms(self.key(Stream.DAY_DRAWS, run), 0, draws) * cum[-1]
        return np.unique(np.minimum(np.searchsorted(cum, u, side="right"), history - 1))

    def changes_day(self, run: int, day: int) -> bool:
        """Whether run ``run`` changes rows of ``day``: a day it chose, or its own new day
        when the stress mode ``same_day_share`` is on."""
        return day in self.chosen_set(run) or (
            run == day and self.model.stress.same_day_share > 0)

    def touched(self, run: int) -> np.ndarray:
        """Days whose export run ``run`` rewrites: its new day, late landings, changed days."""
        rows, days = self.late(run)
        return np.union1d(np.union1d(self.chosen_days(run), run - days), [run])

    def late_into(self, day: int, upto_run: int) -> list[tuple[int, np.ndarray]]:
        """Late rows landing on ``day`` from runs ``day+1..upto_run``, as (run, row indices)."""
        out = []
        for run in range(day + 1, min(day + self.model.changes.late_max_days, upto_run) + 1):
            rows, days = self.late(run)
            picked = rows[days == run - day]
            if picked.size:
                out.append((run, picked))
        return out

    # ---- rows --------------------------------------------------------------------------
    def _new_rows(self, run: int, start: int, stop: int | None = None,
                  rows: np.ndarray | None = None, skip_late: bool = False) -> dict[str, np.ndarray]:
        """Columns of new rows of ``run``: the range start..stop, or the given row indices.

        With ``skip_late``, the run's late arrivals are left out of the range (they live on
        earlier days). created_at and updated_at share sold_at's array until a change.
        """
        late_rows, _ = self.late(run)
        skip = late_rows[(late_rows >= start) & (late_rows < (stop or 0))] if skip_late else \
            late_rows[:0]
        n = (stop - start - skip.size) if rows is None else rows.size
        cols = {
            "sold_at": np.empty(n, np.int64), "store_id": np.empty(n, np.int32),
            "product_id": np.empty(n, np.int32), "quantity": np.empty(n, np.int32),
            "unit_price": np.empty(n, np.int64), "amount": np.empty(n, np.int64),
        }
        keys = np.array([self.key(st, run) for st in
                         (Stream.TIME_IN_SECOND, Stream.STORE, Stream.PRODUCT, Stream.QUANTITY)],
                        dtype=np.uint64)
        s = self.model.sales
        tables = (self.day_start_us(run), self.second_start(run), keys, self.store_prob,
                  self.store_alias, self.product_prob, self.product_alias, self.prices,
                  s.quantity_min, s.quantity_max)
        order = ("sold_at", "store_id", "product_id", "quantity", "unit_price", "amount")
        if rows is None:
            out = 0
            for lo in range(start, stop, self.chunk_rows):
                hi = min(lo + self.chunk_rows, stop)
                chunk_skip = skip[(skip >= lo) & (skip < hi)]
                size = hi - lo - chunk_skip.size
                sk.fill_range(lo, hi, chunk_skip, *tables,
                              *(cols[c][out:out + size] for c in order))
                out += size
            ids = np.setdiff1d(np.arange(start, stop, dtype=np.int64), skip, assume_unique=True) \
                if skip.size else np.arange(start, stop, dtype=np.int64)
        else:
            sk.fill_rows(rows, *tables, *(cols[c] for c in order))
            ids = rows
        cols["sale_id"] = ids + (run * self.rows + 1)
        cols["created_at"] = cols["sold_at"]
        cols["updated_at"] = cols["sold_at"]
        cols["version"] = np.ones(n, np.int32)
        cols["is_deleted"] = np.zeros(n, np.bool_)
        cols["deleted_at"] = np.full(n, NOT_DELETED, np.int64)
        if self.model.stress.schema_change_run:
            cols[CHANNEL] = self._channels(run, ids)
        return cols

    def _channels(self, run: int, rows: np.ndarray) -> np.ndarray:
        """Channel codes of new rows of ``run`` (schema evolution): none before the source
        has the column; then a null with ``channel_null_share``, else drawn by weight."""
        stress = self.model.stress
        codes = np.full(rows.size, NO_CHANNEL, np.int8)
        if not stress.has_channel(run):
            return codes
        u = uniforms_at(self.key(Stream.CHANNEL, run), rows)
        named = u >= stress.channel_null_share
        share = (u[named] - stress.channel_null_share) / (1.0 - stress.channel_null_share)
        cdf = np.cumsum(CHANNEL_WEIGHTS) / sum(CHANNEL_WEIGHTS)
        codes[named] = np.minimum(np.searchsorted(cdf, share, side="right"), len(cdf) - 1)
        return codes

    def late_rows(self, day: int, run: int, rows: np.ndarray) -> dict[str, np.ndarray]:
        """Late rows of ``run`` landing on ``day``: created in the run, sold on the day."""
        cols = self._new_rows(run, 0, rows=rows)
        cols["sold_at"] = self._late_sold_at(run, rows, run - day)
        return cols

    def _late_sold_at(self, run: int, rows: np.ndarray, days: np.ndarray | int) -> np.ndarray:
        """When the late ``rows`` of ``run`` were sold: a time of day, ``days`` before the run."""
        out = np.empty(rows.size, np.int64)
        sk.times_of_day(self.key(Stream.LATE_TIME, run), rows, self.hour_cdf, 0, out)
        return out + (self.day_start_us(run) - np.asarray(days, np.int64) * US_PER_DAY)

    # ---- parts of a day ----------------------------------------------------------------
    def parts(self) -> int:
        return -(-self.rows // self.model.rows_per_file)

    def _part_range(self, index: int) -> tuple[int, int]:
        lo = index * self.model.rows_per_file
        return lo, min(lo + self.model.rows_per_file, self.rows)

    def new_part(self, day: int, index: int) -> Part:
        """Part ``index`` of ``day`` as its own run inserted it, before that run's changes
        (its ``run`` is the one before, so ``advance(day)`` applies them)."""
        lo, hi = self._part_range(index)
        cols = self._new_rows(day, lo, hi, skip_late=True)
        slots = cols["sale_id"] - (day * self.rows + 1)
        return Part(day, index, day - 1, slots, np.ones(slots.size, np.bool_), cols,
                    self.model.stress.schema_change_run)

    def inserts_of_part(self, day: int, index: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """What run ``day`` inserts in the row range of part ``index`` of its new day
        (``inserts(day, lo, hi)`` as arrays), with the day each row lands on: the on-time rows
        are ``new_part(day, index)``, the others late rows sold on earlier days."""
        lo, hi = self._part_range(index)
        inserted = self._new_rows(day, lo, hi)
        return inserted, self._land_late(day, lo, hi, inserted)

    def part_of_inserts(self, day: int, index: int, inserted: dict[str, np.ndarray],
                        on_time: np.ndarray) -> Part:
        """``new_part(day, index)`` from ``inserts_of_part``, in arrays of its own (changes
        replayed into the part leave the inserts as made)."""
        # Late rows' sold_at moved to their day; created_at (= the new rows' sold_at) did not.
        cols = {name: column[on_time] for name, column in inserted.items()
                if name not in ("sold_at", "updated_at")}
        cols["sold_at"] = cols["updated_at"] = cols["created_at"]
        slots = cols["sale_id"] - (day * self.rows + 1)
        return Part(day, index, day - 1, slots, np.ones(slots.size, np.bool_), cols,
                    self.model.stress.schema_change_run)

    def part_state(self, day: int, index: int, run: int) -> Part:
        """Part ``index`` of ``day`` after ``run``, computed from the keys alone."""
        part = self.new_part(day, index)
        part.advance(self, run)
        return part

    # ---- frames ------------------------------------------------------------------------
    def day(self, day: int) -> pl.DataFrame:
        """Day ``day``'s sales after its own run: on-time rows, ordered by sold_at."""
        return self.partition(day, day)

    def partition(self, day: int, run: int) -> pl.DataFrame:
        """The export of ``day`` after ``run``: what ``sales/sale_date=...`` holds then."""
        if not 0 <= day <= run:
            raise ValueError(f"day {day} does not exist after run {run}")
        return pl.concat([self.part_state(day, k, run).frame() for k in range(self.parts())])

    def inserts(self, run: int, start: int = 0, stop: int | None = None
                ) -> tuple[pl.DataFrame, np.ndarray]:
        """Rows ``start..stop`` that ``run`` creates, as inserted, and the day each lands on."""
        stop = self.rows if stop is None else stop
        cols = self._new_rows(run, start, stop)
        landing = self._land_late(run, start, stop, cols)
        return sales_frame(self.columns_in(run, cols)), landing

    def columns_in(self, run: int, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``columns`` as the source has them in ``run`` (``schema.source_columns``)."""
        return source_columns(columns, self.model.stress.has_channel(run))

    def _land_late(self, run: int, start: int, stop: int, cols: dict[str, np.ndarray]
                   ) -> np.ndarray:
        """Move the late rows among ``run``'s new rows ``start..stop`` to the day they were
        sold on (in ``cols``, whose sold_at gets its own array); return each row's day."""
        cols["sold_at"] = cols["sold_at"].copy()  # shared with created_at, which stays
        rows, days = self.late(run)
        inside = (rows >= start) & (rows < stop)
        rows, days = rows[inside], days[inside]
        landing = np.full(stop - start, run, np.int64)
        landing[rows - start] = run - days
        cols["sold_at"][rows - start] = self._late_sold_at(run, rows, days)
        return landing
