"""Late events (stress mode ``--late-event-share``): a run holds back all of the events of a
share of the sales it changes; they leave its feed files (their positions stay taken) for
``held/run_date=R/part-00000`` and end the next run's feed in its ``tail-00000``.

Checked here: the option (stored, refused out of range, absent at 0, a stressed dataset made
before the mode opens); the rate; the shape of the feed; a slow reference that applies every
delivered event one at a time (``naive.apply_feed``) against ``fastgen.delivered.truth`` after
every run, and the held file on top of it against the export; the loaders (cdc, scd2,
incremental after cdc) and the SQLite sink after every run, a bulk load followed by a feed,
and two consumers that get the held events wrong, which verify must catch; the same bytes
(``held/`` included) whatever the split of the runs into calls, the executor, or a kill.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import START
from fastgen import delivered, sinks
from fastgen.build.tasks import held_back
from fastgen.cli import main
from fastgen.config import STRESS, Model, StressModel
from fastgen.dataset import Dataset
from fastgen.dataset import manifest as manifests
from fastgen.digest import digest
from fastgen.formats.feed import HISTORY_BASE, INSERT_BASE, RUN_SHIFT, SAME_DAY_BASE
from fastgen.loaders import load
from fastgen.sinks.verify import compare

try:
    from tests import naive
    from tests.warehouse_checks import problems
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    import naive
    from warehouse_checks import problems

SHARE = 0.1
ROWS, RUNS = 10_000, 5
# Redelivery and repeated and same-day changes too: a tail holds held events and rows again,
# a held sale has several events in its run, and a run's new sales have changes to hold.
RATES = {"late_event_share": SHARE, "repeat_share": 0.3, "same_day_share": 0.1,
         "redelivery_share": 0.1}
ARGS = ("--start-date", START, "--seed", "13", "--rows-per-day", ROWS, "--rows-per-file", 4_000,
        "--delete-mode", "mixed", "--delete-rate", "0.03",
        *(x for name, value in RATES.items() for x in (f"--{name.replace('_', '-')}", value)))
DIGEST_KEYS = ("rows", "live_rows", "amount", "row_hash")
# Keys of a manifest that describe the batch (which call wrote what), not the run.
BATCH_KEYS = ("files", "files_complete", "renames", "bytes_written")
FOLDERS = ("sales", "changes", "held")
LSN_RUN = 1 << RUN_SHIFT  # lsn // LSN_RUN is the run of an event


def _generate(root: Path, *args: object) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["generate", "--data", str(root), *map(str, args)])
    assert code == 0, err.getvalue()


def _within(successes: int, trials: int, p: float, sigmas: float = 5.0) -> bool:
    """Whether a binomial count is within ``sigmas`` standard deviations of its mean."""
    return abs(successes - trials * p) <= sigmas * math.sqrt(trials * p * (1 - p))


def _read(root: Path, rels: list[str]) -> pl.DataFrame:
    """Feed files in the order given, each row with the kind of its file (change, insert...)."""
    return pl.concat([pl.read_parquet(root / rel).with_columns(
        file=pl.lit(Path(rel).name.split("-")[0])) for rel in rels])


def _in(column: str, values: pl.Series) -> pl.Expr:
    return pl.col(column).is_in(values.implode())


@pytest.fixture(scope="module")
def daily(tmp_path_factory) -> dict:
    """A dataset grown one run per call, as a daily pipeline does (so each run's first feed
    task takes the previous run's held file from its manifest). Per run: its snapshot, its
    own feed files (all but the tail), its tail, its whole feed in file order, its held file."""
    root = tmp_path_factory.mktemp("late") / "data"
    for _ in range(RUNS):
        _generate(root, "--days", 1, *ARGS)
    ds = Dataset(root)
    runs = []
    for run in range(RUNS):
        state = ds.snapshot(run)
        feed = _read(root, state["feed"])
        [held] = state["held"]["files"]
        runs.append({"state": state, "delivered": feed,
                     "own": feed.filter(pl.col("file") != "tail"),
                     "tail": feed.filter(pl.col("file") == "tail"),
                     "held": pl.read_parquet(root / held), "held_rel": held})
    return {"root": root, "runs": runs}


# ---- the option -----------------------------------------------------------------------------
def test_the_share_is_stored_in_fastgen_json(tmp_path, run_cli):
    root = tmp_path / "data"
    made = run_cli("generate", "--data", root, "--days", 1, "--rows-per-day", 500,
                   "--start-date", START, "--late-event-share", 0.25)
    assert made.code == 0, made.err
    stored = json.loads((root / "fastgen.json").read_text())["model"]["stress"]
    assert stored["late_event_share"] == 0.25
    assert Dataset(root).model.stress == StressModel(late_event_share=0.25)
    assert StressModel(late_event_share=0.25).on  # alone, it is a stress mode (the feed has lsn)
    assert "lsn" in pl.read_parquet_schema(next((root / "changes").rglob("insert-*")))


@pytest.mark.parametrize("value", ["1.5", "-0.01", "nan", "inf"])
def test_a_share_out_of_range_is_one_line_exit_2_and_nothing_on_disk(tmp_path, run_cli, value):
    root = tmp_path / "new"
    result = run_cli("generate", "--data", root, "--days", 1, "--late-event-share", value)
    assert result.code == 2
    assert len(result.err_lines) == 1, result.err
    assert "--late-event-share must be a finite number in [0, 1]" in result.err
    assert not root.exists()


def test_another_share_than_the_dataset_s_is_refused_and_changes_nothing(tmp_path, run_cli,
                                                                         snapshot):
    root = tmp_path / "data"
    assert run_cli("generate", "--data", root, "--days", 1, "--rows-per-day", 500,
                   "--start-date", START, "--late-event-share", 0.1).code == 0
    before = snapshot(root)
    refused = run_cli("generate", "--data", root, "--days", 1, "--late-event-share", 0.2)
    assert refused.code == 2 and len(refused.err_lines) == 1, refused.err
    assert "--late-event-share differs from the dataset's" in refused.err
    assert snapshot(root) == before


def test_at_zero_the_key_is_absent_and_a_stress_section_without_it_opens(tmp_path, run_cli):
    assert "late_event_share" not in Model(stress=StressModel(repeat_share=0.2)).to_json()["stress"]
    assert Model(stress=StressModel(late_event_share=0.1)).to_json()["stress"][
        "late_event_share"] == 0.1
    old = dataclasses.asdict(STRESS)  # what --stress stored before late events existed
    del old["late_event_share"]
    assert Model.from_json({**Model().to_json(), "stress": old}).stress == dataclasses.replace(
        STRESS, late_event_share=0.0)
    # On disk: a stressed dataset without late events is one made before they existed (its
    # fastgen.json and manifests lack the key, it has no held/); it grows and verifies.
    root = tmp_path / "data"
    made = run_cli("generate", "--data", root, "--days", 2, "--rows-per-day", 500,
                   "--start-date", START, "--repeat-share", 0.2, "--redelivery-share", 0.1)
    assert made.code == 0, made.err
    identity = json.loads((root / "fastgen.json").read_text())
    assert "stress" in identity["model"]
    assert "late_event_share" not in identity["model"]["stress"]
    assert run_cli("generate", "--data", root, "--days", 1).code == 0
    for manifest in Dataset(root).manifests(0, 2):
        assert "late_event_share" not in manifest["identity"]["model"]["stress"]
        assert "held" not in manifest and "late_events" not in manifest["counts"]
    assert not (root / "held").exists()
    assert Dataset(root).model.stress.late_event_share == 0.0
    checked = run_cli("verify", "--data", root)
    assert checked.code == 0, checked.out + checked.err


# ---- the rate -------------------------------------------------------------------------------
def test_a_run_holds_back_its_share_of_the_sales_it_changes(daily):
    """Each sale a run changes is held back with late_event_share, independently: exactly the
    sales ``held_back`` names, at that rate within 5 sigma over the runs."""
    sim = Dataset(daily["root"]).sim
    trials = held = 0
    for run, r in enumerate(daily["runs"]):
        changed = pl.concat([r["own"].filter(pl.col("op") != "insert")["sale_id"],
                             r["held"]["sale_id"]]).unique().sort()
        held_ids = r["held"]["sale_id"].unique().sort()
        assert changed.filter(pl.Series(held_back(sim, run, changed.to_numpy()))).equals(held_ids)
        assert r["state"]["counts"]["late_events"] == r["held"].height
        trials, held = trials + changed.len(), held + held_ids.len()
    assert trials > 5_000
    assert _within(held, trials, SHARE), (held, trials)


# ---- the feed -------------------------------------------------------------------------------
def test_held_events_leave_their_run_s_files_for_the_held_file(daily):
    root = daily["root"]
    for run, r in enumerate(daily["runs"]):
        state, held, own = r["state"], r["held"], r["own"]
        day = (datetime.fromisoformat(START) + timedelta(days=run)).date()
        assert r["held_rel"] == f"held/run_date={day}/part-00000.parquet"
        assert r["held_rel"] not in state["feed"]  # committed, listed, not in the feed
        listed = state["files"][r["held_rel"]]
        assert listed["sha256"] == hashlib.sha256((root / r["held_rel"]).read_bytes()).hexdigest()
        assert held.height > 50
        assert (held["op"] != "insert").all() and (held["commit_version"] == run).all()
        assert held["lsn"].is_sorted() and (held["lsn"] // LSN_RUN == run).all()
        assert not own.filter(_in("lsn", held["lsn"])).height
        # All of a held sale's events of the run: none is left in its change-/sameday- files;
        # its insert (a new sale changed the same day) is never held.
        left = own.filter(_in("sale_id", held["sale_id"]))
        assert (left["op"] == "insert").all(), left.select("op", "sale_id", "file")
        assert held.group_by("sale_id").len()["len"].max() > 1  # some held sale had several
        # Their positions stay taken: with them, each range of the run's positions is whole.
        placed = pl.concat([own.filter(pl.col("op") != "insert")["lsn"], held["lsn"]])
        offsets = placed - (run << RUN_SHIFT)
        for base, end in ((HISTORY_BASE, INSERT_BASE), (SAME_DAY_BASE, 1 << RUN_SHIFT)):
            mine = offsets.filter((offsets >= base) & (offsets < end)).sort() - base
            assert mine.equals(pl.Series("lsn", range(mine.len()), pl.Int64)), (run, base)
        assert state["counts"]["feed_rows"] == r["delivered"].height
    assert {"update", "delete"} <= set(pl.concat([r["held"]["op"] for r in daily["runs"]]))


def test_the_next_run_s_tail_delivers_them_unchanged_in_lsn_order(daily):
    runs = daily["runs"]
    assert runs[0]["tail"].height == 0
    for run in range(1, RUNS):
        tail, previous = runs[run]["tail"], runs[run - 1]
        assert tail["lsn"].is_sorted() and tail["lsn"].n_unique() == tail.height
        assert runs[run]["delivered"].tail(tail.height).equals(tail)  # last in the feed
        late = tail.filter(_in("lsn", previous["held"]["lsn"])).drop("file")
        assert late.equals(previous["held"]), run  # every column, every held event, once
        again = tail.filter(~_in("lsn", previous["held"]["lsn"]))
        assert again.height and again.drop("file").equals(previous["own"].filter(
            _in("lsn", again["lsn"])).drop("file"))  # the rest: rows of its own files again
        assert runs[run]["state"]["counts"]["redelivered"] == again.height


def test_positions_are_unique_over_everything_delivered_but_redeliveries(daily):
    runs = daily["runs"]
    every = pl.concat([r["delivered"].with_columns(run=pl.lit(run))
                       for run, r in enumerate(runs)])
    assert all(r["delivered"]["lsn"].n_unique() == r["delivered"].height for r in runs)
    first = every.unique("lsn", keep="first", maintain_order=True)
    repeats = every.join(first.select("lsn", first_run="run"), on="lsn").filter(
        pl.col("run") != pl.col("first_run"))
    # A position seen twice: a row of a run's own files, then in the next run's tail again.
    assert repeats.height == sum(r["state"]["counts"]["redelivered"] for r in runs)
    assert (repeats["file"] == "tail").all()
    assert (repeats["run"] == repeats["first_run"] + 1).all()
    assert (repeats["lsn"] // LSN_RUN == repeats["first_run"]).all()
    # A held event is delivered exactly once, by the next run (the last run's are still held).
    for run, r in enumerate(runs[:-1]):
        got = every.filter(_in("lsn", r["held"]["lsn"]))
        assert got.height == r["held"].height and (got["run"] == run + 1).all()
    assert not every.filter(_in("lsn", runs[-1]["held"]["lsn"])).height


def test_a_held_event_comes_after_a_newer_event_of_its_sale(daily):
    """What breaks a consumer that applies a feed in file order: a held event delivered after
    an event of the same sale with a later position (the sale changed again the next run)."""
    cases = 0
    for run in range(1, RUNS):
        feed = daily["runs"][run]["delivered"].with_row_index("at")
        late = feed.filter(_in("lsn", daily["runs"][run - 1]["held"]["lsn"]))
        newer = feed.filter((pl.col("op") != "insert") & (pl.col("lsn") // LSN_RUN == run))
        pairs = late.join(newer, on="sale_id", suffix="_newer").filter(
            (pl.col("at_newer") < pl.col("at")) & (pl.col("lsn_newer") > pl.col("lsn")))
        cases += pairs.height
    assert cases > 0


# ---- the slow reference ---------------------------------------------------------------------
def _digests(table: dict[int, tuple], schema: pl.Schema) -> dict[str, dict]:
    """Per day, the digest of the rows of a replayed table (sale_id -> (day, row))."""
    days = pl.Series("sale_date", [day for day, _ in table.values()])
    frame = pl.DataFrame([row for _, row in table.values()], schema=schema).with_columns(days)
    return {str(day): digest(part).to_json()
            for (day,), part in frame.partition_by("sale_date", as_dict=True).items()}


def _truth_digests(truth: dict[str, dict]) -> dict[str, dict]:
    return {day: {k: t[k] for k in DIGEST_KEYS} for day, t in truth.items() if t["rows"]}


def _history_event(event: dict) -> dict:
    """A feed event as ``naive.history_from_feed`` takes it (microseconds, ISO days)."""
    us = lambda t: (t - datetime(1970, 1, 1)) // timedelta(microseconds=1)  # noqa: E731
    after = event["after"]
    return {"op": event["op"], "commit_version": event["commit_version"], "lsn": event["lsn"],
            "sale_id": event["sale_id"], "commit_ts": us(event["commit_ts"]),
            "sale_date": event["sale_date"].isoformat(),
            "after": after and {"version": after["version"], "updated_at": us(after["updated_at"])}}


def _history(events: list[dict]) -> dict[str, dict]:
    return {day: {"versions": n, "history_hash": f"{h:016x}"}
            for day, (n, h) in naive.history_from_feed(events).items()}


def _truth_history(truth: dict[str, dict]) -> dict[str, dict]:
    return {day: {k: t[k] for k in ("versions", "history_hash")} for day, t in truth.items()
            if t["versions"]}


def test_applying_each_delivered_event_gives_the_delivered_truth_and_the_held_file_the_export(
        daily):
    """The whole feed, run after run, each run's delivered rows applied one at a time in
    ``lsn`` order (a position applied before skipped): after every run the table's per-day
    digest (and after the last run its type 2 history, ``naive.history_from_feed``) are
    ``fastgen.delivered.truth``'s; with the run's held file applied on top, the export's."""
    runs = daily["runs"]
    schema = pl.Schema(runs[0]["held"].schema["after"].to_schema())
    table: dict[int, tuple] = {}
    seen: set[int] = set()
    history: list[dict] = []
    for run, r in enumerate(runs):
        applied, misfits = naive.apply_feed(table, seen, r["delivered"].drop("file").to_dicts())
        assert misfits == [], (run, misfits[:3])
        history += [_history_event(e) for e in applied]
        state = r["state"]
        truth = delivered.truth(state["partitions"], state)
        assert _digests(table, schema) == _truth_digests(truth), run
        if run == RUNS - 1:  # (the reference's history costs seconds a run; the last has all)
            assert _history(history) == _truth_history(truth), run
        # The delivered truth is not the export's exactly on the days the held events change.
        differ = {day for day in truth if truth[day] != state["partitions"][day]}
        assert differ == set(state["held"]["days"]) != set(), run
        # The held file on top of it: the export.
        export, more = dict(table), set(seen)
        late, misfits = naive.apply_feed(export, more, r["held"].to_dicts())
        assert misfits == [] and len(late) == r["held"].height, run
        assert _digests(export, schema) == _truth_digests(state["partitions"]), run
        if run == RUNS - 1:
            assert _history(history + [_history_event(e) for e in late]) == _truth_history(
                state["partitions"]), run


# ---- loaders and sinks ----------------------------------------------------------------------
LOAD_RUNS, BULK_AT = 5, 1
LOAD_ARGS = ("--start-date", START, "--seed", "21", "--rows-per-day", 2_000,
             "--rows-per-file", 1_000, "--delete-mode", "mixed", "--delete-rate", "0.03",
             # No late rows: they touch every recent day, which would hide an incremental load
             # that does not reload the days of the held events (they change only some).
             "--late-share", "0",
             *(x for name, value in RATES.items() for x in (f"--{name.replace('_', '-')}", value)))


def _days(problems: list[str]) -> set[str]:
    """The days verify names (each problem is 'day YYYY-MM-DD: ...')."""
    assert all(p.startswith("day ") for p in problems), problems
    return {p.split()[1].rstrip(":") for p in problems}


def test_loaders_and_the_sqlite_sink_follow_every_run_and_verify(tmp_path):
    """cdc, scd2, a warehouse loaded by cdc and incremental in turn, and a SQLite sink, after
    every run; a cdc warehouse and a SQLite database first loaded in bulk at run BULK_AT and
    fed after. Consumers that get the held events wrong are caught: a cdc warehouse told
    (falsely) that its last run came in bulk, which so skips the held events of the next tail;
    a fed database checked against the export instead of the delivered truth, and the bulk
    loaded one against the delivered truth."""
    data = tmp_path / "data"
    wh = {name: tmp_path / f"{name}.duckdb" for name in ("cdc", "scd2", "mixed", "late_cdc")}
    db, late_db = f"sqlite:///{tmp_path / 's.db'}", f"sqlite:///{tmp_path / 'late.db'}"
    forced = tmp_path / "forced.duckdb"
    caught = 0
    for run in range(LOAD_RUNS):
        _generate(data, "--days", 1, *LOAD_ARGS)
        ds = Dataset(data)
        if run >= 2:  # the mutant: the cdc warehouse as it was (fed from run 1 on), with its
            # fed flag forced false
            shutil.copyfile(wh["cdc"], forced)
            with duckdb.connect(str(forced)) as con:
                con.execute("UPDATE fastgen_load_state SET fed = false")
            load("cdc", data, forced)
            wrong = problems(data, forced)
            assert wrong, f"run {run}: verify missed a cdc load that skipped the held events"
            assert _days(wrong) <= set(ds.manifest(run - 1)["held"]["days"]), wrong
            caught += 1
        load("cdc", data, wh["cdc"])
        load("scd2", data, wh["scd2"])
        load("cdc" if run % 2 == 0 else "incremental", data, wh["mixed"])
        stats = sinks.sink(data, db)
        assert [a.method for a in stats.applied] == ["bulk" if run == 0 else "feed"]
        late = run >= BULK_AT and run != LOAD_RUNS - 2  # the last two runs in one load
        if late:
            load("cdc", data, wh["late_cdc"])
            assert [a.method for a in sinks.sink(data, late_db).applied] == [
                "bulk" if run == BULK_AT else "feed"] * (2 if run == LOAD_RUNS - 1 else 1)
        for name, path in wh.items():
            if late or name != "late_cdc":
                assert problems(data, path) == [], (run, name)
        for url in [db] + ([late_db] if late else []):
            report = sinks.verify(data, url)
            assert (report.problems, report.run, report.behind) == ([], run, None), (run, url)
        with duckdb.connect(str(wh["cdc"]), read_only=True) as con:
            fed = con.execute("SELECT fed FROM fastgen_load_state").fetchall()
        assert fed == [(run > 0,)]  # the first load is a bulk load
        # The second mutant: the fed database against the export's truth.
        state = ds.snapshot(run)
        fed, bulk = delivered.truth(state["partitions"], state), state["partitions"]
        with sinks.connect(db) as target, target.reading():
            assert target.position().fed == (run > 0)
            right, wrong = (fed, bulk) if run else (bulk, fed)  # run 0 came in bulk
            assert compare(right, target) == []
            assert _days(compare(wrong, target)) == set(state["held"]["days"]) != set()
    assert caught == LOAD_RUNS - 2
    # scd2 closed a held hard delete's version at its own run's commit_ts, not the next run's.
    held = pl.concat([pl.read_parquet(p) for p in sorted((data / "held").rglob("*.parquet"))])
    assert (held["op"] == "delete").any()


def test_a_watermark_load_after_a_fed_cdc_load_takes_the_held_events(tmp_path):
    """Strategies may be switched on one warehouse (fastgen.loaders.warehouse); after a cdc
    load that applied its last run from the feed, the table lacks that run's held events, so
    the next load must bring them (incremental reloads their days, watermark reaches back to
    the start of the fed run's day)."""
    data, wh = tmp_path / "data", tmp_path / "w.duckdb"
    _generate(data, "--days", 3, "--start-date", START, "--seed", "5", "--rows-per-day", 2_000,
              "--late-event-share", 0.2, "--delete-mode", "soft", "--late-share", "0")
    load("cdc", data, wh)  # bulk
    _generate(data, "--days", 1)
    load("cdc", data, wh)  # fed: run 3's held events are not in the table
    _generate(data, "--days", 1)
    load("watermark", data, wh)
    assert problems(data, wh) == []


def test_a_warehouse_loaded_before_fed_existed_is_verified_read_only(tmp_path):
    """A warehouse whose control table lacks ``fed`` (last loaded by a fastgen before late
    events) is verified as it is: read-only, nothing can add the column, and none of its
    loads was fed; its next load adds the column."""
    data, wh = tmp_path / "data", tmp_path / "w.duckdb"
    _generate(data, "--days", 2, "--start-date", START, "--rows-per-day", 1_000)
    load("cdc", data, wh)
    con = duckdb.connect(str(wh))
    con.execute("ALTER TABLE fastgen_load_state DROP COLUMN fed")
    con.close()
    assert problems(data, wh) == []
    _generate(data, "--days", 1)
    load("cdc", data, wh)
    assert problems(data, wh) == []
    con = duckdb.connect(str(wh), read_only=True)
    assert con.execute("SELECT fed FROM fastgen_load_state").fetchall() == [(True,)]
    con.close()


def test_verify_recomputes_the_held_truth_from_the_held_files(daily, tmp_path, run_cli):
    """``fastgen verify`` checks each run's held section against its held file: a manifest
    whose held truth is off by one row (checksum made again, so only this check can see it)
    is named."""
    copy = tmp_path / "copy"
    shutil.copytree(daily["root"], copy)
    assert run_cli("verify", "--data", copy).code == 0
    path = Dataset(copy).manifest_path(2)
    manifest = json.loads(path.read_text())
    day = sorted(manifest["held"]["days"])[0]
    manifest["held"]["days"][day]["before"]["rows"] += 1
    del manifest["checksum"]
    manifest["checksum"] = manifests.checksum(manifest)
    path.write_text(json.dumps(manifest))
    checked = run_cli("verify", "--data", copy)
    assert checked.code == 1
    assert (f"held events of run {manifest['run_date']}, day {day}: they do not give the "
            "manifest's held truth") in checked.out, checked


def test_verify_names_a_file_under_held_that_no_manifest_lists(daily, tmp_path, run_cli):
    copy = tmp_path / "copy"
    shutil.copytree(daily["root"], copy)
    held = sorted((copy / "held").rglob("*.parquet"))[0]
    stray = held.with_name("part-00001.parquet")
    shutil.copy(held, stray)
    checked = run_cli("verify", "--data", copy)
    assert checked.code == 1
    assert f"{stray.relative_to(copy)} is not part of the dataset" in checked.out, checked


# ---- the same bytes -------------------------------------------------------------------------
def _files(root: Path) -> dict[str, str]:
    """sha256 of every file under sales/, changes/ and held/, hidden ones included, and of
    fastgen.json."""
    out = {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
           for folder in FOLDERS for p in sorted((root / folder).rglob("*")) if p.is_file()}
    out["fastgen.json"] = hashlib.sha256((root / "fastgen.json").read_bytes()).hexdigest()
    return out


def _manifests(root: Path) -> dict[str, dict]:
    """Each manifest without the keys that say which call wrote what."""
    return {p.name: {k: v for k, v in json.loads(p.read_text()).items() if k not in BATCH_KEYS}
            for p in sorted((root / "manifests").glob("*.json"))}


def _assert_same(root: Path, daily: dict) -> None:
    expected = _files(daily["root"])
    assert sum(rel.startswith("held/") for rel in expected) == RUNS
    got = _files(root)
    assert got == expected, sorted(k for k in got.keys() | expected.keys()
                                   if got.get(k) != expected.get(k))[:5]
    assert _manifests(root) == _manifests(daily["root"])
    listed = Dataset(root).snapshot()["files"]
    assert listed == Dataset(daily["root"]).snapshot()["files"]
    assert set(listed) == set(expected) - {"fastgen.json"}  # every file committed, listed


@pytest.mark.parametrize("calls,executor", [((RUNS,), ()), ((2, 1, 2), ()),
                                            ((RUNS,), ("--workers", 2))],
                         ids=["one-call", "2+1+2", "workers-2"])
def test_same_bytes_whatever_the_calls_and_the_executor(daily, tmp_path, calls, executor):
    root = tmp_path / "data"
    for days in calls:
        _generate(root, "--days", days, *ARGS, *executor)
    _assert_same(root, daily)


@pytest.mark.parametrize("point", ["feed:2", "committed"])
def test_a_killed_call_redone_gives_the_same_bytes(daily, tmp_path, point):
    """SIGKILL among the feed tasks (the next call reuses the held files they staged) or right
    after the commit point (the next call owes the renames, held file included, before it
    reads the held file for its first run's tail)."""
    root = tmp_path / "data"
    killed = subprocess.run([sys.executable, "-m", "fastgen", "generate", "--data", str(root),
                             "--days", "3", *map(str, ARGS)], capture_output=True, text=True,
                            env={**os.environ, "FASTGEN_FAULT": point}, timeout=300)
    assert killed.returncode == -9, killed.stderr
    for days in ((3, 2) if point.startswith("feed") else (2,)):
        _generate(root, "--days", days)
    _assert_same(root, daily)
    checked = io.StringIO()
    with contextlib.redirect_stdout(checked):
        assert main(["verify", "--data", str(root)]) == 0, checked.getvalue()
