"""Issue 9 item 8: an interrupted call loses the tasks that were running, not the ones done.

The interruptions are deterministic: FASTGEN_FAULT stops the real process at a named point
(fastgen/faults.py) with SIGINT (what Ctrl-C sends), SIGTERM or SIGKILL. The next call of the
same runs must say how many tasks it reuses, make only the others, and write the same bytes
as an uninterrupted call.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import file_hashes

OPTIONS = ["--start-date", "2025-03-01", "--seed", "11", "--rows-per-day", "3000",
           "--rows-per-file", "1500", "--delete-mode", "mixed", "--delete-rate", "0.02",
           "--late-share", "0.05"]
DAYS = 6  # 6 days x 2 parts + 6 feeds = 18 tasks


def fastgen(*args: object, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run([sys.executable, "-m", "fastgen", *map(str, args)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("resume") / "data"
    done = fastgen("generate", "--data", data, "--days", DAYS, *OPTIONS)
    assert done.returncode == 0, done.stderr
    return data


def finished_tasks(data: Path) -> int:
    lines = (data / ".fastgen.staging").read_text().splitlines()
    return sum(1 for line in lines if line.startswith('{"done"'))


@pytest.mark.parametrize("signal_name, point, code", [
    ("SIGINT", "partition:7", 130),   # Ctrl-C among the part tasks
    ("SIGTERM", "feed:3", 143),       # a scheduler's stop among the feed tasks
    ("SIGKILL", "feed:5", -9),        # no chance to say anything
])
def test_an_interrupted_backfill_reuses_its_finished_tasks(uninterrupted, tmp_path,
                                                           signal_name, point, code):
    data = tmp_path / "data"
    stopped = fastgen("generate", "--data", data, "--days", DAYS, *OPTIONS,
                      env={"FASTGEN_FAULT": point, "FASTGEN_FAULT_SIGNAL": signal_name})
    assert stopped.returncode == code, stopped.stderr
    if code > 0:
        lines = [line for line in stopped.stderr.splitlines() if line.strip()]
        assert len(lines) == 1 and "Traceback" not in stopped.stderr, stopped.stderr
        assert f"interrupted by {signal_name}" in lines[0] and "reuses" in lines[0]
    assert not (data / "manifests").exists() or not list((data / "manifests").glob("*.json"))
    assert fastgen("verify", "--data", data).returncode == 1  # nothing committed, and it says so
    finished = finished_tasks(data)
    assert finished >= 6, f"only {finished} tasks had finished before {point}"

    resumed = fastgen("generate", "--data", data, "--days", DAYS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished} of 18 task(s) had finished and are reused" in resumed.stderr
    assert file_hashes(data, "sales", "changes") == file_hashes(uninterrupted, "sales", "changes")
    assert fastgen("verify", "--data", data).returncode == 0
    assert not [p for p in data.rglob("*") if ".tmp-" in p.name or p.name == ".fastgen.staging"]


def test_a_damaged_finished_task_is_made_again(uninterrupted, tmp_path):
    data = tmp_path / "data"
    stopped = fastgen("generate", "--data", data, "--days", DAYS, *OPTIONS,
                      env={"FASTGEN_FAULT": "feed:2", "FASTGEN_FAULT_SIGNAL": "SIGKILL"})
    assert stopped.returncode == -9
    staged = sorted((data / "sales").rglob(".part-*.tmp-*"))
    assert staged
    staged[0].write_bytes(staged[0].read_bytes()[:-1] + b"\0")  # same size, other bytes
    finished = finished_tasks(data)
    resumed = fastgen("generate", "--data", data, "--days", DAYS)
    assert resumed.returncode == 0, resumed.stderr
    assert f"{finished - 1} of 18 task(s)" in resumed.stderr
    assert file_hashes(data, "sales", "changes") == file_hashes(uninterrupted, "sales", "changes")


def test_another_call_discards_an_interrupted_one(uninterrupted, tmp_path):
    data = tmp_path / "data"
    stopped = fastgen("generate", "--data", data, "--days", DAYS, *OPTIONS,
                      env={"FASTGEN_FAULT": "feed:2", "FASTGEN_FAULT_SIGNAL": "SIGKILL"})
    assert stopped.returncode == -9
    head = json.loads((data / ".fastgen.staging").read_text().splitlines()[0])
    assert head["call"]["last"] == DAYS - 1
    other = fastgen("generate", "--data", data, "--days", 2)  # another plan: nothing reusable
    assert other.returncode == 0, other.stderr
    assert "removed" in other.stderr and "reused" not in other.stderr
    assert not [p for p in data.rglob("*") if ".tmp-" in p.name]
    more = fastgen("generate", "--data", data, "--days", DAYS - 2)
    assert more.returncode == 0
    assert file_hashes(data, "sales", "changes") == file_hashes(uninterrupted, "sales", "changes")


def test_manifests_grow_with_the_runs_not_with_their_square(tmp_path, run_cli):
    """Issue 9 item 3: a run's manifest holds what it changed, a checkpoint every 50 runs the
    whole truth, so daily manifests keep their size as history grows."""
    from fastgen.dataset import Dataset
    from fastgen.dataset.snapshot import CHECKPOINT_RUNS, is_checkpoint

    data = tmp_path / "data"
    args = ("--rows-per-day", 1, "--start-date", "2025-01-01")
    assert run_cli("generate", "--data", data, "--days", 120, *args).code == 0
    for _ in range(3 * CHECKPOINT_RUNS // 5):  # 30 one-day calls, runs 120..149
        assert run_cli("generate", "--data", data).code == 0
    sizes = {p.name: p.stat().st_size for p in (data / "manifests").glob("*.json")}
    ds = Dataset(data)
    daily = [sizes[ds.manifest_path(run).name] for run in range(121, 150)
             if not is_checkpoint(run)]
    early = [sizes[ds.manifest_path(run).name] for run in range(51, 80)]
    # A daily commit lists its own files and its touched days, not all 150 days': its files
    # and renames about double its size against a manifest inside a call, which does not grow.
    for run in range(121, 150):
        if is_checkpoint(run):
            continue
        manifest = ds.manifest(run)
        own = {f"sales/sale_date={day}/" for day in manifest["touched"]} | {
            f"changes/run_date={manifest['run_date']}/"}
        assert {name.rsplit("/", 1)[0] + "/" for name in manifest["files"]} == own
    assert max(daily) < 4 * max(early), (max(daily), max(early))
    first, last = daily[:10], daily[-10:]
    assert sum(last) < 1.25 * sum(first), (first, last)
    whole = sizes[ds.manifest_path(100).name]
    assert sum(sizes.values()) < 3 * whole + 150 * max(daily)
    # And the snapshot after any commit is still whole and verifies.
    assert len(ds.snapshot()["partitions"]) == 150
    assert run_cli("verify", "--data", data).code == 0
