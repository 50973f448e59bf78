"""Stress modes (issue 13): off by default, stored in fastgen.json, and the feed has what each
promises at its rate; a slow reference that applies the whole feed event by event in ``lsn``
order gives the export after every run.

Byte identity of stressed datasets across splits and executors: test_determinism (splits,
task order) and test_executors (every executor), which run with ``--stress``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from datetime import datetime, timedelta
from pathlib import Path

import polars as pl
import pytest

from conftest import START
from fastgen.config import STRESS, Model, StressModel
from fastgen.formats.feed import RUN_SHIFT

ROWS, RUNS = 20_000, 8
RATES = {"repeat_share": 0.3, "same_day_share": 0.1, "late_commit_share": 0.1,
         "late_commit_max_hours": 6.0, "redelivery_share": 0.1}
ARGS = ("--start-date", START, "--seed", "13", "--rows-per-day", ROWS, "--rows-per-file", 8_000,
        *(x for name, value in RATES.items() for x in (f"--{name.replace('_', '-')}", value)))
US_PER_DAY = 86_400_000_000


def _within(successes: int, trials: int, p: float, sigmas: float = 5.0) -> bool:
    """Whether a binomial count is within ``sigmas`` standard deviations of its mean."""
    return abs(successes - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


def _date_of(run: int):
    return (datetime.fromisoformat(START) + timedelta(days=run)).date()


def _day_start_us(run: int) -> int:
    start = datetime.fromisoformat(START) + timedelta(days=run)
    return int((start - datetime(1970, 1, 1)).total_seconds()) * 1_000_000


@pytest.fixture(scope="module")
def stressed(tmp_path_factory, generate_in_process) -> dict:
    """A stressed dataset made one run per call: each run's feed (in manifest order) and
    export, and its manifest."""
    root = tmp_path_factory.mktemp("stress") / "data"
    runs = []
    for run in range(RUNS):
        generate_in_process(root, "--days", 1, *ARGS)
        manifest = json.loads(max((root / "manifests").glob("*.json")).read_text())
        delivered = pl.concat([pl.read_parquet(root / rel) for rel in manifest["feed"]])
        own = delivered["lsn"] // (1 << RUN_SHIFT) == run  # the rest: the previous run's again
        export = pl.read_parquet(root / "sales", hive_partitioning=True)
        runs.append({"manifest": manifest, "feed": delivered.filter(own),
                     "again": delivered.filter(~own), "delivered": delivered,
                     "export": export})
    return {"root": root, "runs": runs}


@pytest.fixture(scope="module")
def generate_in_process():
    from fastgen.cli import main

    def generate(root: Path, *args: object) -> None:
        assert main(["generate", "--data", str(root), *map(str, args)]) == 0
    return generate


# ---- options --------------------------------------------------------------------------------
def test_a_calm_model_stores_no_stress_section_and_reads_one_without_it():
    calm = Model().to_json()
    assert "stress" not in calm
    assert Model.from_json(calm) == Model()
    stressed = Model(stress=STRESS).to_json()
    assert stressed["stress"] == dataclasses.asdict(STRESS)
    assert Model.from_json(stressed) == Model(stress=STRESS)
    assert not StressModel().on and STRESS.on
    assert not StressModel(late_commit_max_hours=2.0).on  # a size without its rate is off


def test_stress_flag_stores_the_documented_rates_and_a_given_rate_wins(tmp_path, run_cli):
    for args, expected in ((("--stress",), STRESS),
                           (("--stress", "--repeat-share", "0.5"),
                            dataclasses.replace(STRESS, repeat_share=0.5))):
        root = tmp_path / "-".join(args)
        result = run_cli("generate", "--data", root, "--days", 1, "--rows-per-day", 500,
                         "--start-date", START, *args)
        assert result.code == 0, result.err
        stored = json.loads((root / "fastgen.json").read_text())["model"]["stress"]
        assert stored == dataclasses.asdict(expected)
    again = run_cli("generate", "--data", tmp_path / "--stress", "--days", 1, "--stress")
    assert again.code == 0, again.err
    calm = tmp_path / "calm"
    assert run_cli("generate", "--data", calm, "--days", 1, "--rows-per-day", 500,
                   "--start-date", START).code == 0
    refused = run_cli("generate", "--data", calm, "--days", 1, "--stress")
    assert refused.code == 2
    assert refused.err.strip() == ("fastgen: --stress differs from the dataset's (off); it "
                                   "would change the model of an existing dataset.")


@pytest.mark.parametrize("flag,value,words", [
    ("--repeat-share", "1.5", "--repeat-share must be a finite number in [0, 1]"),
    ("--same-day-share", "-0.1", "--same-day-share must be a finite number in [0, 1]"),
    ("--late-commit-share", "nan", "--late-commit-share must be a finite number in [0, 1]"),
    ("--late-commit-max-hours", "0", "--late-commit-max-hours must be a finite number in (0, 720]"),
    ("--late-commit-max-hours", "1e9", "--late-commit-max-hours must be a finite number"),
])
def test_a_bad_stress_option_is_one_line_and_leaves_nothing(tmp_path, run_cli, flag, value, words):
    root = tmp_path / "new"
    result = run_cli("generate", "--data", root, "--days", 1, flag, value)
    assert result.code == 2
    assert len(result.err.strip().splitlines()) == 1 and words in result.err, result.err
    assert not root.exists()


# ---- what the feed promises -----------------------------------------------------------------
def test_positions_are_unique_and_increase_in_the_feeds_order(stressed):
    previous = -1
    for run, r in enumerate(stressed["runs"]):
        lsn = r["feed"]["lsn"]
        assert lsn.is_sorted() and lsn.n_unique() == lsn.len()
        assert lsn[0] > previous
        assert ((lsn // (1 << RUN_SHIFT)) == run).all()
        assert (r["feed"]["commit_version"] == run).all()
        previous = lsn[-1]
        names = [Path(rel).name.split("-")[0] for rel in r["manifest"]["feed"]]
        assert names == sorted(names)  # change-, insert-, sameday-, tail- files, in that order
        assert "sameday" in names and ("tail" in names) == (run > 0)


def test_a_share_of_each_run_s_feed_is_delivered_again_unchanged_at_the_end_of_the_next(
        stressed):
    trials = again = 0
    for run, r in enumerate(stressed["runs"]):
        tail = r["again"]
        assert r["manifest"]["counts"]["redelivered"] == tail.height
        if run == 0:
            assert tail.height == 0
            continue
        previous = stressed["runs"][run - 1]["feed"]
        assert tail.height  # every row as the previous run delivered it, in its order
        assert previous.filter(pl.col("lsn").is_in(tail["lsn"].implode())).equals(tail)
        assert (tail["commit_version"] == run - 1).all() and tail["lsn"].is_sorted()
        assert r["delivered"].tail(tail.height).equals(tail)  # last, after the run's own rows
        assert Path(r["manifest"]["feed"][-1]).name.startswith("tail-")
        trials, again = trials + previous.height, again + tail.height
    assert _within(again, trials, RATES["redelivery_share"]), (again, trials)


def _events(stressed: dict) -> pl.DataFrame:
    """Every change event (not inserts) with its place among the sale's changes in its run."""
    feed = pl.concat([r["feed"] for r in stressed["runs"]])
    return (feed.filter(pl.col("op") != "insert").sort("lsn")
            .with_columns(step=pl.int_range(pl.len()).over("commit_version", "sale_id"),
                          steps=pl.len().over("commit_version", "sale_id")))


