"""Issue 12 item 2: ``fastgen load --strategy watermark`` merges the export's rows with
``updated_at`` after the last load's watermark, reading only the files and row groups whose
``updated_at`` statistics reach past it.

With soft deletes only it is exact: checked against the ground truth after each of 60 one-run
generator calls (updates, soft deletes, late rows, two files a day). With hard deletes it
cannot be: every load says how many rows the runs it loaded hard-deleted, and
``verify --warehouse`` names exactly the days holding a row that should be gone. A load killed
before its commit, or repeated, changes nothing.
"""

from __future__ import annotations

import re
import shutil
import signal
from datetime import timedelta
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.parquet as pq
import pytest

import fastgen
from fastgen.config import ChangeModel, Model, SalesModel
from fastgen.dataset import Dataset
from fastgen.loaders import load, watermark
from fastgen.loaders.warehouse import STATE_TABLE, connect, verify_warehouse

try:
    from tests.warehouse_checks import START, grow, killed_load, problems
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from warehouse_checks import START, grow, killed_load, problems

RUNS, MIXED_RUNS = 60, 20
KEPT_AT = 40  # a copy of the warehouse is kept after this run's load
# Changes concentrate on the last ~10 days once history passes 20 (fewer files rewritten a
# run: a quicker test, and a history old enough to leave alone).
CHANGES = dict(late_share=0.05, delete_rate=0.03, update_rate=0.15, sigmoid_switch_days=20,
               sigmoid_recent_days=10)
SOFT = Model(seed=8, rows_per_file=150, sales=SalesModel(rows_per_day=300),
             changes=ChangeModel(delete_mode="soft", **CHANGES))
MIXED = Model(seed=8, rows_per_file=150, sales=SalesModel(rows_per_day=300),
              changes=ChangeModel(delete_mode="mixed", **CHANGES))


def _snapshot(wh: Path) -> tuple[pl.DataFrame, list[tuple]]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return (con.sql("SELECT * FROM sales ORDER BY sale_id").pl(),
                con.execute(f"SELECT * FROM {STATE_TABLE} ORDER BY strategy").fetchall())
    finally:
        con.close()


def _row_groups(ds: Dataset) -> int:
    last = ds.committed()
    return sum(pq.ParquetFile(ds.root / rel).metadata.num_row_groups
               for day in last["partitions"].values() for rel in day["files"])


@pytest.fixture(scope="module")
def soft(tmp_path_factory) -> dict:
    """60 one-run calls with soft deletes only, the watermark loader run and verified after
    each; with each run, the row groups of the whole export."""
    return grow(tmp_path_factory.mktemp("watermark"), SOFT, watermark.load, RUNS, KEPT_AT,
                after=_row_groups)


def test_with_soft_deletes_it_matches_the_ground_truth_after_every_run(soft):
    counts = soft["counts"]
    assert all(counts[k] > 0 for k in ("updates", "soft_deletes", "late_rows"))
    assert counts["hard_deletes"] == 0
    assert {run: p for run, p in soft["problems"].items() if p} == {}
    assert all(s.notes == () for s in soft["loads"])
    again = soft["again"]  # a repeated load reads nothing and changes nothing
    assert [(s.rows_changed, s.row_groups, s.bytes_read) for s in again] == [(0, 0, 0)] * RUNS


def test_it_reads_only_the_row_groups_updated_after_the_watermark(soft):
    later = soft["loads"][RUNS // 2:]
    read = sum(s.row_groups for s in later)
    total = sum(soft["after"][RUNS // 2:])
    assert 0 < read < total * 0.8, (read, total)
    ds = Dataset(soft["data"])
    last = ds.committed()
    every_byte = sum(last["files"][rel]["bytes"] for day in last["partitions"].values()
                     for rel in day["files"])
    assert all(0 < s.bytes_read < every_byte for s in later)


def test_a_load_killed_before_its_commit_changes_nothing(soft, tmp_path):
    wh = tmp_path / "kept.duckdb"
    shutil.copyfile(soft["kept"], wh)  # at run 40; the dataset is at run 59
    before = _snapshot(wh)
    killed = killed_load("watermark", soft["data"], wh)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    after = _snapshot(wh)
    assert after[0].equals(before[0]) and after[1] == before[1]
    stats = load("watermark", soft["data"], wh)
    assert (stats.from_run, stats.to_run) == (KEPT_AT, RUNS - 1)
    assert problems(soft["data"], wh) == []


def test_a_lookback_reads_more_and_loads_the_same(soft, tmp_path):
    plain, wide = tmp_path / "plain.duckdb", tmp_path / "wide.duckdb"
    shutil.copyfile(soft["kept"], plain)
    shutil.copyfile(soft["kept"], wide)
    a = load("watermark", soft["data"], plain)
    b = load("watermark", soft["data"], wide, lookback=timedelta(days=3))
    assert b.rows_read > a.rows_read and b.bytes_read >= a.bytes_read
    assert problems(soft["data"], wide) == []
    assert _snapshot(plain)[0].equals(_snapshot(wide)[0])


def test_the_command_line_reports_row_groups_and_takes_a_duration(soft, tmp_path, run_cli):
    wh = tmp_path / "cli.duckdb"
    shutil.copyfile(soft["kept"], wh)
    done = run_cli("load", "--strategy", "watermark", "--lookback", "6h", "--warehouse", wh,
                   "--data", soft["data"])
    assert done.code == 0 and re.search(r"MB read in \d+ row groups", done.out), done
    assert done.err_lines == []  # no hard deletes: nothing to say
    for bad in (("--strategy", "cdc", "--lookback", "1h"),
                ("--strategy", "watermark", "--lookback", "soon")):
        refused = run_cli("load", *bad, "--warehouse", wh, "--data", soft["data"])
        assert refused.code == 2 and len(refused.err_lines) == 1, refused


def test_with_hard_deletes_it_says_so_and_verify_names_the_wrong_days(tmp_path):
    data = tmp_path / "data"
    con = connect(tmp_path / "mixed.duckdb")
    gone: set[str] = set()  # days of the rows hard-deleted since the first (bulk) load
    for run in range(MIXED_RUNS):
        fastgen.generate(data, days=1, model=MIXED, start=START)
        ds = Dataset(data)
        manifest = ds.manifest()
        stats = watermark.load(ds, con)
        hard = manifest["counts"]["hard_deletes"]
        if run:
            feed = ds.reader([str(data / f) for f in manifest["feed"]])
            gone |= set(feed.filter(pl.col("op") == "delete")["sale_date"].cast(pl.String))
            assert f"{hard:,} rows hard-deleted by runs {run}..{run}" in stats.notes[0]
        assert len(stats.notes) == 1 and "hard deletes" in stats.notes[0]
        named = {p.split(":")[0].removeprefix("day ") for p in verify_warehouse(ds, con)}
        assert named == gone, run
    con.close()
    assert gone  # the dataset did hard-delete
