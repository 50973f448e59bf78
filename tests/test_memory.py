"""Bounded memory (issue 2 item 7): a 50,000,000-row day completes with a peak RSS under 1.5 GB.

The CLI runs in a subprocess of a small wrapper process, so that the wrapper's
``getrusage(RUSAGE_CHILDREN).ru_maxrss`` is the peak of that one run and nothing else. A
watchdog in the wrapper stops the run once it passes GUARD_BYTES, so that a regression fails
this test quickly instead of exhausting the memory of a machine shared with other work; the
bound itself stays BOUND_BYTES.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import polars as pl
import pytest

from conftest import START, console_script

ROWS = 50_000_000
BOUND_BYTES = 1_500_000_000  # issue 2: "peak RSS under 1.5 GB"
GUARD_BYTES = 3 * 1024**3

WRAPPER = r"""
import json, resource, subprocess, sys, threading, time

exe, data, rows, start, guard = sys.argv[1:6]
guard = int(guard)
child = subprocess.Popen([exe, "generate", "--rows-per-day", rows, "--days", "1", "--data", data,
                          "--start-date", start], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
done = threading.Event()
seen = {"rss": 0, "killed": False}

def watch():
    while not done.is_set():
        try:
            with open(f"/proc/{child.pid}/status") as f:
                rss = next(int(l.split()[1]) * 1024 for l in f if l.startswith("VmRSS:"))
        except (OSError, StopIteration):
            return
        seen["rss"] = max(seen["rss"], rss)
        if rss > guard and not done.is_set():
            seen["killed"] = True
            child.kill()
            return
        time.sleep(0.05)

threading.Thread(target=watch, daemon=True).start()
t0 = time.perf_counter()
out, err = child.communicate()
done.set()
print(json.dumps({
    "code": child.returncode,
    "seconds": time.perf_counter() - t0,
    "maxrss_bytes": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024,
    "sampled_rss_bytes": seen["rss"],
    "killed": seen["killed"],
    "stderr": err.decode(errors="replace")[-2000:],
}))
"""


@pytest.mark.slow
def test_a_50_million_row_day_stays_under_1_5_gb(tmp_path):
    data = tmp_path / "data"
    try:
        done = subprocess.run(
            [sys.executable, "-c", WRAPPER, str(console_script()), str(data), str(ROWS), START,
             str(GUARD_BYTES)],
            capture_output=True, text=True, timeout=900)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        peak = report["maxrss_bytes"]
        measured = (f"peak RSS {peak / 1e9:.2f} GB after {report['seconds']:.0f} s"
                    f"{' (stopped by the guard at ' + format(GUARD_BYTES / 1e9, '.1f') + ' GB)' if report['killed'] else ''}")
        print(measured)
        assert not report["killed"], f"the run passed the guard: {measured}, bound {BOUND_BYTES / 1e9} GB"
        assert report["code"] == 0, report["stderr"]
        assert peak < BOUND_BYTES, f"{measured}, bound {BOUND_BYTES / 1e9} GB"
        rows = pl.scan_parquet(data / "sales", hive_partitioning=True).select(pl.len()).collect().item()
        assert rows == ROWS
    finally:
        shutil.rmtree(data, ignore_errors=True)  # 1.5 GB of Parquet
