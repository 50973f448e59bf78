"""Executors (issue 9, items 5 and 6): the same bytes everywhere, and faults.

One small dataset with every kind of change (updates, soft and hard deletes, late rows; three
files a day) is made as a 4-run backfill and two daily calls: in this process (the reference),
on ``--workers 2`` local processes, on ``--dask local``, and on a real Dask cluster (a
scheduler and two ``dask worker`` subprocesses on 127.0.0.1). Every file under sales/ and
changes/ must have the reference's sha256, every manifest its ground truth and counts, and
``fastgen verify`` must pass. Then the faults: a Dask worker that dies in the middle of a task
(its task is retried on the other worker), tasks that raise (the call fails in one line,
commits nothing, and the next call completes it), Ctrl-C during a ``--workers`` backfill, and
a scheduler address where nothing listens.

A call that fails or is interrupted commits nothing; the temporary files of the tasks it
finished stay, named in the staging journal, for the next call of the same runs to reuse (or
another call to remove), so the tests check that no temporary file is left that the journal
does not name, and that none is left after the next call.

Generation on executors runs as real ``fastgen`` subprocesses; the reference, ``verify`` and
the calls that complete a failed one run in this process. Nothing here uses tests/golden/.
The clusters are module fixtures (``tests/dask_cluster.py``), stopped even when a test fails.
Two known bugs are reported as xfail where they show (each test passes once it is fixed):
Ctrl-C on a terminal while ``--workers`` processes start, and a relative ``--data`` on a Dask
cluster whose workers run elsewhere.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import psutil
import pytest

from dask_cluster import WorkerSpec, cluster
from fastgen.cli import main

# Every kind of change, and days of three files (1,200 + 1,200 + about 600 rows), with every
# stress mode on (a calm dataset's bytes across splits: test_determinism, test_golden).
OPTIONS = ("--start-date", "2025-09-01", "--seed", "11", "--rows-per-day", "3000",
           "--rows-per-file", "1200", "--update-rate", "0.1", "--delete-rate", "0.03",
           "--delete-mode", "mixed", "--late-share", "0.05", "--stress")
CALLS = (4, 1, 1)  # a backfill, then daily calls; cumulative last runs 3, 4, 5
# What a manifest says about the data (the rest depends on how runs were grouped into calls).
TRUTH = ("run", "run_date", "commit_ts", "counts", "touched", "feed", "partitions", "identity")
FAULT_VARIABLES = ("FASTGEN_FAULT", "FASTGEN_FAULT_SIGNAL")
TMP = re.compile(r"^\..+\.tmp-")  # a temporary name: .part-00000.parquet.tmp-5
PART = re.compile(r"part \d+ of day \d+")
TIMEOUT = 180  # seconds for one fastgen subprocess; a call takes 2-10 s here


# ---- running fastgen -------------------------------------------------------------------------
class Called:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    def __repr__(self) -> str:
        return f"exit {self.code}\n--- stdout\n{self.out}--- stderr\n{self.err}"


def in_process(*args: object) -> Called:
    """``fastgen.cli.main`` in this process: the default executor, without a process start."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return Called(code, out.getvalue(), err.getvalue())


def command(*args: object) -> list[str]:
    return [sys.executable, "-m", "fastgen", *map(str, args)]


def environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in FAULT_VARIABLES}
    return {**env, **extra}


def subprocess_run(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None
                   ) -> Called:
    """The real ``fastgen`` in a subprocess."""
    done = subprocess.run(command(*args), capture_output=True, text=True, timeout=TIMEOUT,
                          env=env or environment(), cwd=cwd)
    return Called(done.returncode, done.stdout, done.stderr)


def make(root: Path, run, *executor: object, calls=CALLS) -> list[Called]:
    """The dataset made by ``calls`` calls of ``run`` (in_process or subprocess_run)."""
    results = []
    for n, days in enumerate(calls):
        result = run("generate", "--data", root, "--days", days, *(OPTIONS if n == 0 else ()),
                     *executor)
        assert result.code == 0, f"call {n} ({days} runs) on {executor or 'this process'}: {result!r}"
        results.append(result)
    return results


# ---- what a dataset holds --------------------------------------------------------------------
def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under sales/ and changes/, hidden ones included."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("sales", "changes") for p in sorted((root / folder).rglob("*"))
            if p.is_file()}


def manifests(root: Path) -> dict[str, dict]:
    return {p.name: json.loads(p.read_text())
            for p in sorted((root / "manifests").glob("run_date=*.json"))}


