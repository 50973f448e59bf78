"""Schema evolution (issue 13, stress mode ``--schema-change-run``): from run R on the source
has a nullable column ``channel``. Files written from R on carry it, older untouched files do
not; readers union the schemas; the loaders and the sink grow their tables and stay exact."""

from __future__ import annotations

import contextlib
import io
import json
import math
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest

from conftest import START
from fastgen.cli import main
from fastgen.dataset import Dataset
from fastgen.digest import digest
from fastgen.schema import CHANNEL, CHANNEL_WEIGHTS, CHANNELS

ROWS, RUNS, CHANGE_RUN, NULL_SHARE = 4_000, 30, 24, 0.2
ARGS = ("--start-date", START, "--seed", "17", "--rows-per-day", ROWS, "--rows-per-file", 2_000,
        "--schema-change-run", CHANGE_RUN, "--channel-null-share", NULL_SHARE,
        "--delete-mode", "soft")


def _cli(*args: object) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    assert code == 0, err.getvalue()
    return out.getvalue()


@pytest.fixture(scope="module")
def evolved(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("evolved") / "data"
    _cli("generate", "--data", root, "--days", RUNS, *ARGS)
    return root


def _run_of_file(root: Path, rel: str) -> int:
    """The last run that wrote a sales file (from the manifests)."""
    return max(m["run"] for m in Dataset(root).manifests(0, RUNS - 1)
               if any(rel in p["files"] for p in m["partitions"].values()))


def test_files_written_from_the_change_on_carry_the_column_and_older_ones_do_not(evolved):
    files = sorted(str(p.relative_to(evolved)) for p in (evolved / "sales").rglob("*.parquet"))
    carries = {rel: CHANNEL in pl.read_parquet_schema(evolved / rel) for rel in files}
    assert 0 < sum(carries.values()) < len(files)  # both kinds are there
    for rel, has in carries.items():
        assert has == (_run_of_file(evolved, rel) >= CHANGE_RUN), rel


def test_channel_values_at_their_rates_and_none_before_the_change(evolved):
    sales = Dataset(evolved).scan().collect()
    created_run = (sales["sale_id"] - 1) // ROWS
    before, after = sales.filter(created_run < CHANGE_RUN), sales.filter(created_run >= CHANGE_RUN)
    assert before[CHANNEL].null_count() == before.height > 0
    n = after.height
    nulls = after[CHANNEL].null_count()
    assert abs(nulls - n * NULL_SHARE) < 5 * math.sqrt(n * NULL_SHARE * (1 - NULL_SHARE))
    counts = dict(after[CHANNEL].drop_nulls().value_counts().iter_rows())
    named = n - nulls
    assert set(counts) == set(CHANNELS)
    for name, weight in zip(CHANNELS, CHANNEL_WEIGHTS):
        p = weight / sum(CHANNEL_WEIGHTS)
        assert abs(counts[name] - named * p) < 5 * math.sqrt(named * p * (1 - p)), name


def test_polars_pyarrow_and_duckdb_read_the_export_as_one_table(evolved):
    sales = evolved / "sales"
    expected = Dataset(evolved).scan().collect()
    want = dict(expected[CHANNEL].value_counts().iter_rows())
    # Polars and pyarrow: the schema of a file written after the change, for every file (the
    # others give nulls), as the README shows.
    evolved_file = next(p for p in sorted(sales.rglob("*.parquet"))
                        if CHANNEL in pl.read_parquet_schema(p))
    frame = pl.scan_parquet(sales, hive_partitioning=True, missing_columns="insert",
                            schema=pl.read_parquet_schema(evolved_file)).collect()
    assert frame.height == expected.height
    assert dict(frame[CHANNEL].value_counts().iter_rows()) == want
    table = pads.dataset(sales, format="parquet", partitioning="hive",
                         schema=pq.read_schema(evolved_file)).to_table()
    assert table.num_rows == expected.height
    assert dict(pl.from_arrow(table)[CHANNEL].value_counts().iter_rows()) == want
    got = duckdb.sql(f"SELECT channel, count(*) FROM read_parquet('{sales}/*/*.parquet', "
                     "hive_partitioning = true, union_by_name = true) GROUP BY ALL").fetchall()
    assert dict(got) == want


def test_row_images_carry_the_column_from_the_change_on(evolved):
    for manifest in Dataset(evolved).manifests(0, RUNS - 1):
        for rel in manifest["feed"]:
            fields = pl.read_parquet_schema(evolved / rel)["after"].to_schema()
            assert (CHANNEL in fields) == (manifest["run"] >= CHANGE_RUN), rel


def test_a_null_channel_does_not_change_a_row_hash_and_a_named_one_does(evolved):
    frame = pl.read_parquet(sorted((evolved / "sales").rglob("*.parquet"))[-1])  # the newest day
    assert frame[CHANNEL].null_count() < frame.height
    without = frame.drop(CHANNEL)
    assert digest(frame.with_columns(pl.lit(None, pl.String).alias(CHANNEL))) == digest(without)
    assert digest(frame) != digest(without)
    shuffled = frame.with_columns(pl.col(CHANNEL).shuffle(seed=1))
    assert digest(shuffled) != digest(frame)


@pytest.mark.parametrize("strategy", ["full", "incremental", "cdc", "watermark", "scd2"])
def test_loaders_grow_the_table_at_the_change_and_stay_exact(tmp_path, strategy):
    root, warehouse = tmp_path / "data", tmp_path / "w.duckdb"
    _cli("generate", "--data", root, "--days", CHANGE_RUN - 2, *ARGS)
    for _ in range(4):  # runs R-2 .. R+1, loaded after each
        _cli("load", "--strategy", strategy, "--data", root, "--warehouse", warehouse)
        assert "match" in _cli("verify", "--data", root, "--warehouse", warehouse)
        run = Dataset(root).last_run()
        with duckdb.connect(str(warehouse), read_only=True) as con:
            table = "sales_history" if strategy == "scd2" else "sales"
            names = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        assert (CHANNEL in names) == (run >= CHANGE_RUN), (strategy, run)
        _cli("generate", "--data", root, "--days", 1)


def test_verify_sees_a_warehouse_that_lost_the_column_s_values(tmp_path):
    root, warehouse = tmp_path / "data", tmp_path / "w.duckdb"
    _cli("generate", "--data", root, "--days", CHANGE_RUN + 1, *ARGS)
    _cli("load", "--strategy", "full", "--data", root, "--warehouse", warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("UPDATE sales SET channel = NULL")
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["verify", "--data", str(root), "--warehouse", str(warehouse)])
    assert code == 1 and "row_hash" in out.getvalue() + err.getvalue()


def test_sqlite_sink_grows_its_table_and_stays_exact(tmp_path):
    root, url = tmp_path / "data", f"sqlite:///{tmp_path / 's.db'}"
    _cli("generate", "--data", root, "--days", CHANGE_RUN - 1, *ARGS)
    for _ in range(3):
        _cli("sink", "--data", root, "--to", url)
        assert "match" in _cli("verify", "--data", root, "--db", url)
        _cli("generate", "--data", root, "--days", 1)
    manifest = json.loads(max((root / "manifests").glob("*.json")).read_text())
    assert manifest["run"] == CHANGE_RUN + 1
