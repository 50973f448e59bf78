"""What the loader tests of issue 12 share: a dataset grown one run per call with a loader run
and verified after each, a warehouse checked against the ground truth, a load killed before
its commit."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from datetime import date
from pathlib import Path

import fastgen
from fastgen.config import Model
from fastgen.dataset import Dataset
from fastgen.loaders.warehouse import connect, verify_warehouse

try:
    from tests.conftest import console_script
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from conftest import console_script

START = date(2025, 3, 1)


def problems(data: Path, wh: Path) -> list[str]:
    con = connect(wh, read_only=True)
    try:
        return verify_warehouse(Dataset(data), con)
    finally:
        con.close()


def grow(root: Path, model: Model, load: Callable, runs: int, kept_at: int,
         after: Callable[[Dataset], object] = lambda ds: None) -> dict:
    """``runs`` one-run generator calls into ``root/data``; after each, ``load(ds, con)`` into
    ``root/warehouse.duckdb`` (one long-lived connection, as a loading service keeps), verify,
    and the same load again. Returns the data, the warehouse, a copy of it after run
    ``kept_at``, the change counts, and per run the load's stats, verify's problems, the
    repeated load's stats and ``after(ds)``."""
    data, wh = root / "data", root / "warehouse.duckdb"
    con = connect(wh)
    done = {"data": data, "wh": wh, "kept": root / "kept.duckdb", "counts": {}, "loads": [],
            "problems": {}, "again": [], "after": []}
    for run in range(runs):
        fastgen.generate(data, days=1, model=model, start=START)
        ds = Dataset(data)
        for key, n in ds.manifest()["counts"].items():
            done["counts"][key] = done["counts"].get(key, 0) + n
        stats = load(ds, con)
        assert (stats.from_run, stats.to_run) == (run - 1, run)
        done["loads"].append(stats)
        done["problems"][run] = verify_warehouse(ds, con)
        done["again"].append(load(ds, con))
        done["after"].append(after(ds))
        if run == kept_at:
            con.execute("CHECKPOINT")  # the whole table in the file, none in the WAL
            shutil.copyfile(wh, done["kept"])
    con.close()
    return done


def killed_load(strategy: str, data: Path, wh: Path) -> subprocess.CompletedProcess:
    """``fastgen load`` killed (SIGKILL) after its work, before its control row and COMMIT."""
    return subprocess.run([str(console_script()), "load", "--strategy", strategy,
                           "--warehouse", str(wh), "--data", str(data)], capture_output=True,
                          text=True, env={**os.environ, "FASTGEN_FAULT": "sink"})
