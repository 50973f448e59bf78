"""One command run as a child process, measured as users would see it (issue 10).

Wall seconds from start to exit; CPU seconds (user + system) and peak RSS (``ru_maxrss``) of
that child alone, from ``os.wait4`` on its pid, so that neither the benchmark process nor
other children are counted; and the bytes of the folder it wrote. The child's own children,
if it waits for them, are included by the kernel in its rusage; fastgen's default path makes
none.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path


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
    with open(log or os.devnull, "wb") as out:
        t0 = time.perf_counter()
        child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - t0
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if child.returncode:
        tail = log.read_text(errors="replace")[-2000:] if log else ""
        raise AssertionError(f"{' '.join(map(str, cmd))} exited {child.returncode}\n{tail}")
    return Measure(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                   peak_rss=usage.ru_maxrss * 1024,
                   bytes_written=folder_bytes(output) if output else 0, load=load)


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under ``folder`` (a file's own size if it is one)."""
    folder = Path(folder)
    if folder.is_file():
        return folder.stat().st_size
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