def truth(root: Path) -> dict[str, dict]:
    """Each manifest's ground truth and counts, by manifest name."""
    return {name: {k: m.get(k) for k in TRUTH} for name, m in manifests(root).items()}


def committed_bytes(root: Path) -> dict[str, bytes]:
    """Every committed file (not hidden) under sales/, changes/ and manifests/, and fastgen.json."""
    out = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root)
        if (path.is_file() and not any(part.startswith(".") for part in rel.parts)
                and (rel.parts[0] in ("sales", "changes", "manifests") or rel.name == "fastgen.json")):
            out[str(rel)] = path.read_bytes()
    return out


def temporaries(root: Path) -> list[str]:
    """Temporary files (``.name.tmp-N``) under sales/, changes/ and manifests/."""
    return sorted(str(p.relative_to(root)) for folder in ("sales", "changes", "manifests")
                  for p in (root / folder).rglob(".*") if p.is_file() and TMP.match(p.name))


def unjournaled(root: Path) -> list[str]:
    """Temporary files that the staging journal does not name: nothing would ever remove them."""
    named: list[str] = []
    journal = root / ".fastgen.staging"
    if journal.exists():
        for line in journal.read_text().splitlines():
            with contextlib.suppress(ValueError):
                entry = json.loads(line)
                if isinstance(entry, str):
                    named.append(entry)
    return [t for t in temporaries(root)
            if not any(Path(t).match(n) if "*" in n else t == n for n in named)]


def assert_same(root: Path, expected: dict, what: str) -> None:
    """Same bytes and ground truth as the reference, no temporary files, and verify passes."""
    hashes, reference = file_hashes(root), expected["hashes"]
    missing, extra = sorted(reference.keys() - hashes.keys()), sorted(hashes.keys() - reference.keys())
    differ = sorted(k for k in reference.keys() & hashes.keys() if hashes[k] != reference[k])
    assert not (missing or extra or differ), (
        f"{what}: files differ from the reference: {len(differ)} changed {differ[:5]}, "
        f"{len(missing)} missing {missing[:5]}, {len(extra)} extra {extra[:5]}")
    made = truth(root)
    for name in sorted(expected["truth"].keys() | made.keys()):
        assert made.get(name) == expected["truth"].get(name), f"{what}: {name} differs from the reference"
    assert json.loads((root / "fastgen.json").read_text()) == expected["identity"], what
    assert temporaries(root) == [], what
    assert not (root / ".fastgen.staging").exists(), f"{what}: a staging journal was left"
    result = in_process("verify", "--data", root)
    assert result.code == 0, f"{what}: fastgen verify: {result!r}"


def state(root: Path) -> dict:
    return {"hashes": file_hashes(root), "truth": truth(root),
            "identity": json.loads((root / "fastgen.json").read_text())}


# ---- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The dataset made in this process: its state after each call, and a copy of the folder."""
    base = tmp_path_factory.mktemp("reference")
    root = base / "data"
    after = []
    for n, days in enumerate(CALLS):
        result = in_process("generate", "--data", root, "--days", days, *(OPTIONS if n == 0 else ()))
        assert result.code == 0, repr(result)
        copy = base / f"after-call-{n}"
        shutil.copytree(root, copy)
        after.append({**state(root), "copy": copy})
    final = after[-1]["truth"]
    # The dataset has every kind of change, and days of several files.
    for kind in ("late_rows", "updates", "soft_deletes", "hard_deletes"):
        assert sum(m["counts"][kind] for m in final.values()) > 0, kind
    assert all(len(p["files"]) == 3 for p in final[max(final)]["partitions"].values())
    return {"after": after, "final": after[-1]}


@pytest.fixture(scope="module")
def tcp_cluster(tmp_path_factory):
    """A scheduler and two workers (with nannies), as a user runs them."""
    with cluster(tmp_path_factory.mktemp("tcp-cluster"), [WorkerSpec(), WorkerSpec()]) as running:
        yield running


@pytest.fixture(scope="module")
def fault_cluster(tmp_path_factory):
    """A scheduler, a worker that SIGKILLs itself when it finishes its first part task (no
    nanny, so it stays dead), and a normal worker."""
    faulty = WorkerSpec(env={"FASTGEN_FAULT": "partition:1", "FASTGEN_FAULT_SIGNAL": "SIGKILL"},
                        nanny=False)
    with cluster(tmp_path_factory.mktemp("fault-cluster"), [faulty, WorkerSpec()]) as running:
        yield running


