"""Determinism (DESIGN.md section 2): same seed and options give the same bytes, whatever the
number of threads, the chunk size, or how the runs are split into calls. And the readers that
DESIGN.md section 4 names all see data/sales as one hive-partitioned table."""

from __future__ import annotations

import contextlib
import io
import json
from datetime import date
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from conftest import START, file_hashes
from fastgen.cli import main
from fastgen.config import STRESS, Model, SalesModel
from fastgen.formats import write_file
from fastgen.model import Simulation

# Keys of a manifest that describe the batch (which call wrote what), not the run.
BATCH_KEYS = ("files", "files_complete", "renames", "bytes_written")


def _manifests(root: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "manifests").glob("*.json"))}


def _generate(root: Path, *args: object) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["generate", "--data", str(root), *map(str, args)])
    assert code == 0, err.getvalue()


# ---- threads -----------------------------------------------------------------------------

def test_same_bytes_whatever_numba_num_threads(run_script, tmp_path):
    # 140,000 rows make three parallel blocks of the fill kernel per day, and three files.
    args = ("--rows-per-day", "140000", "--rows-per-file", "65536", "--days", "3",
            "--start-date", START, "--seed", "42")
    roots = {}
    for threads in ("1", "2"):
        roots[threads] = tmp_path / f"threads-{threads}"
        result = run_script("generate", "--data", roots[threads], *args,
                            env={"NUMBA_NUM_THREADS": threads})
        assert result.code == 0, result.err
    one, two = (file_hashes(roots[t], "sales", "changes") for t in ("1", "2"))
    last = json.loads(max((roots["1"] / "manifests").glob("*.json")).read_text())
    assert sorted(one) == sorted(last["files"])  # every current file, and only those
    assert len([p for p in one if p.startswith("sales/")]) == 3 * 3
    assert one == two
    assert _manifests(roots["1"]) == _manifests(roots["2"])


# ---- chunk size --------------------------------------------------------------------------

CHUNK_MODEL = Model(seed=9, sales=SalesModel(rows_per_day=30_000), rows_per_file=12_000)
CHUNK_START = date(2025, 3, 30)  # crosses the month and a DST change (times are naive anyway)


def _frames(sim: Simulation, runs: int) -> dict[str, pl.DataFrame]:
    frames = {}
    for run in range(runs):
        frames[f"day {run}"] = sim.day(run)
        frames[f"inserts of run {run}"] = sim.inserts(run)[0]
        frames[f"day {run} after run {runs - 1}"] = sim.partition(run, runs - 1)
    return frames


def test_same_frames_and_bytes_whatever_the_chunk_size(tmp_path):
    runs = 3
    reference = _frames(Simulation(CHUNK_MODEL, CHUNK_START), runs)
    assert sum(f.height for f in reference.values()) > 0
    written = {}
    for chunk in (4099, 12_000):  # neither divides the day nor the kernel's block
        frames = _frames(Simulation(CHUNK_MODEL, CHUNK_START, chunk_rows=chunk), runs)
        assert frames.keys() == reference.keys()
        for name, frame in frames.items():
            try:
                assert_frame_equal(frame, reference[name], check_exact=True)
            except AssertionError as exc:
                raise AssertionError(f"{name} differs with chunk_rows={chunk}: {exc}") from None
        for fmt in ("parquet", "csv"):
            path = tmp_path / f"chunk-{chunk}.{fmt}"
            written.setdefault(fmt, set()).add(write_file(frames[f"day 0 after run {runs - 1}"],
                                                          path, fmt).sha256)
    assert {fmt: len(s) for fmt, s in written.items()} == {"parquet": 1, "csv": 1}


# ---- one call or many --------------------------------------------------------------------

SPLIT_ARGS = ("--rows-per-day", "1500", "--rows-per-file", "600", "--start-date", START,
              "--seed", "5")


@pytest.fixture(scope="module", params=[(), ("--stress",)], ids=["calm", "stress"])
def stress_args(request) -> tuple[str, ...]:
    """Every split test twice: without stress modes, and with all of them (issue 13)."""
    return request.param


@pytest.fixture(scope="module")
def five_in_one(tmp_path_factory, stress_args) -> Path:
    root = tmp_path_factory.mktemp("split") / "one-call"
    _generate(root, "--days", "5", *SPLIT_ARGS, *stress_args)
    return root


