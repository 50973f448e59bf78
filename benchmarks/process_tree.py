"""One command and every process it starts, measured (the scale-out benchmarks, issue 9).

Wall seconds; CPU seconds of the whole process tree (the benchmark process makes itself a
child subreaper, so descendants orphaned by their parent, like multiprocessing's forkserver
and its workers, are reaped here and their CPU counted); the peak RSS of the largest process
(the exact maximum from the reaped processes' rusage) and of the driver and the largest other
process (VmHWM of every process of the tree, polled). ``benchmarks/process.py`` measures a
single process without polling, for the day's benchmarks.
"""

from __future__ import annotations

import ctypes
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

POLL_S = 0.2  # how often the process tree is sampled for VmHWM
PR_SET_CHILD_SUBREAPER = 36  # linux/prctl.h


@dataclass
class Measure:
    wall_s: float
    cpu_s: float  # user + system of every process of the tree
    peak_rss: int  # bytes, largest process of the tree (rusage)
    driver_rss: int  # bytes, the `fastgen generate` process itself (VmHWM, polled)
    other_rss: int  # bytes, largest other process: a worker, a nanny, the forkserver (polled)
    processes: int  # processes seen in the tree
    load: tuple[float, float]  # 1-minute load average before and after

    def json(self, rows: int) -> dict:
        return vars(self) | {"rows_per_s": rows / self.wall_s}



def subreaper() -> bool:
    """Make this process adopt orphaned descendants, so that their CPU time is counted."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _hwm(process: psutil.Process) -> int:
    """Peak RSS of a live process so far (VmHWM), else its current RSS."""
    try:
        with open(f"/proc/{process.pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return process.memory_info().rss
    except psutil.Error:
        return 0


def run(cmd: list[str], env: dict[str, str], log: Path) -> Measure:
    """Run ``cmd`` to its end; measure it and every process it starts."""
    load0 = os.getloadavg()[0]
    used0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, cwd=log.parent, stdout=out, stderr=subprocess.STDOUT)
    root = psutil.Process(proc.pid)
    tree: dict[int, psutil.Process] = {root.pid: root}
    peak: dict[int, int] = {}
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        try:
            tree.update({p.pid: p for p in root.children(recursive=True)})
        except psutil.Error:
            pass
        for p in list(tree.values()):
            peak[p.pid] = max(peak.get(p.pid, 0), _hwm(p))
        time.sleep(POLL_S)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # ru_maxrss (KiB on Linux) of a reaped process covers the descendants it reaped itself.
    maxrss = [usage.ru_maxrss * 1024]
    # Descendants whose parent did not wait for them (the forkserver, which reaped the pool's
    # workers) are reparented to this process, a subreaper: reap them, so their CPU counts.
    left = {pid_: p for pid_, p in tree.items() if pid_ != root.pid}
    deadline = time.monotonic() + 60
    while left and time.monotonic() < deadline:
        for pid_, p in list(left.items()):
            try:
                reaped, _, orphan = os.wait4(pid_, os.WNOHANG)
            except ChildProcessError:  # not (yet) ours: gone, or still with its parent
                if not p.is_running():
                    del left[pid_]
                continue
            if reaped:
                maxrss.append(orphan.ru_maxrss * 1024)
                del left[pid_]
        time.sleep(0.05)
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{log.read_text()[-2000:]}")
    others = [rss for pid_, rss in peak.items() if pid_ != root.pid]
    return Measure(
        wall_s=wall,
        cpu_s=(used.ru_utime + used.ru_stime) - (used0.ru_utime + used0.ru_stime),
        peak_rss=max(*maxrss, *peak.values()),
        driver_rss=peak.get(root.pid, 0), other_rss=max(others, default=0),
        processes=len(tree), load=(load0, os.getloadavg()[0]))
