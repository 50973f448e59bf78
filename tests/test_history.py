"""Issue 12 item 3: every manifest carries, per day, the ground truth of its type 2 history
(``versions``, ``history_hash``), kept from each run's changes; a slow reference rebuilds the
history from the whole change feed, event by event, and must agree after every run."""

from __future__ import annotations

import json
import random
from collections import Counter
from datetime import date, timedelta

import polars as pl
import pytest

from fastgen.dataset import Dataset, snapshot
from fastgen.history import History, of_table

try:
    from tests import naive
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    import naive

# Every kind of change, late rows, several files a day; made in calls of several runs and one.
ARGS = ("--rows-per-day", 1500, "--rows-per-file", 600, "--start-date", "2025-03-01",
        "--seed", 12, "--delete-mode", "mixed", "--delete-rate", "0.05", "--update-rate", "0.2",
        "--late-share", "0.05")
CALLS = (5, 1, 1, 4, 1)
START = date.fromisoformat(ARGS[ARGS.index("--start-date") + 1])
# Every stress mode on, more often than --stress has them, late commits reaching back past
# the day before: runs change a sale several times, new rows on their own day, and stamp
# changes before their day; the column channel from run 3 on.
STRESSED = (*ARGS, "--repeat-share", "0.4", "--same-day-share", "0.1",
            "--late-commit-share", "0.3", "--late-commit-max-hours", "30",
            "--schema-change-run", "3")


def _generate(root, args: tuple) -> Dataset:
    from fastgen.cli import main

    for days in CALLS:
        assert main(["generate", "--data", str(root), "--days", str(days), *map(str, args)]) == 0
    return Dataset(root)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    return _generate(tmp_path_factory.mktemp("history") / "data", ARGS)


@pytest.fixture(scope="module")
def stressed(tmp_path_factory) -> Dataset:
    return _generate(tmp_path_factory.mktemp("stressed") / "data", STRESSED)


def _events(ds: Dataset) -> list[dict]:
    """Every feed row of the dataset as plain values (microseconds, ISO dates), with its
    position ``lsn`` when the feed has one (each run's feed read alone: after a schema
    change, its row images have a column more)."""
    def plain(feed: pl.DataFrame) -> pl.DataFrame:
        return feed.select(
            "op", "commit_version", "sale_id", *[c for c in ("lsn",) if c in feed.columns],
            pl.col("commit_ts").dt.epoch("us"),
            pl.col("sale_date").cast(pl.String),
            pl.struct(pl.col("after").struct.field("version"),
                      pl.col("after").struct.field("updated_at").dt.epoch("us")).alias("after"))

    return pl.concat([plain(ds.reader([str(ds.root / f) for f in m["feed"]]))
                      for m in ds.manifests(0, ds.last_run())]).to_dicts()


def _assert_history_after_every_run(ds: Dataset, events: list[dict]) -> None:
    for run in range(ds.last_run() + 1):
        expected = naive.history_from_feed([e for e in events if e["commit_version"] <= run])
        read = ds._reader()
        truth = snapshot.truth(read, read(run))  # every run, not only the commits
        got = {day: (t["versions"], int(t["history_hash"], 16)) for day, t in truth.items()}
        assert got == expected, f"run {run}"


def test_manifests_hold_the_history_the_feed_makes_after_every_run(dataset):
    events = _events(dataset)
    kinds = {e["op"] for e in events}
    assert kinds == {"insert", "update", "delete"}
    assert any((e["after"]["version"] or 0) > 2 for e in events)  # changed twice
    assert "lsn" not in events[0]
    _assert_history_after_every_run(dataset, events)


def test_stressed_manifests_hold_the_history_the_feed_makes_after_every_run(stressed):
    """With every stress mode on, the slow reference takes a run's events of one sale in
    ``lsn`` order; the events are shuffled first, so the feed's file order does not help."""
    events = _events(stressed)
    assert all(isinstance(e["lsn"], int) for e in events)
    assert len({e["lsn"] for e in events}) == len(events)
    per_run = Counter((e["sale_id"], e["commit_version"]) for e in events if e["op"] != "insert")
    assert max(per_run.values()) == 3, "no sale changed three times in one run"
    inserted = {e["sale_id"]: e["commit_version"] for e in events if e["op"] == "insert"}
    same_day = [e for e in events if e["op"] != "insert"
                and inserted[e["sale_id"]] == e["commit_version"]]
    assert same_day, "no change of a new row in the run that made it"
    assert all(e["sale_date"] == str(START + timedelta(days=e["commit_version"]))
               for e in same_day)
    hour_us = 3_600_000_000
    run_day = {e["commit_version"]: e["commit_ts"] - 24 * hour_us for e in events}  # its start
    assert any(e["op"] == "update" and e["after"]["updated_at"] < run_day[e["commit_version"]]
               - 6 * hour_us for e in events), "no change stamped over 6 h before its run's day"
    random.Random(13).shuffle(events)
    _assert_history_after_every_run(stressed, events)


def test_a_history_table_is_checked_by_its_digest(dataset):
    """``of_table`` sums a history table (dbt snapshot's column names too) as the manifests
    do; a table one version short, or with one valid_to moved, differs."""
    events = _events(dataset)
    rows = []
    by_sale: dict[int, list[dict]] = {}
    for e in events:
        by_sale.setdefault(e["sale_id"], []).append(e)
    for sale_id, evs in by_sale.items():
        evs.sort(key=lambda e: e["commit_version"])
        for n, e in enumerate(evs):
            if e["op"] == "delete":
                continue
            nxt = evs[n + 1] if n + 1 < len(evs) else None
            to = None if nxt is None else (
                nxt["commit_ts"] if nxt["op"] == "delete" else nxt["after"]["updated_at"])
            rows.append({"sale_id": sale_id, "version": e["after"]["version"],
                         "dbt_valid_from": e["after"]["updated_at"], "dbt_valid_to": to})
    table = pl.DataFrame(rows, schema={"sale_id": pl.Int64, "version": pl.Int32,
                                       "dbt_valid_from": pl.Int64, "dbt_valid_to": pl.Int64})
    table = table.with_columns(pl.col("dbt_valid_from", "dbt_valid_to").cast(pl.Datetime("us")))
    truth = dataset.snapshot()["partitions"].values()
    whole = History(0, 0)
    for day in truth:
        whole += History.from_json(day)
    assert of_table(table) == whole
    assert of_table(table.slice(1)) != whole
    moved = table.with_columns(pl.when(pl.int_range(pl.len()) == 0)
                               .then(pl.col("dbt_valid_from") + pl.duration(microseconds=1))
                               .otherwise(pl.col("dbt_valid_from")).alias("dbt_valid_from"))
    assert of_table(moved).versions == whole.versions and of_table(moved) != whole


def test_the_history_does_not_depend_on_how_the_runs_were_split(dataset, tmp_path):
    from fastgen.cli import main

    root = tmp_path / "one-call"
    assert main(["generate", "--data", str(root), "--days", str(sum(CALLS)),
                 *map(str, ARGS)]) == 0
    ours = json.dumps(Dataset(root).snapshot()["partitions"], sort_keys=True)
    assert ours == json.dumps(dataset.snapshot()["partitions"], sort_keys=True)
