"""The survival matrix (issue 13) at a larger size: what each loader's loads cost under each
stress mode, and whether it stays exact.
Run: ``pytest --benchmark-only benchmarks/test_survival.py``.

The matrix is tests/survival.py's (tests/test_survival.py asserts its cells at 2,000 rows a
day): one dataset per mode, grown run by run through ``fastgen generate`` once (a module
fixture, a hard-linked snapshot after each run), and every loader following it into a
database of its own. One benchmark per cell (mode x loader); its rounds are the loader's
loads, one after each run, in order (round k times the load of snapshot k: ``fastgen load``'s
function from opening the warehouse to closing it, or the sink's, or the hand-written merge);
verify after each load runs in the round's teardown, untimed. The rounds do different work
(the first is a bulk load for most loaders), so read ``extra_info`` for the totals.

``extra_info``: the cell's verdict (``exact``, ``wrong on N of M runs``, ``refused``) and the
first problem verify found, the loads' total wall and CPU seconds, rows and bytes read,
the wall seconds of each load, what the loads said (``notes``), rows a day, and the load
average; for the hand-written merge, how its table differs from the last export (sales
brought back after a hard delete, missing, or at an older version; and apart, the sales whose
events the last run held back, which no feed consumer has yet). Asserted (it holds on any
machine): each cell is exact, or not, where tests/test_survival.py expects it, except those
whose verdict DuckDB's thread scheduling decides; seconds are recorded, never asserted.

Environment:

* ``FASTGEN_BENCH_SURVIVAL_ROWS`` rows a day (default 20,000; 5-8 minutes here)
* ``FASTGEN_BENCH_SURVIVAL_RUNS`` runs per mode (default 10)
* ``FASTGEN_BENCH_DIR``           where to build the datasets (default: pytest's tmp folder)
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from benchmarks.suite import bench_folder
from tests.survival import EXACT, LOADERS, MODES, Follow, Merge, grow
from tests.test_survival import COLUMNS, EXPECTED, SOME

ROWS = int(os.environ.get("FASTGEN_BENCH_SURVIVAL_ROWS", "20000"))
RUNS = int(os.environ.get("FASTGEN_BENCH_SURVIVAL_RUNS", "10"))


class Datasets:
    """Each mode's snapshots, grown on first use."""

    def __init__(self, root: Path):
        self.root = root
        self.grown: dict[str, list[Path]] = {}

    def of(self, mode: str) -> list[Path]:
        if mode not in self.grown:
            folder = self.root / f"mode{list(MODES).index(mode)}"
            self.grown[mode] = grow(folder, mode, runs=RUNS, rows_per_day=ROWS)
        return self.grown[mode]


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> Datasets:
    with bench_folder(tmp_path_factory, "survival") as root:
        yield Datasets(root)


CASES = [(mode, loader) for mode in MODES for loader in LOADERS]


@pytest.mark.parametrize("mode, loader", CASES, ids=[f"{m}-{l}" for m, l in CASES])
def test_survival(benchmark, datasets, tmp_path, mode, loader):
    """A loader's load after each run of a mode (one round each, in order), verified after."""
    snapshots = datasets.of(mode)  # outside the timing: the first case of a mode grows it
    follow = Follow(loader, mode, snapshots, tmp_path / "place")
    runs = iter(range(len(snapshots)))

    benchmark.group = f"survival: {mode}"
    benchmark.pedantic(follow.step, setup=lambda: ((next(runs),), {}), teardown=follow.judge,
                       rounds=len(snapshots), iterations=1, warmup_rounds=0)
    cell = follow.finish()  # nothing left unless the benchmark was disabled
    benchmark.extra_info.update(cell.extra_info(), rows_per_day=ROWS,
                                load_average=os.getloadavg()[0])
    if isinstance(follow.loader, Merge):  # what its wrong rows are, after the last run
        benchmark.extra_info["differences"] = follow.loader.differences(snapshots[-1])
    expected = EXPECTED[loader][COLUMNS.index(mode)]
    if expected != SOME:  # else DuckDB's threads decide (tests/test_survival.py)
        assert (cell.verdict == EXACT) == (expected == EXACT), (cell.verdict, cell.why)