# ---- 1. the same bytes everywhere --------------------------------------------------------------
def test_reference_is_complete(reference):
    """The reference passes verify and has no leftovers (what every executor is compared with)."""
    root = reference["final"]["copy"]
    assert_same(root, reference["final"], "the reference")


def test_local_processes_make_the_same_bytes(reference, tmp_path):
    root = tmp_path / "data"
    make(root, subprocess_run, "--workers", 2)
    assert_same(root, reference["final"], "--workers 2")


def test_dask_local_cluster_makes_the_same_bytes(reference, tmp_path):
    # A LocalCluster starts its worker processes in every call (about 8 s here), so this
    # dataset is made in one call; the bytes do not depend on how runs are grouped into calls,
    # and the tcp cluster below makes the backfill and daily calls.
    root = tmp_path / "data"
    make(root, subprocess_run, "--dask", "local", "--workers", 2, calls=(sum(CALLS),))
    assert_same(root, reference["final"], "--dask local --workers 2")


def test_dask_cluster_makes_the_same_bytes(reference, tcp_cluster, tmp_path):
    root = tmp_path / "data"
    results = make(root, subprocess_run, "--dask", tcp_cluster.address)
    assert all(not r.err_lines for r in results), results
    assert_same(root, reference["final"], f"--dask {tcp_cluster.address}")
    assert all(w.poll() is None for w in tcp_cluster.workers), tcp_cluster.log()


# ---- 2. a worker that dies in the middle of a task ---------------------------------------------
def test_lost_worker_task_is_retried_on_another(reference, fault_cluster, tmp_path):
    faulty, normal = fault_cluster.workers
    root = tmp_path / "data"
    # One call: the worker dies in it, and the daily calls would run on the other alone.
    [first] = make(root, subprocess_run, "--dask", fault_cluster.address, calls=CALLS[:1])
    # It died where fastgen/faults.py says (it had written its part under the temporary name),
    # and its task was made again on the other worker.
    assert faulty.wait(10) == -signal.SIGKILL, fault_cluster.log()
    assert normal.poll() is None, fault_cluster.log()
    assert_same(root, reference["after"][0], "a cluster that lost a worker")


# ---- 3. tasks that fail ------------------------------------------------------------------------
def _failed_call(result: Called) -> list[str]:
    """The failed partitions a failed call names; it must say so in one line, exit 1."""
    assert result.code == 1, repr(result)
    assert len(result.err_lines) == 1, repr(result)
    assert "Traceback" not in result.err, repr(result)
    assert result.out == "", repr(result)
    return PART.findall(result.err)


def test_failing_task_commits_nothing_and_the_next_call_completes_it(reference, tmp_path):
    """A daily call in one process whose second part task raises."""
    root = tmp_path / "data"
    shutil.copytree(reference["after"][0]["copy"], root)
    before = committed_bytes(root)
    failed = subprocess_run("generate", "--data", root, "--days", CALLS[1],
                            env=environment(FASTGEN_FAULT="partition:2",
                                            FASTGEN_FAULT_SIGNAL="raise"))
    # Part tasks run in plan order (day, then part): the second is part 1 of the first day
    # the run touches.
    run = reference["after"][1]["truth"]
    touched = run[max(run)]["touched"][0]
    first = (date.fromisoformat(touched) - date.fromisoformat(OPTIONS[1])).days
    assert _failed_call(failed) == [f"part 1 of day {first}"], repr(failed)
    assert committed_bytes(root) == before
    assert unjournaled(root) == []
    assert in_process("verify", "--data", root).code == 0
    completed = in_process("generate", "--data", root, "--days", CALLS[1])
    assert completed.code == 0, repr(completed)
    assert_same(root, reference["after"][1], "the call after a failed one")


def test_failing_tasks_on_worker_processes_commit_nothing(reference, tmp_path):
    """A backfill on two processes, each failing at its own second part task."""
    root = tmp_path / "data"
    failed = subprocess_run("generate", "--data", root, "--days", CALLS[0], *OPTIONS,
                            "--workers", 2, env=environment(FASTGEN_FAULT="partition:2",
                                                            FASTGEN_FAULT_SIGNAL="raise"))
    names = _failed_call(failed)
    assert 1 <= len(names) <= 2, repr(failed)  # each process counts its own tasks
    assert f"{len(names)} task(s) failed" in failed.err, repr(failed)
    assert [p for p in committed_bytes(root) if p != "fastgen.json"] == []
    assert unjournaled(root) == []
    completed = in_process("generate", "--data", root, "--days", CALLS[0], *OPTIONS)
    assert completed.code == 0, repr(completed)
    assert_same(root, reference["after"][0], "the backfill after a failed one")