def test_same_bytes_whatever_the_order_of_the_tasks(five_in_one, stress_args, tmp_path):
    """Tasks run in reverse order (as a cluster may finish them) write the same files."""
    from fastgen.build.executors import Serial
    from fastgen.dataset import Dataset

    class Reversed(Serial):
        def map(self, fn, context, tasks, on_done=None):
            return list(reversed(super().map(fn, context, list(reversed(tasks)), on_done)))

    model = Model(seed=5, sales=SalesModel(rows_per_day=1500), rows_per_file=600,
                  **({"stress": STRESS} if stress_args else {}))
    ds = Dataset.create(tmp_path / "reversed", model, date.fromisoformat(START))
    ds.write(5, executor=Reversed())
    assert file_hashes(ds.root, "sales", "changes") == file_hashes(five_in_one, "sales", "changes")


@pytest.mark.parametrize("split", [(1, 1, 1, 1, 1), (2, 3), (4, 1)], ids=str)
def test_same_bytes_whether_five_days_come_from_one_call_or_several(five_in_one, stress_args,
                                                                    tmp_path, split):
    root = tmp_path / "split"
    for days in split:
        _generate(root, "--days", days, *SPLIT_ARGS, *stress_args)
    expected = file_hashes(five_in_one, "sales", "changes")
    # Three files a day; a feed is cut into files of about --rows-per-file rows.
    assert len([p for p in expected if p.startswith("sales/")]) == 5 * 3
    assert len([p for p in expected if p.startswith("changes/")]) > 5
    assert file_hashes(root, "sales", "changes") == expected

    one, many = _manifests(five_in_one), _manifests(root)
    assert one.keys() == many.keys() and len(one) == 5
    strip = lambda m: {k: v for k, v in m.items() if k not in BATCH_KEYS}  # noqa: E731
    for name in one:
        assert strip(many[name]) == strip(one[name]), name
    # Either way, the last commit's snapshot lists the same current files.
    from fastgen.dataset import Dataset

    assert Dataset(root).snapshot()["files"] == Dataset(five_in_one).snapshot()["files"]


# ---- readers -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def readable(tmp_path_factory) -> tuple[Path, int, Decimal]:
    root = tmp_path_factory.mktemp("readers") / "data"
    _generate(root, "--days", "4", "--rows-per-day", "2000", "--rows-per-file", "700",
              "--start-date", START, "--seed", "3")
    from fastgen.dataset import Dataset

    last = Dataset(root).snapshot()
    rows = sum(p["rows"] for p in last["partitions"].values())
    amount = sum(Decimal(p["amount"]) for p in last["partitions"].values())
    return root, rows, amount


def _polars(sales: Path) -> tuple[int, Decimal, list[str]]:
    lf = pl.scan_parquet(sales, hive_partitioning=True)
    got = lf.select(pl.len(), pl.col("amount").sum()).collect().row(0)
    return got[0], Decimal(str(got[1])), lf.collect_schema().names()


def _pyarrow(sales: Path) -> tuple[int, Decimal, list[str]]:
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    table = ds.dataset(sales, format="parquet", partitioning="hive").to_table()
    return table.num_rows, pc.sum(table["amount"]).as_py(), table.schema.names


def _duckdb(sales: Path) -> tuple[int, Decimal, list[str]]:
    import duckdb

    con = duckdb.connect()
    try:
        source = f"read_parquet('{sales}/**/*.parquet', hive_partitioning=true)"
        rows, amount = con.execute(f"select count(*), sum(amount) from {source}").fetchone()
        names = [d[0] for d in con.execute(f"select * from {source} limit 0").description]
    finally:
        con.close()
    return rows, Decimal(amount), names


@pytest.mark.parametrize("reader", [_polars, _pyarrow, _duckdb], ids=["polars", "pyarrow", "duckdb"])
def test_readers_see_sales_as_one_hive_table(readable, reader):
    root, rows, amount = readable
    assert len(list((root / "sales").rglob("*.parquet"))) == 4 * 3
    got_rows, got_amount, names = reader(root / "sales")
    assert got_rows == rows
    assert got_amount == amount
    assert "sale_date" in names
