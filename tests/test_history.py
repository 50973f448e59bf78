"""Issue 12 item 3: every manifest carries, per day, the ground truth of its type 2 history
(``versions``, ``history_hash``), kept from each run's changes; a slow reference rebuilds the
history from the whole change feed, event by event, and must agree after every run."""

from __future__ import annotations

import json

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


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Dataset:
    from fastgen.cli import main

    root = tmp_path_factory.mktemp("history") / "data"
    for days in CALLS:
        assert main(["generate", "--data", str(root), "--days", str(days), *map(str, ARGS)]) == 0
    return Dataset(root)


def _events(ds: Dataset) -> list[dict]:
    """Every feed row of the dataset as plain values (microseconds, ISO dates)."""
    frames = [ds.reader([str(ds.root / f) for f in m["feed"]])
              for m in ds.manifests(0, ds.last_run())]
    feed = pl.concat(frames).select(
        "op", "commit_version", "sale_id",
        pl.col("commit_ts").dt.epoch("us"),
        pl.col("sale_date").cast(pl.String),
        pl.struct(pl.col("after").struct.field("version"),
                  pl.col("after").struct.field("updated_at").dt.epoch("us")).alias("after"))
    return feed.to_dicts()


def test_manifests_hold_the_history_the_feed_makes_after_every_run(dataset):
    events = _events(dataset)
    kinds = {e["op"] for e in events}
    assert kinds == {"insert", "update", "delete"}
    assert any((e["after"]["version"] or 0) > 2 for e in events)  # changed twice
    for run in range(dataset.last_run() + 1):
        expected = naive.history_from_feed([e for e in events if e["commit_version"] <= run])
        read = dataset._reader()
        truth = snapshot.truth(read, read(run))  # every run, not only the commits
        got = {day: (t["versions"], int(t["history_hash"], 16)) for day, t in truth.items()}
        assert got == expected, f"run {run}"


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
