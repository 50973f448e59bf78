"""Issue 12 item 1: ``fastgen load --strategy scd2`` builds ``sales_history``, one row per
version of each sale, from the change feed, exactly once, and ``verify --warehouse`` checks it
against the manifests' per-day ``versions`` and ``history_hash``.

Every kind of change is on (updates, soft and hard deletes, late rows), several files a day.
The loader runs after each of 60 one-run generator calls and is verified every time; a load
killed before its commit, or repeated, changes nothing; a slow reference (the history built by
sorting the whole feed in Polars, and ``naive.history_from_feed`` event by event) agrees with
the table and with the manifests.
"""

from __future__ import annotations

import shutil
import signal
from pathlib import Path

import duckdb
import polars as pl
import pytest

from fastgen.config import ChangeModel, Model, SalesModel
from fastgen.dataset import Dataset
from fastgen.history import of_table
from fastgen.loaders import load, scd2
from fastgen.loaders.warehouse import STATE_TABLE

try:
    from tests import naive
    from tests.warehouse_checks import grow, killed_load, problems
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    import naive
    from warehouse_checks import grow, killed_load, problems

RUNS = 60
KEPT_AT = 40  # a copy of the warehouse is kept after this run's load
# Two files a day; changes concentrate on the last ~10 days once history passes 20 (fewer
# files rewritten a run: a quicker test), so a sale changes several times while it is recent.
MODEL = Model(seed=7, rows_per_file=150, sales=SalesModel(rows_per_day=300),
              changes=ChangeModel(late_share=0.05, delete_mode="mixed", delete_rate=0.03,
                                  update_rate=0.15, sigmoid_switch_days=20,
                                  sigmoid_recent_days=10))
ORDER = ["sale_id", "version"]


def _history(wh: Path) -> pl.DataFrame:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.sql("SELECT * FROM sales_history ORDER BY sale_id, version").pl()
    finally:
        con.close()


def _control(wh: Path) -> list[tuple]:
    con = duckdb.connect(str(wh), read_only=True)
    try:
        return con.execute(f"SELECT * FROM {STATE_TABLE} ORDER BY strategy").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def grown(tmp_path_factory) -> dict:
    """60 one-run calls, the history loaded and verified after each."""
    return grow(tmp_path_factory.mktemp("scd2"), MODEL, scd2.load, RUNS, KEPT_AT)


def test_the_history_matches_the_ground_truth_after_every_run(grown):
    counts = grown["counts"]
    assert all(counts[k] > 0 for k in ("updates", "soft_deletes", "hard_deletes", "late_rows"))
    assert {run: p for run, p in grown["problems"].items() if p} == {}
    assert [s.rows_changed for s in grown["again"]] == [0] * RUNS  # a repeat: nothing
    table = _history(grown["wh"])
    assert table["version"].max() > 2  # sales changed more than once
    assert table.columns[:2] == ["dbt_scd_id", "sale_id"]
    assert {"dbt_updated_at", "dbt_valid_from", "dbt_valid_to", "is_current", "sale_date"} \
        <= set(table.columns)
    assert table["dbt_scd_id"].n_unique() == table.height
    assert table["is_current"].to_list() == table["dbt_valid_to"].is_null().to_list()


def _feed(ds: Dataset) -> pl.DataFrame:
    files = [str(ds.root / f) for m in ds.manifests(0, ds.last_run()) for f in m["feed"]]
    return ds.reader(files)


def test_a_polars_sort_of_the_whole_feed_gives_the_same_table(grown):
    """The slow reference: every feed event, sorted by sale and run; an event's version is
    valid until the next event of its sale (its updated_at, or a delete's commit_ts)."""
    feed = _feed(Dataset(grown["data"])).sort("sale_id", "commit_version")
    at = (pl.when(pl.col("op") == "delete").then(pl.col("commit_ts"))
          .otherwise(pl.col("after").struct.field("updated_at")))
    expected = (feed.with_columns(at.alias("valid_from"),
                                  at.shift(-1).over("sale_id").alias("valid_to"))
                .filter(pl.col("op") != "delete")
                .select("sale_id", pl.col("after").struct.field("version"), "valid_from",
                        "valid_to", pl.col("sale_date"),
                        pl.col("after").struct.field("amount", "is_deleted"))
                .sort(ORDER))
    got = _history(grown["wh"]).select(
        "sale_id", "version", pl.col("dbt_valid_from").alias("valid_from"),
        pl.col("dbt_valid_to").alias("valid_to"), "sale_date", "amount", "is_deleted")
    assert got.equals(expected.cast(got.schema))
    assert (feed["op"] == "delete").sum() > 0


