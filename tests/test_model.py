"""Invariants of the simulated source table across runs, and feed replay against the snapshots.

A small history is walked run by run (every kind of change on, several files per day), keeping
each day's state in memory; every invariant of DESIGN.md's ``sales`` table is checked between
consecutive snapshots, and the state of a day computed from the keys alone must equal the
walked one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import date

import numpy as np
import polars as pl
import pytest

import fastgen
from fastgen import ChangeModel, Model, SalesModel, Simulation
from fastgen.formats import feed as feed_format
from fastgen.kernels import changes as ck
from fastgen.schema import sales_frame

try:
    from tests import naive
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    import naive

ints = naive.ints
START = date(2025, 9, 1)
US_PER_DAY = naive.US_PER_DAY
NOT_DELETED = naive.NOT_DELETED
COLUMNS = naive.SALES_COLUMNS
# Every kind of change, often enough to meet each other: a row updated, then soft-deleted; a
# late row updated; rows hard-deleted from days that later receive late rows.
BUSY = ChangeModel(update_rate=0.2, delete_rate=0.05, delete_mode="mixed", late_share=0.05)
ROWS, RUNS = 20_000, 12


def part_rows(parts, day: int) -> pl.DataFrame:
    cols = {name: np.concatenate([p.columns[name][p.alive] for p in parts]).astype(np.int64)
            for name in COLUMNS}
    frame = pl.DataFrame(cols)
    return frame.with_columns(pl.lit(day, pl.Int64).alias("day"))


@dataclass
class History:
    sim: Simulation
    snapshots: list[pl.DataFrame]  # after run T: every row of every day, int64, with "day"
    kinds: list[pl.DataFrame]  # per run: sale_id, kind of each change it made, and its day


def walk(model: Model, runs: int) -> History:
    sim = Simulation(model, START)
    parts: dict[int, list] = {}
    snapshots, kinds = [], []
    for run in range(runs):
        made = []
        for day, day_parts in parts.items():
            for part in day_parts:
                captured = part.advance(sim, run, capture=True).get(run)
                if captured is not None and captured.kinds.size:
                    made.append(pl.DataFrame({
                        "sale_id": captured.after["sale_id"].astype(np.int64),
                        "kind": captured.kinds.astype(np.int64),
                        "day": np.full(captured.kinds.size, day, np.int64)}))
        parts[run] = [sim.new_part(run, k) for k in range(sim.parts())]
        snapshots.append(pl.concat([part_rows(p, d) for d, p in parts.items()]))
        kinds.append(pl.concat(made) if made else
                     pl.DataFrame(schema={"sale_id": pl.Int64, "kind": pl.Int64, "day": pl.Int64}))
    return History(sim, snapshots, kinds)


@pytest.fixture(scope="module")
def history() -> History:
    # rows_per_file below rows_per_day: three files per day, late rows in the last one
    return walk(Model(seed=2024, sales=SalesModel(rows_per_day=ROWS), changes=BUSY,
                      rows_per_file=7_000), RUNS)


def run_of(sale_id, rows: int = ROWS):
    return (sale_id - 1) // rows


# ---- identity of rows ------------------------------------------------------------------------
def test_every_kind_of_change_happens(history):
    allk = pl.concat(history.kinds)["kind"].value_counts().sort("kind")
    got = dict(zip(allk["kind"].to_list(), allk["count"].to_list()))
    assert all(got.get(k, 0) > 50 for k in (ck.UPDATE, ck.SOFT_DELETE, ck.HARD_DELETE)), got
    last = history.snapshots[-1]
    assert (last["version"] >= 3).any(), "no row was changed twice"
    late = last.filter(pl.col("day") != run_of(pl.col("sale_id")))
    assert late.height > 1000 and (late["version"] > 1).any()


def test_sale_ids_unique_across_the_dataset(history):
    for t, snap in enumerate(history.snapshots):
        assert snap["sale_id"].is_unique().all(), f"duplicate sale_id after run {t}"
    inserted = np.concatenate([history.sim.inserts(r)[0]["sale_id"].to_numpy()
                               for r in range(RUNS)])
    np.testing.assert_array_equal(np.sort(inserted), np.arange(1, RUNS * ROWS + 1))


def test_on_time_ids_increase_with_sold_at(history):
    sim = history.sim
    previous_max = 0
    for d in range(RUNS):
        day = ints(sim.day(d))
        ids, sold = day["sale_id"].to_numpy(), day["sold_at"].to_numpy()
        assert (np.diff(ids) > 0).all(), f"day {d} is not ordered by sale_id"
        assert (np.diff(sold) >= 0).all(), f"day {d}: sale_id order is not sold_at order"
        assert ids.min() > previous_max, f"day {d}'s ids do not continue after day {d - 1}'s"
        assert (run_of(ids) == d).all()
        start = sim.day_start_us(d)
        assert ((sold >= start) & (sold < start + US_PER_DAY)).all()
        previous_max = ids.max()


def test_rows_land_in_their_sold_at_day_and_late_rows_are_created_later(history):
    sim = history.sim
    snap = history.snapshots[-1]
    start = np.array([sim.day_start_us(d) for d in range(RUNS)])
    day = snap["day"].to_numpy()
    sold = snap["sold_at"].to_numpy()
    created = snap["created_at"].to_numpy()
    born = run_of(snap["sale_id"].to_numpy())
    assert ((sold >= start[day]) & (sold < start[day] + US_PER_DAY)).all(), "sold_at outside day"
    assert ((created >= start[born]) & (created < start[born] + US_PER_DAY)).all(), \
        "created_at outside the day of the run that created the row"
    on_time = born == day
    assert (created[on_time] == sold[on_time]).all(), "created_at != sold_at for an on-time sale"
    lateness = born[~on_time] - day[~on_time]
    assert lateness.min() >= 1 and lateness.max() <= BUSY.late_max_days


def test_inserts_are_what_the_snapshot_gains(history):
    """inserts(r) rows, on their landing days, are exactly the rows run r adds."""
    for r in (0, 1, 5, RUNS - 1):
        frame, landing = history.sim.inserts(r)
        new = ints(frame).with_columns(pl.Series("day", landing.astype(np.int64)))
        snap = history.snapshots[r]
        got = snap.filter(run_of(pl.col("sale_id")) == r).sort("sale_id")
        assert got.equals(new.sort("sale_id").select(got.columns)), f"run {r}"
        assert (new["version"] == 1).all() and (new["updated_at"] == new["created_at"]).all()


# ---- changes across runs ---------------------------------------------------------------------
def _pairs(history: History):
    for t in range(1, RUNS):
        before = history.snapshots[t - 1]
        after = history.snapshots[t]
        yield t, before, after, history.kinds[t]


def test_updated_at_never_decreases_and_versions_count_changes(history):
    sim = history.sim
    for t, before, after, kinds in _pairs(history):
        both = before.join(after, on="sale_id", suffix="_new")
        assert (both["day"] == both["day_new"]).all(), f"a row moved day in run {t}"
        assert (both["updated_at_new"] >= both["updated_at"]).all(), \
            f"updated_at decreased in run {t}"
        changed = both.filter(pl.col("version_new") != pl.col("version"))
        assert (changed["version_new"] == changed["version"] + 1).all(), \
            f"a row changed twice in run {t}"
        run_start = sim.day_start_us(t)
        assert changed["updated_at_new"].is_between(run_start, run_start + US_PER_DAY,
                                                    closed="left").all(), \
            f"updated_at of a change of run {t} is outside run {t}'s day"
        assert (changed["updated_at_new"] > changed["updated_at"]).all()
        same = both.filter(pl.col("version_new") == pl.col("version"))
        for name in COLUMNS[1:]:
            assert (same[name] == same[f"{name}_new"]).all(), f"{name} changed without a version"
        # the rows that changed are exactly those the run reports as updated or soft-deleted
        reported = kinds.filter(pl.col("kind").is_in([ck.UPDATE, ck.SOFT_DELETE]))["sale_id"]
        assert sorted(changed["sale_id"].to_list()) == sorted(reported.to_list()), f"run {t}"


def test_version_one_rows_are_untouched(history):
    for t, snap in enumerate(history.snapshots):
        v1 = snap.filter(pl.col("version") == 1)
        assert (v1["updated_at"] == v1["created_at"]).all(), f"run {t}"
        assert not v1["is_deleted"].cast(pl.Boolean).any()
        assert (v1["deleted_at"] == NOT_DELETED).all()
        assert (snap["version"] >= 1).all()


def test_soft_deletes_are_marked_and_final(history):
    for t, before, after, kinds in _pairs(history):
        deleted = before.filter(pl.col("is_deleted") == 1)
        again = after.join(deleted.select("sale_id"), on="sale_id", how="semi")
        assert again.height == deleted.height, f"a soft-deleted row vanished in run {t}"
        assert again.sort("sale_id").equals(deleted.sort("sale_id").select(again.columns)), \
            f"a soft-deleted row was changed again in run {t}"
        soft = after.filter(pl.col("is_deleted") == 1)
        assert (soft["deleted_at"] == soft["updated_at"]).all()
        assert (after.filter(pl.col("is_deleted") == 0)["deleted_at"] == NOT_DELETED).all()


def test_hard_deleted_rows_never_come_back(history):
    gone: set[int] = set()
    for t, before, after, kinds in _pairs(history):
        assert not gone & set(kinds["sale_id"].to_list()), \
            f"run {t} changes a row that an earlier run hard-deleted"
        missing = before.join(after, on="sale_id", how="anti")
        reported = kinds.filter(pl.col("kind") == ck.HARD_DELETE)["sale_id"]
        assert sorted(missing["sale_id"].to_list()) == sorted(reported.to_list()), \
            f"rows vanished in run {t} without a hard delete, or the reverse"
        assert not (missing["is_deleted"] == 1).any(), "a soft-deleted row was hard-deleted"
        gone |= set(missing["sale_id"].to_list())
        assert not gone & set(after["sale_id"].to_list()), f"a hard-deleted row is back in run {t}"
    assert gone


def test_amount_exact_after_updates(history):
    prices: dict[int, int] = {}
    for t, snap in enumerate(history.snapshots):
        assert (snap["amount"] == snap["quantity"] * snap["unit_price"]).all(), f"run {t}"
        q = snap["quantity"]
        assert q.min() >= 1 and q.max() <= 100
        per = snap.group_by("product_id").agg(pl.col("unit_price").n_unique().alias("n"),
                                              pl.col("unit_price").first())
        assert (per["n"] == 1).all(), f"a product has two prices after run {t}"
        for p, c in zip(per["product_id"].to_list(), per["unit_price"].to_list()):
            assert prices.setdefault(p, c) == c


@pytest.mark.parametrize("run", [0, 3, RUNS - 1])
def test_inserts_of_a_part_are_the_inserts_and_the_new_part(history, run):
    """The writer's one fill per part (inserts_of_part, part_of_inserts) against the two it
    replaces: the run's inserts in the part's range, and the part as its run wrote it; changes
    replayed into the part leave the inserts as made."""
    sim = history.sim
    for k in range(sim.parts()):
        lo, hi = sim._part_range(k)
        inserted, landing = sim.inserts_of_part(run, k)
        frame, expected_landing = sim.inserts(run, lo, hi)
        assert sales_frame(inserted).equals(frame)
        assert np.array_equal(landing, expected_landing)
        part = sim.part_of_inserts(run, k, inserted, landing == run)
        reference = sim.new_part(run, k)
        assert np.array_equal(part.slots, reference.slots)
        assert part.frame().equals(reference.frame())
        part.advance(sim, RUNS - 1)
        assert sales_frame(inserted).equals(frame)


def test_touched_covers_every_day_that_changed(history):
    sim = history.sim
    for t, before, after, kinds in _pairs(history):
        changed_days = set(kinds["day"].to_list())
        changed_days |= set(after.join(before, on="sale_id", how="anti")["day"].to_list())
        assert changed_days <= set(sim.touched(t).tolist()), f"run {t}"
        assert set(kinds["day"].to_list()) <= set(sim.chosen_days(t).tolist())


# ---- random access ---------------------------------------------------------------------------
@pytest.mark.parametrize("run", [RUNS // 2, RUNS - 1])
def test_partition_from_keys_equals_the_walked_state(history, run):
    snap = history.snapshots[run]
    for d in range(run + 1):
        direct = ints(history.sim.partition(d, run))
        walked = snap.filter(pl.col("day") == d).drop("day")
        assert direct.sort("sale_id").equals(walked.sort("sale_id")), \
            f"partition({d}, {run}) differs from replaying runs {d}..{run}"


def test_partition_content_does_not_depend_on_rows_per_file(history):
    one_file = Simulation(Model(seed=2024, sales=SalesModel(rows_per_day=ROWS), changes=BUSY),
                          START)
    assert one_file.parts() == 1 and history.sim.parts() == 3
    for d in (0, 4, RUNS - 2):
        a = ints(one_file.partition(d, RUNS - 1)).sort("sale_id")
        b = ints(history.sim.partition(d, RUNS - 1)).sort("sale_id")
        assert a.equals(b), f"day {d} depends on rows_per_file"


def test_day_is_partition_before_any_change(history):
    sim = history.sim
    for d in (0, 3):
        assert sim.day(d).equals(sim.partition(d, d))
        day = ints(sim.day(d))
        assert (day["version"] == 1).all() and day.height == ROWS - sim.late(d)[0].size


@pytest.mark.parametrize("changes", [
    ChangeModel(update_rate=1e-20, delete_rate=0.0),
    ChangeModel(late_share=1e-20),
], ids=["update-rate-1e-20", "late-share-1e-20"])
def test_vanishing_rates_change_nothing(changes):
    """Rates are validated as [0, 1]; a rate of 1e-20 must behave like (almost surely) 0.

    Known bug: the geometric gap floor(log1p(-u) / log1p(-p)) overflows int64 for p below
    ~1e-18 (fastgen/kernels/changes.py, geometric_positions and replay), giving negative
    slots: rows get changed, or late rows get negative indices.
    """
    off = dataclasses.replace(changes, **{name: 0.0 for name in ("update_rate", "late_share")
                                          if getattr(changes, name) < 1e-3})
    tiny = Simulation(Model(seed=0, sales=SalesModel(rows_per_day=1_000), changes=changes), START)
    zero = Simulation(Model(seed=0, sales=SalesModel(rows_per_day=1_000), changes=off), START)
    late_rows, _ = tiny.late(3)
    assert late_rows.size == 0 or (late_rows.min() >= 0 and late_rows.max() < 1_000), (
        f"late rows at impossible indices {late_rows[:3]} with late_share=1e-20 "
        "(int64 overflow of the geometric gap in fastgen/kernels/changes.py)")
    for d in range(6):
        assert tiny.partition(d, 6).equals(zero.partition(d, 6)), (
            f"day {d}: a rate of 1e-20 changed rows (int64 overflow of the geometric gap in "
            "fastgen/kernels/changes.py)")


# ---- feed replay -----------------------------------------------------------------------------
FEED_RUNS = 32


@pytest.fixture(scope="module")
def feed_dataset(tmp_path_factory):
    model = Model(seed=31, sales=SalesModel(rows_per_day=3_000),
                  changes=ChangeModel(update_rate=0.15, delete_rate=0.03, delete_mode="mixed",
                                      late_share=0.05))
    root = tmp_path_factory.mktemp("feed") / "data"
    fastgen.generate(root, days=FEED_RUNS, model=model, start=START)
    return root, walk(model, FEED_RUNS)


def _read_feed(root, sim: Simulation, run: int) -> pl.DataFrame:
    folder = root / "changes" / f"run_date={sim.date_of(run)}"
    files = sorted(folder.glob("*.parquet"))
    assert files, f"no feed for run {run}"
    return pl.concat([pl.read_parquet(f, hive_partitioning=False) for f in files])


def test_feed_replay_equals_snapshot_after_every_run(feed_dataset):
    """Applying the feeds of runs 0..T in order to an empty table gives the state after run T."""
    root, walked = feed_dataset
    sim = walked.sim
    table = None
    for t in range(FEED_RUNS):
        feed = _read_feed(root, sim, t)
        assert (feed["commit_version"] == t).all()
        assert feed["sale_id"].is_unique().all(), f"run {t} touches a sale_id twice"
        assert set(feed["op"].unique().to_list()) <= {"insert", "update", "delete"}
        inserts = feed.filter(pl.col("op") == "insert")
        assert inserts["before"].is_null().all() and not inserts["after"].is_null().any()
        deletes = feed.filter(pl.col("op") == "delete")
        assert deletes["after"].is_null().all() and not deletes["before"].is_null().any()
        if table is None:
            assert (feed["op"] == "insert").all()
            table = feed.select(pl.col("after").struct.unnest(), pl.col("sale_date")).clear()
        else:
            # before images are the rows as they were: Debezium semantics
            olds = feed.filter(pl.col("op") != "insert").select(
                pl.col("before").struct.unnest(), pl.col("sale_date"))
            current = table.join(olds.select("sale_id"), on="sale_id", how="semi")
            assert ints(olds).sort("sale_id").equals(ints(current).sort("sale_id")), \
                f"before images of run {t} are not the rows as they were"
        table = feed_format.replay(table, feed)
        expected = walked.snapshots[t].with_columns(
            (pl.lit(START) + pl.duration(days=pl.col("day"))).cast(pl.Date).alias("sale_date")
        ).drop("day").sort("sale_id")
        got = ints(table).sort("sale_id").select(expected.columns)
        assert got.height == expected.height, \
            f"after run {t}: {got.height} rows, not {expected.height}"
        assert got.equals(expected), f"replaying feeds 0..{t} does not give the state after run {t}"
    kinds = pl.concat(walked.kinds)["kind"]
    assert (kinds == ck.HARD_DELETE).sum() > 20 and (kinds == ck.SOFT_DELETE).sum() > 20


def test_feed_replay_equals_the_exported_sales(feed_dataset):
    root, walked = feed_dataset
    sim = walked.sim
    table = None
    for t in range(FEED_RUNS):
        feed = _read_feed(root, sim, t)
        if table is None:
            table = feed.select(pl.col("after").struct.unnest(), pl.col("sale_date")).clear()
        table = feed_format.replay(table, feed)
    export = fastgen.scan(root).collect()
    cols = list(COLUMNS) + ["sale_date"]
    a = ints(table.select(cols)).sort("sale_id")
    b = ints(export.select(cols).with_columns(pl.col("sale_date").cast(pl.Date))).sort("sale_id")
    assert a.equals(b), "feeds replayed differ from data/sales after the last run"
