"""Crash safety (issue 4): SIGKILL at many points, a second writer, corrupt files, a full disk.

The kills are deterministic: the generator runs as a real subprocess with FASTGEN_FAULT naming
a point of the commit protocol (see fastgen/faults.py), where it SIGKILLs itself. The redo runs
in this process through ``fastgen.cli.main``, which is what a user's re-run does, minus the
second or so a process takes to start. After every redo the files must be byte-identical to an
uninterrupted run and ``fastgen verify`` must pass.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io
import json
import os
import shutil
import signal
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fastgen
import fastgen.build.tasks
import fastgen.dataset
import fastgen.dataset.check
import fastgen.dataset.layout
from fastgen.cli import main
from fastgen.dataset import Dataset

# Every kind of change: updates, soft and hard deletes (mixed), late rows; two files per day.
OPTIONS = ["--start-date", "2025-09-01", "--seed", "7", "--rows-per-day", "2000",
           "--rows-per-file", "1000", "--late-share", "0.05", "--delete-rate", "0.02",
           "--delete-mode", "mixed"]
# A 3-day backfill, a daily run, and one more daily run (which finishes a commit killed in the
# second). Cumulative last runs: 2, 3, 4.
PLAN = [3, 1, 1]
TARGET = [sum(PLAN[:k + 1]) - 1 for k in range(len(PLAN))]

# (command of the plan, FASTGEN_FAULT), killed in this order on one folder; the points are
# listed in fastgen/faults.py. The backfill (command 0) writes 12 files (feeds of 2 files for
# runs 0 and 1, then run 2's 3 days of 2 files and its feed) and owes 14 renames (with 2
# manifests). A point that is not reached fails the test. Each kill costs a process start (~1 s).
SCENARIOS: list[list[tuple[int, str]]] = [
    *([(0, point)] for point in [
        "write:2", "write:7", "write:12", "run:1", "run:2", "feed:3", "partition:1",
        "partition:3", "manifest:2", "commit", "committed", "recover:9", "recovered",
    ]),
    *([(1, point)] for point in ["write:3", "feed:1", "partition:2", "commit", "recover:3"]),
    # Killed again while redoing: in the renames a start owes, and in a redone backfill.
    [(0, "committed"), (1, "recover:4")],
    [(0, "partition:2"), (0, "write:2")],
]


def _id(scenario: list[tuple[int, str]]) -> str:
    return "+".join(f"{cmd}-{point}" for cmd, point in scenario)


def tree(root: Path) -> dict[str, str]:
    """sha256 of every file of the dataset proper (not the lock or the checksum cache)."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        if path.is_file() and rel.split("/")[0] in ("sales", "changes", "manifests", "fastgen.json"):
            out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def snapshot(root: Path) -> dict[str, bytes]:
    """Every byte in the folder but the lock file, which each writer stamps with its pid."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name not in (".fastgen.lock", ".fastgen.commit.lock")}


def cli(*args: object) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def generate(data: Path, days: int) -> tuple[int, str, str]:
    return cli("generate", "--data", data, *OPTIONS, "--days", days)


def fastgen_exe() -> str:
    exe = Path(sys.executable).with_name("fastgen")
    if not exe.exists():
        pytest.skip(f"no console script at {exe}")
    return str(exe)


def popen_generate(data: Path, days: int, fault: str, signal_name: str = "SIGKILL") -> subprocess.Popen:
    env = {**os.environ, "FASTGEN_FAULT": fault, "FASTGEN_FAULT_SIGNAL": signal_name}
    return subprocess.Popen([fastgen_exe(), "generate", "--data", str(data), *OPTIONS,
                             "--days", str(days)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    """The uninterrupted plan: a copy of the folder and its tree after each command."""
    base = tmp_path_factory.mktemp("baseline")
    data = base / "data"
    states, trees = [], []
    for k, days in enumerate(PLAN):
        code, _, err = generate(data, days)
        assert code == 0, err
        states.append(base / f"after-{k}")
        shutil.copytree(data, states[-1])
        trees.append(tree(data))
    return states, trees


def start_from(baseline, cmd: int, dest: Path) -> Path:
    """A folder in the state before command ``cmd`` of the plan."""
    states, _ = baseline
    data = dest / "data"
    if cmd > 0:
        shutil.copytree(states[cmd - 1], data)
    return data


def test_sigkill_anywhere_then_rerun_gives_the_same_bytes(baseline, tmp_path):
    states, trees = baseline
    assert len({point for s in SCENARIOS for point in s}) >= 20

    def kill(index: int) -> tuple[Path, int]:
        scenario = SCENARIOS[index]
        data = start_from(baseline, scenario[0][0], tmp_path / str(index))
        pid = None
        for cmd, point in scenario:
            proc = popen_generate(data, PLAN[cmd], point)
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == -signal.SIGKILL, (
                f"{_id(scenario)}: fault point {point} not reached (exit {proc.returncode}): {err}")
            pid = proc.pid
        return data, pid

    # The kills run two at a time; the redos, which share this process, one after the other.
    with ThreadPoolExecutor(2) as pool:
        killed = list(pool.map(kill, range(len(SCENARIOS))))

    for scenario, (data, pid) in zip(SCENARIOS, killed):
        name = _id(scenario)
        # A lock left by a dead process holds its pid; the next writer takes it over.
        assert (data / ".fastgen.lock").read_text().strip() == str(pid), name
        last = Dataset(data).last_run()
        first = next(k for k, t in enumerate(TARGET) if t > last)
        leftovers = any(".tmp-" in p.name for p in data.rglob("*"))
        if last >= 0:
            # Before any redo, readers see the last committed run, even between a commit and
            # its renames.
            assert Dataset(data).verify() == [], name
            expected = fastgen.scan(states[TARGET.index(last)]).collect().sort("sale_id")
            assert fastgen.scan(data).collect().sort("sale_id").equals(expected), name
        # Redo the killed command, or, if it had committed, make the next one, which finishes it.
        for k in range(first, max(first, scenario[-1][0]) + 1):
            code, _, err = generate(data, PLAN[k])
            assert code == 0, f"{name}: redo of command {k} failed: {err}"
            recovered = [line for line in err.splitlines() if line.startswith("recovered:")]
            assert len(recovered) == (1 if leftovers and k == first else 0), f"{name}: {err}"
            assert tree(data) == trees[k], f"{name}: bytes differ after command {k}"
            assert (data / ".fastgen.lock").read_text().strip() == str(os.getpid())
        assert not any(".tmp-" in p.name for p in data.rglob("*")), name
        code, out, _ = cli("verify", "--data", data)
        assert code == 0, f"{name}: {out}"


def test_second_writer_fails_fast_naming_the_first(baseline, tmp_path):
    _, trees = baseline
    data = start_from(baseline, 1, tmp_path)
    # The first writer stops itself after writing a day's temporary files, holding the lock.
    first = popen_generate(data, PLAN[1], "partition:1", "SIGSTOP")
    try:
        _, status = os.waitpid(first.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
        before = snapshot(data)
        code, _, err = generate(data, 1)
        assert code == 1
        assert len(err.strip().splitlines()) == 1
        assert f"being written by another fastgen (pid {first.pid})" in err
        assert snapshot(data) == before  # the second writer touched nothing, not even leftovers
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert tree(data) == trees[1]
    assert cli("verify", "--data", data)[0] == 0


def _part(data: Path, day: str, index: int = 0) -> Path:
    return data / "sales" / f"sale_date={day}" / f"part-{index:05d}.parquet"


def _truncate(data: Path) -> None:
    path = _part(data, "2025-09-02")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _flip(data: Path) -> None:
    path = _part(data, "2025-09-01", 1)
    st = path.stat()
    with open(path, "r+b") as f:
        f.seek(st.st_size // 2)
        byte = f.read(1)
        f.seek(st.st_size // 2)
        f.write(bytes([byte[0] ^ 0x01]))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a sneaky edit that keeps the mtime


def _edit_manifest(day: str):
    def edit(data: Path) -> None:
        path = data / "manifests" / f"run_date={day}.json"
        manifest = json.loads(path.read_text())
        manifest["counts"]["updates"] += 1
        path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return edit


def _garble_manifest(data: Path) -> None:
    path = data / "manifests" / "run_date=2025-09-04.json"
    path.write_text(path.read_text()[:-40])


def _foreign(data: Path) -> None:
    shutil.copy(_part(data, "2025-09-01"), _part(data, "2025-09-01", 7))


CORRUPTIONS = {
    # name: (damage, what verify must name)
    "truncated file": (_truncate, "sales/sale_date=2025-09-02/part-00000.parquet has"),
    "flipped byte": (_flip, "sales/sale_date=2025-09-01/part-00001.parquet does not match its checksum"),
    "missing partition": (lambda d: shutil.rmtree(d / "sales" / "sale_date=2025-09-03"),
                          "sales/sale_date=2025-09-03/part-00000.parquet is missing"),
    "edited last manifest": (_edit_manifest("2025-09-04"), "manifests/run_date=2025-09-04.json was edited"),
    "edited old manifest": (_edit_manifest("2025-09-02"), "manifests/run_date=2025-09-02.json was edited"),
    "garbled manifest": (_garble_manifest, "manifests/run_date=2025-09-04.json"),
    "missing last manifest": (lambda d: (d / "manifests" / "run_date=2025-09-04.json").unlink(),
                              "manifests/run_date=2025-09-04.json is missing"),
    "missing old manifest": (lambda d: (d / "manifests" / "run_date=2025-09-01.json").unlink(),
                             "manifests/run_date=2025-09-01.json is missing"),
    "foreign file": (_foreign, "sales/sale_date=2025-09-01/part-00007.parquet is not part of the dataset"),
}


@pytest.mark.parametrize("kind", list(CORRUPTIONS))
def test_corruption_is_named_and_stops_generate(baseline, tmp_path, kind):
    damage, named = CORRUPTIONS[kind]
    data = start_from(baseline, 2, tmp_path)
    # What a start checks, so that its cache of checked files is in play.
    Dataset(data).check_committed_files()
    assert (data / fastgen.dataset.CHECKED).exists()
    damage(data)
    code, out, err = cli("verify", "--data", data)
    assert code == 1
    assert named in out, out
    before = snapshot(data)
    code, _, err = generate(data, 1)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and err.startswith("fastgen: "), err
    assert snapshot(data) == before  # refused without changing a byte


@pytest.mark.parametrize("where", ["data file", "commit manifest"])
def test_full_disk_fails_cleanly_and_keeps_the_committed_state(baseline, tmp_path, monkeypatch, where):
    _, trees = baseline
    data = start_from(baseline, 1, tmp_path)
    before = tree(data)
    calls = []

    def full(real, position, hit):
        def write(*args, **kwargs):
            path = Path(args[position])
            calls.append(path)
            if hit(path):
                path.write_bytes(b"PAR1 half a file")  # the disk filled up midway
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
            return real(*args, **kwargs)
        return write

    if where == "data file":
        real = fastgen.build.tasks.write_file
        monkeypatch.setattr(fastgen.build.tasks, "write_file", full(real, 1, lambda p: len(calls) == 3))
    else:
        real = fastgen.dataset.layout.write_json
        monkeypatch.setattr(fastgen.dataset.layout, "write_json",
                            full(real, 0, lambda p: p.parent.name == "manifests"))
    code, _, err = cli("generate", "--data", data, "--days", 1)
    assert code == 1
    assert len(err.strip().splitlines()) == 1 and "No space left on device" in err, err
    assert tree(data) == before  # the last commit intact, and no temporary file left
    assert cli("verify", "--data", data)[0] == 0
    monkeypatch.undo()
    for k in (1, 2):
        assert generate(data, PLAN[k])[0] == 0
    assert tree(data) == trees[2]


def test_a_start_hashes_only_files_changed_since_the_last_check(baseline, tmp_path, monkeypatch):
    """The checksum check before writing costs what changed, not the whole history."""
    data = start_from(baseline, 2, tmp_path)
    hashed = []
    real = fastgen.dataset.check.file_checksum
    monkeypatch.setattr(fastgen.dataset.check, "file_checksum", lambda p: hashed.append(p) or real(p))
    ds = Dataset(data)
    ds.check_committed_files()
    assert len(hashed) == len(ds.snapshot()["files"])
    hashed.clear()
    ds.check_committed_files()
    assert hashed == []
    path = _part(data, "2025-09-02")
    os.utime(path)  # a touch, or any write, changes the stat signature
    ds.check_committed_files()
    assert hashed == [path]


def test_two_first_writers_on_an_empty_folder_do_not_mix_models(tmp_path):
    """Both created fastgen.json before either held the lock: the one whose identity was
    replaced must not go on with its own model."""
    from datetime import date

    root = tmp_path / "race"
    first = Dataset.create(root, fastgen.Model(seed=1), date(2025, 1, 1))
    second = Dataset.create(root, fastgen.Model(seed=2), date(2025, 1, 1))  # replaces it
    with pytest.raises(fastgen.dataset.LockedError, match="changed while"):
        first.lock()
    second.lock()  # the identity on disk is its own
    second.unlock()
    assert Dataset(root).model.seed == 2
