"""Issue 8: no silent wrong data, no tracebacks, on the dataset side.

One regression test per defect found by trying to break fastgen (the item numbers are the
issue's): readers see one committed run while a writer commits (1), fastgen.json is tied to the
data (3), loads after a crash between a commit and its renames (6), a deleted last manifest (7),
malformed manifests and identities (9), a really full disk (10), misleading messages (12),
unsafe --data places (13), and recovery that removes only its own files (14). The model's
values (4, 8) are in test_validation.py, the loaders' items in test_loaders_hardening.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import polars as pl
import pytest

from conftest import SMALL, console_script
from fastgen.dataset import Dataset
from fastgen.digest import digest

ROWS = ("--rows-per-day", "20000", "--start-date", "2025-01-01")


def one_line(result, code: int, *words: str) -> None:
    """Exit ``code``, exactly one line on stderr, no traceback, naming each of ``words``."""
    assert result.code == code, (result.code, result.out, result.err)
    assert len(result.err_lines) == 1, result.err
    assert "Traceback" not in result.err
    for word in words:
        assert word in result.err, result.err


def edit_identity(root: Path, change) -> None:
    path = root / "fastgen.json"
    identity = json.loads(path.read_text())
    change(identity)
    path.write_text(json.dumps(identity))


# ---- 1: readers see one committed run ------------------------------------------------------

def _warehouse_matches(con: duckdb.DuckDBPyConnection, manifest: dict) -> list[str]:
    """Days of the warehouse's sales that differ from ``manifest``'s truth, by digest."""
    wrong = []
    for day, truth in manifest["partitions"].items():
        frame = pl.from_arrow(con.execute("SELECT * EXCLUDE (sale_date) FROM sales "
                                          "WHERE sale_date = ?", [day]).to_arrow_table())
        actual = digest(frame).to_json()
        if any(actual[k] != truth[k] for k in ("rows", "live_rows", "amount", "row_hash")):
            wrong.append(day)
    return wrong


def test_loads_and_verify_during_commits_see_one_run(tmp_path, run_cli):
    """generate in a loop in one process, loads and verify in a loop here, for a bounded time:
    every load holds exactly the run it claims, and verify never reports false corruption."""
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, *ROWS, "--rows-per-file", "5000",
                   "--days", 3).code == 0
    # Each call rewrites ~6 days of 4 files each: renames take a while, often under a reader.
    writer = subprocess.Popen(
        [sys.executable, "-c", "import sys\nfrom fastgen.cli import main\n"
         "for _ in range(40):\n    assert main(['generate', '--data', sys.argv[1]]) == 0",
         str(data)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    loads = verifies = 0
    deadline = time.monotonic() + 25
    try:
        while time.monotonic() < deadline and writer.poll() is None:
            for strategy in ("full", "incremental"):
                warehouse = tmp_path / f"{strategy}.duckdb"
                result = run_cli("load", "--strategy", strategy, "--warehouse", warehouse,
                                 "--data", data)
                assert result.code == 0, result.err
                with contextlib.closing(duckdb.connect(str(warehouse), read_only=True)) as con:
                    run = con.execute("SELECT last_run FROM fastgen_load_state "
                                      "ORDER BY load_number DESC LIMIT 1").fetchone()[0]
                    wrong = _warehouse_matches(con, Dataset(data).snapshot(run))
                assert wrong == [], f"{strategy} load claiming run {run} differs on {wrong}"
                loads += 1
            result = run_cli("verify", "--data", data)
            assert result.code == 0, result.out
            verifies += 1
    finally:
        writer.kill()
        _, err = writer.communicate()
    assert loads >= 6 and verifies >= 3, (loads, verifies, err)
    assert Dataset(data).last_run() >= 4, "the writer made no progress beside the readers"


def test_a_reader_waits_for_a_commit_and_says_so(tmp_path, run_cli):
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, *SMALL).code == 0
    from fastgen.dataset import lock

    with lock.committing(data):  # as a writer renaming its files
        proc = subprocess.Popen([str(console_script()), "verify", "--data", str(data)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # It says so before it blocks; it cannot have read anything while the lock is held.
        assert proc.stderr.readline().strip() == f"waiting for a commit to {data} to finish"
        time.sleep(0.3)
        assert proc.poll() is None, "verify went on while a commit was renaming files"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0 and "all 1 days match" in out, out + err
    assert err == ""


# ---- 3: fastgen.json is tied to the data ---------------------------------------------------

@pytest.mark.parametrize("change, named", [
    (lambda i: i["model"].update(seed=7), "model.seed"),
    (lambda i: i["model"]["changes"].update(update_rate=0.3), "model.changes.update_rate"),
    (lambda i: i["model"]["sales"].update(rows_per_day=999), "model.sales.rows_per_day"),
    (lambda i: i.update(start_date="2024-12-31"), "start_date"),
    (lambda i: i.update(format="csv"), "format"),
])
def test_an_edited_identity_is_refused_by_every_command(tmp_path, run_cli, snapshot, change, named):
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, *SMALL, "--days", 2).code == 0
    assert run_cli("load", "--strategy", "full", "--warehouse", tmp_path / "w.duckdb",
                   "--data", data).code == 0
    edit_identity(data, change)
    before = snapshot(data)
    one_line(run_cli("generate", "--data", data), 1, named, "does not match the data")
    assert snapshot(data) == before, "a refused generate changed files"
    one_line(run_cli("info", "--data", data), 1, named)
    for strategy in ("full", "incremental", "cdc"):
        one_line(run_cli("load", "--strategy", strategy, "--warehouse", tmp_path / "w.duckdb",
                         "--data", data), 1, named)
    result = run_cli("verify", "--data", data)
    assert result.code == 1 and named in result.out, result.out
    assert snapshot(data) == before


def test_a_dropped_identity_key_is_named_not_defaulted(tmp_path, run_cli, snapshot):
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, *SMALL).code == 0
    edit_identity(data, lambda i: i["model"]["changes"].pop("update_rate"))
    before = snapshot(data)
    one_line(run_cli("generate", "--data", data), 2, "update_rate")
    assert snapshot(data) == before


def test_a_deleted_identity_is_not_replaced_by_a_new_model(tmp_path, run_cli, snapshot):
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, *SMALL, "--days", 2).code == 0
    (data / "fastgen.json").unlink()
    before = snapshot(data)
    one_line(run_cli("generate", "--data", data, "--seed", 7), 2, "fastgen.json")
    assert snapshot(data) == before, "a refused generate wrote a fresh fastgen.json"
    one_line(run_cli("verify", "--data", data), 2, "deleted")


# ---- 6 and 7: loads after a crash between commit and renames; a deleted last manifest ------

def test_loads_after_a_crash_between_the_commit_and_its_renames(tmp_path, run_script, run_cli):
    data = tmp_path / "data"
    result = run_script("generate", "--data", data, *SMALL, "--days", 3,
                        env={"FASTGEN_FAULT": "recover:2"})
    assert result.code == -9, result.err
    assert any(".tmp-" in p.name for p in (data / "manifests").iterdir())
    assert run_cli("verify", "--data", data).code == 0
    for strategy in ("incremental", "cdc", "full"):
        warehouse = tmp_path / f"{strategy}.duckdb"
        result = run_cli("load", "--strategy", strategy, "--warehouse", warehouse, "--data", data)
        assert result.code == 0, result.err
        result = run_cli("verify", "--data", data, "--warehouse", warehouse)
        assert result.code == 0, result.out


def test_a_deleted_last_manifest_is_named_not_loaded(tmp_path, run_cli, small_dataset):
    data = small_dataset(days=4)
    assert run_cli("generate", "--data", data).code == 0  # run 4 alone: run 3 is a commit too
    (data / "manifests" / "run_date=2025-01-05.json").unlink()
    for args in (["info"], ["generate"],
                 ["load", "--strategy", "full", "--warehouse", tmp_path / "w.duckdb"],
                 ["load", "--strategy", "cdc", "--warehouse", tmp_path / "c.duckdb"]):
        one_line(run_cli(*args, "--data", data), 1, "2025-01-05", "missing")
    result = run_cli("verify", "--data", data)
    assert result.code == 1 and "run_date=2025-01-05.json is missing" in result.out


def test_a_deleted_commit_manifest_of_a_backfill_is_named(tmp_path, run_cli, small_dataset):
    data = small_dataset(days=4)  # runs 0-2 have manifests that list no files
    (data / "manifests" / "run_date=2025-01-04.json").unlink()
    one_line(run_cli("info", "--data", data), 1, "missing")
    one_line(run_cli("load", "--strategy", "full", "--warehouse", tmp_path / "w.duckdb",
                     "--data", data), 1, "missing")


# ---- 9: malformed manifests and identities -------------------------------------------------

@pytest.mark.parametrize("content", ["{}", "[]", '{"run": "x"}', "not json", "\x00\xff"])
def test_a_malformed_manifest_is_named_by_every_command(tmp_path, run_cli, small_dataset, content):
    data = small_dataset(days=2)
    (data / "manifests" / "run_date=2025-01-02.json").write_text(content, errors="surrogateescape")
    for args in (["info"], ["generate"],
                 ["load", "--strategy", "full", "--warehouse", tmp_path / "w.duckdb"]):
        one_line(run_cli(*args, "--data", data), 1, "run_date=2025-01-02.json")
    result = run_cli("verify", "--data", data)
    assert result.code == 1 and "run_date=2025-01-02.json" in result.out, result.out
    assert "Traceback" not in result.err


def test_a_file_that_is_not_a_manifest_is_named(run_cli, small_dataset):
    data = small_dataset(days=2)
    (data / "manifests" / "run_date=foo.json").write_text("{}")
    result = run_cli("verify", "--data", data)
    assert result.code == 1 and "run_date=foo.json is not a manifest's name" in result.out
    one_line(run_cli("generate", "--data", data), 1, "run_date=foo.json")
    assert run_cli("info", "--data", data).code == 0  # not in the way of reading


@pytest.mark.parametrize("value", ["zzz", 5, [], "2025-13-01"])
def test_a_malformed_last_date_is_named(run_cli, small_dataset, value):
    data = small_dataset(days=2)
    edit_identity(data, lambda i: i.update(last_date=value))
    for command in ("info", "verify", "generate"):
        one_line(run_cli(command, "--data", data), 2, "last_date", "fastgen.json")


# ---- 10: a really full disk ---------------------------------------------------------------

@pytest.fixture
def small_disk(tmp_path):
    """A 6 MB tmpfs mounted for the test (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_new_dataset_on_a_full_disk_leaves_nothing(small_disk, run_cli):
    data = small_disk / "new"
    result = run_cli("generate", "--data", data, "--rows-per-day", 400_000, "--days", 2)
    one_line(result, 1, "No space left on device", "MB free", "needs about")
    assert list(small_disk.iterdir()) == [], "a failed new dataset left files behind"
    filler = small_disk / "filler"  # now a disk with no room even for fastgen.json
    with contextlib.suppress(OSError):
        with open(filler, "wb") as f:
            while True:
                f.write(b"x" * 4096)
                f.flush()
    result = run_cli("generate", "--data", small_disk / "other", *SMALL)
    one_line(result, 1)
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


def dataset_files(snapshot, root: Path) -> dict:
    """The folder's files but the writer's checksum cache, which a failed start may refresh."""
    return {k: v for k, v in snapshot(root).items() if k != ".fastgen.checked"}


@pytest.mark.parametrize("free_kb", [4000, 2500, 1500, 900, 500, 200, 60, 8])
def test_a_full_disk_at_any_fill_level_fails_in_one_line(small_disk, run_cli, snapshot, free_kb):
    data = small_disk / "data"
    assert run_cli("generate", "--data", data, "--rows-per-day", 20_000, "--start-date",
                   "2025-01-01").code == 0
    before = dataset_files(snapshot, data)
    stat = os.statvfs(small_disk)
    free = stat.f_bavail * stat.f_frsize
    (small_disk / "filler").write_bytes(b"x" * max(0, free - free_kb * 1024))
    result = run_cli("generate", "--data", data, "--days", 3)
    if result.code == 0:  # it fitted: then it must verify
        assert run_cli("verify", "--data", data).code == 0
        return
    one_line(result, 1)
    assert "No space left on device" in result.err or "MB free" in result.err, result.err
    assert dataset_files(snapshot, data) == before, "a failed run changed the committed state"
    (small_disk / "filler").unlink()
    assert run_cli("verify", "--data", data).code == 0
    assert run_cli("generate", "--data", data, "--days", 3).code == 0


# ---- 12 and 13: messages and places ---------------------------------------------------------

def test_a_string_format_version_is_named(run_cli, small_dataset):
    data = small_dataset(days=1)
    edit_identity(data, lambda i: i.update(format_version="1"))
    one_line(run_cli("info", "--data", data), 2, "format_version", "not a whole number")


def test_info_on_a_file_says_it_is_a_file(tmp_path, run_cli):
    path = tmp_path / "a.parquet"
    path.write_bytes(b"PAR1")
    one_line(run_cli("info", "--data", path), 2, "is a file")


def test_verify_into_a_closed_pipe_is_quiet(small_dataset):
    data = small_dataset(days=3)
    done = subprocess.run(f"'{console_script()}' verify --data '{data}' --warehouse /nonexistent "
                          f"| head -0; '{console_script()}' info --data '{data}' | head -0",
                          shell=True, capture_output=True, text=True)
    assert "Broken pipe" not in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_an_empty_data_path_is_refused(tmp_path, run_cli, snapshot, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = snapshot(tmp_path)
    for command in ("generate", "info", "verify"):
        one_line(run_cli(command, "--data", ""), 2, "--data")
    assert snapshot(tmp_path) == before


def test_a_dataset_inside_another_is_refused(run_cli, small_dataset, snapshot):
    data = small_dataset(days=1)
    before = snapshot(data)
    for inner in ("sales", "sales/new", "elsewhere"):
        one_line(run_cli("generate", "--data", data / inner, *SMALL), 2, "inside the dataset")
    assert snapshot(data) == before


# ---- 14: recovery removes only fastgen's own temporary files --------------------------------

def test_recovery_keeps_a_users_file_that_looks_temporary(tmp_path, run_script, run_cli):
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, *SMALL, "--days", 2).code == 0
    mine = data / "sales" / "sale_date=2025-01-01" / ".notes.tmp-1"
    mine.write_text("a user's file")
    result = run_script("generate", "--data", data, "--days", 2, env={"FASTGEN_FAULT": "run:2"})
    assert result.code == -9
    assert any(p.name.endswith(".tmp-3") for p in data.rglob("*")), "nothing was staged"
    result = run_cli("generate", "--data", data)
    assert result.code == 0, result.err
    assert "removed" in result.err
    assert mine.read_text() == "a user's file"
    assert not [p for p in data.rglob("*.tmp-3")], "a staged file survived recovery"
    assert run_cli("verify", "--data", data).code == 0
