"""Generator benchmarks in process (issues 2 and 3). Run with ``pytest --benchmark-only``.

Sizes come from the environment so that a default run takes a few minutes here:

* ``FASTGEN_BENCH_DAY_ROWS``   rows of the fill-kernel day (default 10,000,000, as issue 2 asks)
* ``FASTGEN_BENCH_RUN_ROWS``   rows per day of the daily-run benchmarks (default 1,000,000)
* ``FASTGEN_BENCH_BACKFILL_ROWS`` rows per day of the 90-day backfill (default 100,000; the
  issue's scale setting is 1,000,000)

Ratios that the issues state are measured in the same process, in alternating rounds; like
every figure that depends on the machine they are recorded with the ``target`` fixture and
printed at the end of the session, not asserted (benchmarks/suite.py). The day as users run
it, a whole ``fastgen generate`` process, is benchmarks/test_day.py.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import pytest

from fastgen.config import ChangeModel, Model, SalesModel
from fastgen.dataset import FORMAT_VERSION, Dataset
from fastgen.dataset.manifest import checksum as manifest_checksum
from fastgen.dataset.snapshot import CHECKPOINT_RUNS
from fastgen.digest import digest_arrays
from fastgen.formats import write_file
from fastgen.model import Simulation

START = date(2025, 1, 1)
DAY_ROWS = int(os.environ.get("FASTGEN_BENCH_DAY_ROWS", 10_000_000))
RUN_ROWS = int(os.environ.get("FASTGEN_BENCH_RUN_ROWS", 1_000_000))
BACKFILL_ROWS = int(os.environ.get("FASTGEN_BENCH_BACKFILL_ROWS", 100_000))


def _model(rows: int, **changes) -> Model:
    # One file per day at these sizes, so a day is one kernel call and one write.
    return Model(sales=SalesModel(rows_per_day=rows), rows_per_file=max(rows, 1),
                 changes=replace(ChangeModel(), **changes))


@pytest.fixture(scope="module")
def day_sim() -> Simulation:
    sim = Simulation(_model(DAY_ROWS), START)
    sim.new_part(0, 0)  # compile and fill caches outside the timings
    return sim


def test_fill_kernel_one_day_in_memory(benchmark, target, day_sim):
    """In process, no I/O: ``Simulation._new_rows`` of one day, the numba fill kernel making
    sold_at, store, product, quantity, unit price and amount (int64 cents) chunk by chunk, plus
    the sale ids, as numpy arrays. No frame, no decimals, no file: the whole-process day is
    benchmarks/test_day.py. Target >= 30M rows/s (recorded, not asserted)."""
    benchmark.pedantic(day_sim._new_rows, args=(0, 0, DAY_ROWS), rounds=5, warmup_rounds=1)
    rate = DAY_ROWS / benchmark.stats.stats.min
    benchmark.extra_info.update(rows=DAY_ROWS, rows_per_s=rate, threads=_threads())
    target(f"fill kernel, {DAY_ROWS:,}-row day in memory", rate, 30e6, "rows/s", better="higher")


def _committed_at(root: Path, model: Model, run: int) -> Dataset:
    """A dataset committed at run ``run`` that holds the files run ``run + 1`` will read.

    A daily run reads only the committed files of the days it touches; the other days' files
    would not change its cost, so only these are made (from the keys, as a backfill would) and
    listed in the manifest of run ``run``.
    """
    ds = Dataset.create(root, model, START)
    sim = ds.sim
    partitions, files = {}, {}
    for day in sim.touched(run + 1).tolist():
        if day > run:
            continue
        parts = [sim.part_state(day, k, run) for k in range(sim.parts())]
        for k, part in enumerate(parts):
            path = ds.part_path(day, k)
            path.parent.mkdir(parents=True, exist_ok=True)
            written = write_file(part.frame(), path, ds.format)
            files[str(path.relative_to(root))] = {"bytes": written.bytes, "sha256": written.sha256}
        truth = digest_arrays([p.columns for p in parts], [p.alive for p in parts]).to_json()
        partitions[sim.date_of(day).isoformat()] = truth | {
            "last_run": run, "files": [str(ds.part_path(day, k).relative_to(root))
                                       for k in range(sim.parts())]}
    # Only what a daily run reads of its previous manifests is meaningful; the rest is shape.
    # The truth is read from the last checkpoint on (fastgen.dataset.snapshot): every run
    # from there holds the same partitions, and the last one is the commit listing the files.
    ds.manifest_path(run).parent.mkdir(parents=True, exist_ok=True)
    for r in range(run - run % CHECKPOINT_RUNS, run + 1):
        manifest = {"format_version": FORMAT_VERSION, "run": r,
                    "run_date": sim.date_of(r).isoformat(), "commit_ts": "", "counts": {},
                    "touched": [], "feed": [], "partitions": partitions,
                    "identity": ds.identity.recorded()}
        if r == run:
            manifest |= {"files": files, "files_complete": True, "renames": [],
                         "bytes_written": 0}
        manifest["checksum"] = manifest_checksum(manifest)
        ds.manifest_path(r).write_text(json.dumps(manifest))
    return ds


def test_daily_run_pair_at_90_and_365(benchmark, target, tmp_path):
    """Issue 3: the timed body is a pair of daily runs in alternating order, one into a dataset
    committed at H = 90 and one at H = 365 (both built untimed in setup); each side's seconds in
    extra_info. Target: a run at H = 365 takes at most 1.5x a run at H = 90 (recorded)."""
    model = _model(RUN_ROWS)
    seconds: dict[int, list[float]] = {90: [], 365: []}
    datasets: dict[int, Dataset] = {}

    def build():
        shutil.rmtree(tmp_path / "runs", ignore_errors=True)
        for history in (90, 365):
            datasets[history] = _committed_at(tmp_path / "runs" / f"h{history}", model,
                                              history - 1)

    def pair():
        for history in (90, 365) if len(seconds[90]) % 2 == 0 else (365, 90):
            seconds[history].append(_seconds(lambda: datasets[history].generate(1)))

    benchmark.pedantic(pair, setup=build, rounds=2, iterations=1)
    facts = {}
    for history, ds in datasets.items():
        last = Dataset(ds.root).manifest()
        facts[history] = {
            "seconds": min(seconds[history]), "rounds_s": seconds[history],
            "bytes_written": last["bytes_written"],
            "partitions_rewritten": last["counts"]["partitions_rewritten"],
            "rows_changed": sum(last["counts"][k]
                                for k in ("updates", "soft_deletes", "hard_deletes"))}
    shutil.rmtree(tmp_path / "runs")
    ratio = facts[365]["seconds"] / facts[90]["seconds"]
    touched = facts[365]["rows_changed"] / facts[90]["rows_changed"]
    benchmark.extra_info.update(rows_per_day=RUN_ROWS, ratio=ratio, rows_changed_ratio=touched,
                                h90=facts[90], h365=facts[365])
    print(f"\ndaily run at H=365 {facts[365]['seconds']:.1f} s, at H=90 {facts[90]['seconds']:.1f} s:"
          f" ratio {ratio:.2f}; rows changed ratio {touched:.2f}; "
          f"partitions {facts[365]['partitions_rewritten']} vs {facts[90]['partitions_rewritten']}")
    target(f"daily run at H=365 / H=90, {RUN_ROWS:,} rows a day", ratio, 1.5, "x")


def test_backfill_pair_changing_and_still(benchmark, target, tmp_path):
    """Issue 3: the timed body is a pair of 90-day backfills, the same rows with no changes at
    all and with every change on (new datasets made untimed in setup); each side's seconds in
    extra_info. Target: changing <= 3x still (recorded)."""
    days = 90
    models = {"still": _model(BACKFILL_ROWS, update_rate=0.0, delete_rate=0.0, late_share=0.0),
              "changing": _model(BACKFILL_ROWS)}
    datasets: dict[str, Dataset] = {}
    times: dict[str, float] = {}

    def fresh():
        for name, model in models.items():
            shutil.rmtree(tmp_path / name, ignore_errors=True)
            datasets[name] = Dataset.create(tmp_path / name, model, START)

    def pair():
        for name, ds in datasets.items():
            times[name] = _seconds(lambda: ds.generate(days))

    benchmark.pedantic(pair, setup=fresh, rounds=1, iterations=1)
    for name, ds in datasets.items():
        times[name + "_bytes"] = sum(f["bytes"] for f in ds.snapshot()["files"].values())
    ratio = times["changing"] / times["still"]
    benchmark.extra_info.update(rows_per_day=BACKFILL_ROWS, days=days, ratio=ratio, **times)
    print(f"\nbackfill {days} x {BACKFILL_ROWS:,}: changing {times['changing']:.1f} s, "
          f"no changes {times['still']:.1f} s, ratio {ratio:.2f}")
    target(f"backfill {days} x {BACKFILL_ROWS:,}, changing / no changes", ratio, 3.0, "x")


def _seconds(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _threads() -> int:
    import numba

    return numba.get_num_threads()
