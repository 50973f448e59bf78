"""A real Dask cluster for tests: a ``dask scheduler`` and ``dask worker`` subprocesses on
127.0.0.1, each in its own process group, always stopped on exit (even when a test fails).

The scheduler's HTTP server (which it starts even with ``--no-dashboard``) gets a random port,
so that a cluster never collides with another one, or with a dashboard on :8787.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

DASK = Path(sys.executable).with_name("dask")
STARTUP_TIMEOUT = 60.0  # seconds; a worker imports distributed in about 2 s here
STOP_TIMEOUT = 3.0  # then SIGKILL: a nanny waits 8 s for its worker, and a test cluster keeps nothing


@dataclass(frozen=True)
class WorkerSpec:
    """One ``dask worker``: extra environment (``FASTGEN_FAULT``...) and whether it has a nanny."""

    env: dict[str, str] = field(default_factory=dict)
    nanny: bool = True


@dataclass
class Cluster:
    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen]
    folder: Path  # the processes' working directory and logs

    def log(self) -> str:
        """Every process's output so far, for a failure message."""
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(self.folder.glob("*.log")))


def _inherited() -> dict[str, str]:
    """This process's environment without fault injection (a worker gets it only if asked)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FASTGEN_FAULT")}


def _start(args: list[str], folder: Path, name: str, env: dict[str, str]) -> subprocess.Popen:
    log = open(folder / f"{name}.log", "wb")  # noqa: SIM115 - the child keeps writing to it
    try:
        return subprocess.Popen([str(DASK), *args], cwd=folder, stdout=log,
                                stderr=subprocess.STDOUT, env={**_inherited(), **env},
                                start_new_session=True)
    finally:
        log.close()


def _stop(processes: list[subprocess.Popen]) -> None:
    """SIGTERM each process group (a nanny's worker is its child), SIGKILL what is left."""
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    for process in processes:
        try:
            process.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        # The group too: a nanny's worker may outlive a nanny that was killed.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(5)


def _address(scheduler_file: Path, scheduler: subprocess.Popen, cluster_log) -> str:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if scheduler.poll() is not None:
            raise RuntimeError(f"the scheduler exited with {scheduler.returncode}:\n{cluster_log()}")
        with contextlib.suppress(FileNotFoundError, ValueError, KeyError):
            return json.loads(scheduler_file.read_text())["address"]
        time.sleep(0.05)
    raise RuntimeError(f"the scheduler wrote no {scheduler_file} in {STARTUP_TIMEOUT:.0f} s")


@contextlib.contextmanager
def cluster(folder: Path, workers: list[WorkerSpec]) -> Iterator[Cluster]:
    """A scheduler and ``workers`` (one thread each), up and registered; stopped on exit."""
    from distributed import Client

    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    scheduler = _start(["scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
                        "--dashboard-address", "127.0.0.1:0", "--scheduler-file",
                        str(scheduler_file)], folder, "scheduler", {})
    started: list[subprocess.Popen] = []
    running = Cluster("", scheduler, started, folder)
    try:
        running.address = _address(scheduler_file, scheduler, running.log)
        for n, spec in enumerate(workers):
            started.append(_start(
                ["worker", "--scheduler-file", str(scheduler_file), "--host", "127.0.0.1",
                 "--nthreads", "1", "--no-dashboard", "--dashboard-address", "127.0.0.1:0", "--name", f"worker-{n}",
                 "--local-directory", str(folder / f"worker-{n}"),
                 "--nanny" if spec.nanny else "--no-nanny"],
                folder, f"worker-{n}", spec.env))
        with Client(running.address, timeout="30s") as client:
            try:
                client.wait_for_workers(len(workers), timeout=STARTUP_TIMEOUT)
            except TimeoutError:
                raise RuntimeError(f"fewer than {len(workers)} workers registered in "
                                   f"{STARTUP_TIMEOUT:.0f} s:\n{running.log()}") from None
        yield running
    finally:
        _stop([*started, scheduler])
