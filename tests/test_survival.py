"""Issue 13's survival matrix, asserted: every loader after every run of every stress mode,
judged by fastgen's own verify (``tests/survival.py`` builds it).

Each cell's verdict is written out below, so that a loader that silently degrades (or a
baseline that starts to survive) fails here. Nine modes x 8 runs of 2,000 rows, 8 loaders:
about 100 s here.
"""

from __future__ import annotations

import re

import polars as pl
import pytest

try:
    from tests.survival import EXACT, LOADERS, MODES, Matrix, matrix
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from survival import EXACT, LOADERS, MODES, Matrix, matrix

from fastgen import delivered
from fastgen.dataset import Dataset

RUNS, ROWS_PER_DAY = 8, 2_000

# The expected matrix: one row per loader, columns in this order.
COLUMNS = ("calm", "hard deletes", "repeat", "same day", "late commit", "schema change",
           "redelivery", "late events", "--stress")
W = "wrong on 6 of 8 runs"  # from run 2: runs 0 and 1 change no earlier day
# Not one verdict: a run's new row and its change on the same day are in two files, and which
# of the two DuckDB's INSERT OR REPLACE keeps depends on the order its scan threads deliver
# them (one thread: always the insert; this machine's 2: the insert in most runs at 2,000
# rows a day: wrong on 5 to 8 of 8 runs in 10 executions; the change in most at 20,000).
SOME = "exact, or wrong on some runs: DuckDB's threads decide"
E = EXACT
EXPECTED: dict[str, tuple[str, ...]] = {
    "full":                    (E, E, E, E, E, E, E, E, E),
    "incremental":             (E, E, E, E, E, E, E, E, E),
    "cdc":                     (E, E, E, E, E, E, E, E, E),
    "watermark":               (E, W, E, E, W, E, E, E, W),
    "watermark --lookback 6h": (E, W, E, E, E, E, E, E, W),
    "scd2":                    (E, E, E, E, E, E, E, E, E),
    "sqlite sink":             (E, E, E, E, E, E, E, E, E),
    # DuckDB's INSERT OR REPLACE keeps the first of two rows of one key that come together
    # (in one batch), with no error: a run's later changes of a sale are lost (repeat), and a
    # sale hard-deleted on its own day comes back (--stress, from run 0). Its column list is
    # written out, so the channel a schema change adds at run 3 never reaches its table. A
    # redelivered row and the same sale's newer change meet in one statement too (which one
    # stays is up to DuckDB's threads again), and so do a held-back event delivered in the
    # tail and the same sale's newer change (late events: 2 sales, in run 7 only; the held
    # image stayed in 4 of 30 executions here, in none of 5 with one thread). Judged, as a feed
    # consumer, against what the feed delivered (fastgen.delivered.truth): against the export
    # it would be wrong from run 2 for the events nobody had sent it yet.
    "merge (no positions)":    (E, E, "wrong on 6 of 8 runs", SOME, E, "wrong on 5 of 8 runs",
                                SOME, SOME, "wrong on 8 of 8 runs"),
}
CELLS = [(loader, mode) for loader in EXPECTED for mode in COLUMNS]


@pytest.fixture(scope="module")
def survived(tmp_path_factory) -> Matrix:
    return matrix(tmp_path_factory.mktemp("survival"), runs=RUNS, rows_per_day=ROWS_PER_DAY)


def test_the_matrix_names_every_mode_and_loader():
    assert COLUMNS == tuple(MODES)
    assert tuple(EXPECTED) == tuple(LOADERS)


def test_each_mode_makes_what_it_is_named_for(survived):
    stress_keys = ("repeat_changes", "same_day_changes", "late_commits")
    made = {mode: survived.counts(mode) for mode in MODES}
    for mode, counts in made.items():
        assert counts["updates"] > 0 and counts["late_rows"] > 0, (mode, counts)
        hard = mode in ("hard deletes", "--stress")
        assert (counts["hard_deletes"] > 0) == hard, (mode, counts)
        assert counts["soft_deletes"] > 0, (mode, counts)
    assert all(made["calm"].get(k, 0) == 0 for k in stress_keys), made["calm"]
    for mode, key in zip(("repeat", "same day", "late commit"), stress_keys):
        assert made[mode][key] > 0, (mode, made[mode])
        assert all(made[mode].get(other, 0) == 0 for other in stress_keys if other != key)
    assert all(made["--stress"][k] > 0 for k in stress_keys), made["--stress"]
    for mode in MODES:  # rows of a run delivered again with the next
        assert (made[mode].get("redelivered", 0) > 0) == (mode in ("redelivery", "--stress"))
    for mode in MODES:  # events of a run held back to the next: a fed target is behind
        late = mode in ("late events", "--stress")
        assert (made[mode].get("late_events", 0) > 0) == late, (mode, made[mode])
        last = Dataset(survived.datasets[mode][-1]).committed()
        assert (delivered.truth(last["partitions"], last) != last["partitions"]) == late, mode
    for mode in MODES:  # the source grows its column at run 3 in these two only
        last = survived.datasets[mode][-1]
        newest = sorted((last / "sales").rglob("*.parquet"))[-1]
        assert ("channel" in pl.read_parquet_schema(newest)) == (
            mode in ("schema change", "--stress")), mode


@pytest.mark.parametrize("loader, mode", CELLS, ids=[f"{l}-{m}" for l, m in CELLS])
def test_cell(survived, loader, mode):
    cell = survived.cells[loader, mode]
    expected = EXPECTED[loader][COLUMNS.index(mode)]
    if expected == SOME:
        assert re.fullmatch(r"exact|wrong on [1-8] of 8 runs", cell.verdict), cell.why
        return
    assert cell.verdict == expected, cell.why
    if expected == EXACT:
        return
    # Wrong from the first run that did what the loader cannot see, and every run after.
    first = RUNS - int(expected.split()[2])
    assert [load.run for load in cell.loads if not load.exact] == list(range(first, RUNS))


@pytest.mark.parametrize("loader", ["watermark", "watermark --lookback 6h"])
def test_a_watermark_says_what_it_cannot_see(survived, loader):
    """Each wrong watermark cell is announced by its loads (LoadStats.notes, one line each);
    a lookback that covers the late commits is exact and says nothing of them."""
    for mode in MODES:
        notes = " ".join(survived.cells[loader, mode].notes)
        hard, late = "hard-deleted" in notes, "beyond the lookback" in notes
        assert hard == (mode in ("hard deletes", "--stress")), (mode, notes)
        assert late == (loader == "watermark" and mode in ("late commit", "--stress")), \
            (mode, notes)


def test_the_baseline_is_wrong_silently(survived):
    """No error from DuckDB: the hand-written merge reports success and keeps wrong rows."""
    for mode in MODES:
        cell = survived.cells["merge (no positions)", mode]
        assert all(load.refused is None for load in cell.loads), cell.why


def test_costs_are_recorded(survived):
    for cell in survived.cells.values():
        assert all(load.seconds > 0 for load in cell.loads), cell
        assert all(load.rows_read > 0 and load.bytes_read > 0 for load in cell.loads[:1]), cell
        assert cell.total("rows_read") > 0 and cell.total("bytes_read") > 0, cell