def test_repeated_changes_at_their_rate(stressed):
    """After an update, another change of the sale follows the same run with repeat_share,
    up to three changes; never after a delete; each later than the one before."""
    events = _events(stressed)
    updates = events.filter((pl.col("op") == "update")
                            & ~pl.col("after").struct.field("is_deleted")
                            & (pl.col("step") < 2))
    followed = int((updates["step"] < updates["steps"] - 1).sum())
    assert updates.height > 5_000
    assert _within(followed, updates.height, RATES["repeat_share"]), (followed, updates.height)
    assert events["steps"].max() == 3
    chained = events.filter(pl.col("step") > 0)
    assert chained.height > 1_000
    assert (chained["before"].struct.field("updated_at")
            < chained["after"].struct.field("updated_at").fill_null(datetime.max)).all()
    last_of_run = events.filter(pl.col("step") == pl.col("steps") - 1)
    assert stressed["runs"][-1]["manifest"]["counts"]["repeat_changes"] == int(
        (events.filter(pl.col("commit_version") == RUNS - 1)["step"] > 0).sum())
    assert last_of_run.height < events.height


def test_new_rows_change_on_their_own_day_at_their_rate(stressed):
    events = _events(stressed)
    for run, r in enumerate(stressed["runs"]):
        on_time = r["feed"].filter((pl.col("op") == "insert")
                                   & (pl.col("sale_date") == pl.col("commit_ts").dt.date()
                                      - timedelta(days=1)))
        first = events.filter((pl.col("commit_version") == run) & (pl.col("step") == 0)
                              & pl.col("sale_id").is_in(on_time["sale_id"].implode()))
        assert _within(first.height, on_time.height, RATES["same_day_share"]), (run, first.height)
        same_day = events.filter((pl.col("commit_version") == run)
                                 & pl.col("sale_id").is_in(on_time["sale_id"].implode()))
        assert r["manifest"]["counts"]["same_day_changes"] == same_day.height
        stamped = same_day["after"].struct.field("updated_at").drop_nulls()
        created = same_day.filter(pl.col("after").is_not_null())["before"].struct.field(
            "created_at")
        assert (stamped > created).all() and (stamped.dt.date() == on_time["sale_date"][0]).all()


