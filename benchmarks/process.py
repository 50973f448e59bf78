"""One command run as a child process, measured as users would see it (issue 10).

Wall seconds from start to exit; CPU seconds (user + system) and peak RSS (``ru_maxrss``) of
that process alone, from ``os.wait4`` on its pid, so that neither the benchmark process nor
other children are counted; and the bytes of the folder it wrote. The command's own children,
if it waits for them, are included by the kernel in its rusage; fastgen's default path makes
none.

The command is started by a small helper interpreter, not by the benchmark process: Linux
keeps a process's peak RSS across exec, and ``subprocess`` starts children with vfork, so a
child of a benchmark process holding gigabytes of frames would report those gigabytes as its
own ``ru_maxrss``. The helper (a bare interpreter, about 10 MB) spawns the command, times it
from spawn to exit and passes its rusage back through a pipe.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

# argv: the pipe's fd, then the command. Writes [wall s, CPU s, ru_maxrss KiB, exit code].
HELPER = """
import json, os, sys, time
out = int(sys.argv[1])
os.set_inheritable(out, False)
t0 = time.perf_counter()
pid = os.posix_spawn(sys.argv[2], sys.argv[2:], os.environ)
_, status, ru = os.wait4(pid, 0)
wall = time.perf_counter() - t0
os.write(out, json.dumps([wall, ru.ru_utime + ru.ru_stime, ru.ru_maxrss,
                          os.waitstatus_to_exitcode(status)]).encode())
"""


@dataclass(frozen=True)
class Measure:
    wall_s: float
    cpu_s: float  # user + system of the child
    peak_rss: int  # bytes (ru_maxrss is KiB on Linux)
    bytes_written: int  # size of the output folder after the run, 0 without one
    load: float  # 1-minute load average when the child started

    def rates(self, rows: int) -> dict[str, float]:
        """The measure with rows/s and MB/s over the whole wall time."""
        return asdict(self) | {"rows": rows, "rows_per_s": rows / self.wall_s,
                               "mb_per_s": self.bytes_written / 1e6 / self.wall_s}


def run(cmd: list[str], *, output: Path | None = None, log: Path | None = None,
        env: dict[str, str] | None = None) -> Measure:
    """Run ``cmd`` to its end; stdout and stderr go to ``log`` (else discarded).

    A non-zero exit raises AssertionError with the end of the log: a benchmark whose program
    failed measured nothing.
    """
    load = os.getloadavg()[0]
    read, write = os.pipe()
    try:
        with open(log or os.devnull, "wb") as out:
            helper = subprocess.Popen([sys.executable, "-S", "-c", HELPER, str(write),
                                       *map(str, cmd)], stdout=out, stderr=subprocess.STDOUT,
                                      env=env, pass_fds=(write,))
        os.close(write)
        write = -1
        with os.fdopen(read, "rb") as pipe:
            read = -1
            reported = pipe.read()
        helper.wait()
    finally:
        for fd in (read, write):
            if fd >= 0:
                os.close(fd)
    wall, cpu, maxrss_kib, code = json.loads(reported) if reported else (0, 0, 0, helper.returncode)
    if code or helper.returncode:
        tail = log.read_text(errors="replace")[-2000:] if log else ""
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {code or helper.returncode}\n{tail}")
    return Measure(wall_s=wall, cpu_s=cpu, peak_rss=maxrss_kib * 1024,
                   bytes_written=folder_bytes(output) if output else 0, load=load)


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder`` (a file's own size if it is one)."""
    folder = Path(folder)
    if folder.is_file():
        return folder.stat().st_size
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