# ---- 4. Ctrl-C -------------------------------------------------------------------------------
def _pool_workers(parent: psutil.Process) -> list[psutil.Process]:
    """The ``--workers`` processes: children of the forkserver, a child of fastgen."""
    return [w for child in parent.children() for w in child.children()]


@pytest.mark.parametrize("to, when", [("process", "tasks"), ("group", "starting")])
def test_ctrl_c_stops_workers_and_commits_nothing(tmp_path, to, when):
    """SIGINT to fastgen alone (``kill -INT``) while tasks run, or to its process group (Ctrl-C
    on a terminal) while its worker processes start: one line, exit 130, no process left,
    nothing committed."""
    root = tmp_path / "data"
    proc = subprocess.Popen(command("generate", "--data", root, "--days", 20, "--workers", 2,
                                    "--start-date", "2025-09-01", "--rows-per-day", 20000),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment(), start_new_session=True)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 60
        while len(_pool_workers(parent)) < 2 and time.monotonic() < deadline:
            assert proc.poll() is None, proc.communicate()
            time.sleep(0.02)
        if when == "tasks":  # a part task has finished, so the workers are at work
            while not list((root / "sales").rglob(".part-*")) and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.3)
        else:  # the workers are importing fastgen (more than a second here), outside any task
            time.sleep(0.4)
        children = parent.children(recursive=True)
        assert len(_pool_workers(parent)) == 2 and proc.poll() is None, "the backfill ended too soon"
        if to == "group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 5
    alive = children
    while alive and time.monotonic() < deadline:
        alive = [c for c in alive if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
        time.sleep(0.1)
    assert not alive, f"processes of fastgen left running: {alive}"
    assert [p for p in committed_bytes(root) if p != "fastgen.json"] == []
    assert unjournaled(root) == []
    assert "committed" not in out, out
    assert proc.returncode == 130, (out, err)
    if to == "group" and "KeyboardInterrupt" in err:
        pytest.xfail("known bug: pool workers do not ignore SIGINT, so one that is importing "
                     "fastgen or waiting for a task (outside a task) prints a traceback")
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "interrupted" in lines[0], err
    assert "Traceback" not in err


# ---- 5. a scheduler that is not there ----------------------------------------------------------
@pytest.fixture(scope="module", autouse=True)
def unreachable(tmp_path_factory):
    """``fastgen generate --dask tcp://127.0.0.1:1``, started with the module's first test: it
    retries the refused connection for the 10 s the Dask executor allows, mostly asleep."""
    root = tmp_path_factory.mktemp("unreachable") / "data"
    proc = subprocess.Popen(command("generate", "--data", root, "--days", 1, *OPTIONS,
                                    "--dask", "tcp://127.0.0.1:1"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment())
    try:
        yield root, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def test_unreachable_scheduler_fails_in_one_line(unreachable):
    root, proc = unreachable
    out, err = proc.communicate(timeout=TIMEOUT)
    result = Called(proc.returncode, out, err)
    assert result.code == 1, repr(result)
    assert len(result.err_lines) == 1 and "tcp://127.0.0.1:1" in result.err, repr(result)
    assert "Traceback" not in result.err
    # The folder may exist (fastgen.json is written before the executor starts), but it holds
    # no run and no temporary file.
    assert [p for p in committed_bytes(root) if p != "fastgen.json"] == []
    if root.exists():
        assert temporaries(root) == []
        assert "no committed run yet" in in_process("info", "--data", root).out


# ---- workers that do not share the driver's working directory ----------------------------------
def test_relative_data_folder_on_a_dask_cluster(reference, tcp_cluster, tmp_path):
    """``--data data`` from a folder that is not the workers' working directory."""
    driver = tmp_path / "driver"
    driver.mkdir()
    result = subprocess_run("generate", "--data", "data", "--days", CALLS[0], *OPTIONS,
                            "--dask", tcp_cluster.address, cwd=driver)
    if result.code != 0 and (tcp_cluster.folder / "data").exists():
        pytest.xfail("known bug: a relative --data reaches the Dask workers as a relative path, "
                     "and they wrote the call's files under their own working directory")
    assert result.code == 0, repr(result)
    assert_same(driver / "data", reference["after"][0], "a relative --data on a Dask cluster")