def test_the_event_by_event_reference_agrees_with_the_table_and_the_manifests(grown):
    ds = Dataset(grown["data"])
    events = _feed(ds).select(
        "op", "commit_version", "sale_id", pl.col("commit_ts").dt.epoch("us"),
        pl.col("sale_date").cast(pl.String),
        pl.struct(pl.col("after").struct.field("version"),
                  pl.col("after").struct.field("updated_at").dt.epoch("us")).alias("after")
    ).to_dicts()
    reference = naive.history_from_feed(events)
    truth = {day: (t["versions"], int(t["history_hash"], 16))
             for day, t in ds.committed()["partitions"].items()}
    table = _history(grown["wh"])
    ours = {}
    for (day,), part in table.partition_by("sale_date", as_dict=True).items():
        h = of_table(part)
        ours[day.isoformat()] = (h.versions, h.hash)
    assert reference == truth == ours


def test_a_first_load_builds_the_whole_history_from_every_feed(grown, tmp_path):
    wh = tmp_path / "first.duckdb"
    stats = load("scd2", grown["data"], wh)
    assert (stats.from_run, stats.to_run) == (-1, RUNS - 1)
    assert problems(grown["data"], wh) == []
    assert _history(wh).drop("dbt_scd_id").equals(_history(grown["wh"]).drop("dbt_scd_id"))


def test_a_load_killed_before_its_commit_changes_nothing(grown, tmp_path):
    wh = tmp_path / "kept.duckdb"
    shutil.copyfile(grown["kept"], wh)  # at run 40; the dataset is at run 59
    before, control = _history(wh), _control(wh)
    killed = killed_load("scd2", grown["data"], wh)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _history(wh).equals(before) and _control(wh) == control
    assert problems(grown["data"], wh)[0].startswith(
        "the warehouse's sales_history is at run 40")
    stats = load("scd2", grown["data"], wh)
    assert (stats.from_run, stats.to_run) == (KEPT_AT, RUNS - 1)
    assert problems(grown["data"], wh) == []
    assert load("scd2", grown["data"], wh).rows_changed == 0


def test_sales_and_its_history_keep_their_own_positions(grown, tmp_path):
    wh = tmp_path / "both.duckdb"
    shutil.copyfile(grown["kept"], wh)
    assert load("cdc", grown["data"], wh).from_run == -1  # sales was never loaded
    assert problems(grown["data"], wh)[0].startswith("the warehouse's sales_history is at run")
    assert load("scd2", grown["data"], wh).from_run == KEPT_AT
    assert problems(grown["data"], wh) == []
    runs = {row[0]: row[1] for row in _control(wh)}
    assert runs == {"cdc": RUNS - 1, "scd2": RUNS - 1}


def test_verify_names_the_day_whose_history_differs(grown, tmp_path):
    wh = tmp_path / "changed.duckdb"
    shutil.copyfile(grown["wh"], wh)
    con = duckdb.connect(str(wh))
    con.execute("UPDATE sales_history SET dbt_valid_to = dbt_valid_to + INTERVAL 1 SECOND "
                "WHERE sale_id = (SELECT min(sale_id) FROM sales_history "
                "WHERE sale_date = DATE '2025-03-05' AND dbt_valid_to IS NOT NULL)")
    con.execute("DELETE FROM sales_history WHERE dbt_scd_id = (SELECT max(dbt_scd_id) FROM "
                "sales_history WHERE sale_date = DATE '2025-03-09')")
    con.close()
    versions = Dataset(grown["data"]).committed()["partitions"]["2025-03-09"]["versions"]
    assert problems(grown["data"], wh) == [
        "day 2025-03-05: sales_history's history hash differs from the manifest's",
        f"day 2025-03-09: sales_history has {versions - 1:,} versions, the manifest {versions:,}"]