def test_late_commits_at_their_rate_and_the_manifest_says_how_far_back(stressed):
    """A history change is stamped before its run's day with late_commit_share, at most
    late_commit_max_hours back, never before the row's previous updated_at; the manifest
    counts them and gives the furthest reach."""
    events = _events(stressed).filter(pl.col("op") == "update")
    trials = successes = 0
    max_us = RATES["late_commit_max_hours"] * 3_600_000_000
    for run, r in enumerate(stressed["runs"]):
        mine = events.filter(pl.col("commit_version") == run)
        stamped = mine["after"].struct.field("updated_at").dt.epoch("us")
        late = stamped < _day_start_us(run)
        counts = r["manifest"]["counts"]
        assert counts["late_commits"] == int(late.sum())  # a repeat after a late one may be too
        reach = int((_day_start_us(run) - stamped.filter(late)).max() or 0)
        assert counts["late_commit_reach_us"] == reach <= max_us
        assert (mine["before"].struct.field("updated_at")
                < mine["after"].struct.field("updated_at")).all()
        history = (mine["step"] == 0) & (mine["sale_date"] < _date_of(run))
        trials += int(history.sum())
        successes += int((late & history).sum())
        assert not (late & (mine["sale_date"] == _date_of(run))).any()  # same-day: never late
    assert trials > 5_000
    assert _within(successes, trials, RATES["late_commit_share"]), (successes, trials)


def test_applying_every_event_in_lsn_order_gives_the_export_after_every_run(stressed):
    """The slow reference: each run's delivered feed sorted by position, a position seen
    before skipped (a redelivery), and the rest applied to a dict of rows one at a time, each
    event checked against it (an insert of a new sale, an update or delete of the row as it
    is)."""
    table: dict[int, dict] = {}
    seen: set[int] = set()
    for run, r in enumerate(stressed["runs"]):
        for event in r["delivered"].sort("lsn").iter_rows(named=True):
            if event["lsn"] in seen:
                continue
            seen.add(event["lsn"])
            key = event["sale_id"]
            if event["op"] == "insert":
                assert key not in table, (run, key)
            else:
                assert table.get(key) == event["before"], (run, key, event["op"])
            if event["op"] == "delete":
                del table[key]
            else:
                table[key] = event["after"]
        export = r["export"].drop("sale_date").sort("sale_id")
        mine = pl.DataFrame(list(table.values()), schema=export.schema).sort("sale_id")
        assert mine.equals(export), f"the feed through run {run} is not the export"
