"""Names and paths of a dataset folder (DESIGN.md section 4), and the few file primitives
every phase of a commit uses (hidden temporary names, durable JSON, directory fsync).

::

    fastgen.json                                   identity: format version, seed, options
    sales/sale_date=YYYY-MM-DD/part-00000.parquet  current state of that day
    changes/run_date=YYYY-MM-DD/part-00000.parquet everything that run changed
    manifests/run_date=YYYY-MM-DD.json             ground truth of that run
    held/run_date=YYYY-MM-DD/part-00000.parquet    its events held back to the next run's feed
                                                   (stress mode late events only)
    .fastgen.lock                                  the writer lock (holds the writer's pid)
    .fastgen.commit.lock                           readers share it; a commit's renames take it alone
    .fastgen.staging                               temporary files of the batch being written
    .fastgen.checked                               stat signatures of checksummed files (a cache)
"""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path

from fastgen.errors import UsageError
from fastgen.schema import FEED_PARTITION_KEY, PARTITION_KEY

FORMAT_VERSION = 4
IDENTITY = "fastgen.json"
LOCK = ".fastgen.lock"
COMMIT_LOCK = ".fastgen.commit.lock"
JOURNAL = ".fastgen.staging"
CHECKED = ".fastgen.checked"
SALES, CHANGES, MANIFESTS, HELD = "sales", "changes", "manifests", "held"


def tmp_name(final: Path, tag: str) -> Path:
    """Hidden temporary name of ``final``: Polars, DuckDB, pyarrow and Spark globs skip it."""
    return final.with_name(f".{final.name}.tmp-{tag}")


def is_temporary(path: Path) -> bool:
    return path.name.startswith(".") and ".tmp-" in path.name


def final_name(path: Path) -> Path:
    """The name ``path`` gets when its commit renames it (itself if not temporary)."""
    return path.with_name(path.name[1:].rsplit(".tmp-", 1)[0]) if is_temporary(path) else path


def day_folder(root: Path, day: date) -> Path:
    return root / SALES / f"{PARTITION_KEY}={day}"


def run_folder(root: Path, run: date) -> Path:
    return root / CHANGES / f"{FEED_PARTITION_KEY}={run}"


def held_folder(root: Path, run: date) -> Path:
    """Where a run's held-back events lie (stress mode ``late_event_share``)."""
    return root / HELD / f"{FEED_PARTITION_KEY}={run}"


def part_name(index: int, ext: str) -> str:
    """File ``index`` of a day's export or of a run's feed."""
    return f"part-{index:05d}{ext}"


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` and flush it to disk (the caller renames it into place)."""
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True, allow_nan=False)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


def enclosing_dataset(root: Path) -> Path | None:
    """The dataset folder strictly above ``root`` that would contain it, if any."""
    for parent in root.resolve().parents:
        if (parent / IDENTITY).is_file():
            return parent
    return None


def check_folder(root: Path) -> None:
    """Refuse, with one sentence, a --data that names no folder or a file."""
    if str(root) == "":
        raise UsageError("--data is empty; name a dataset folder.")
    if root.exists() and not root.is_dir():
        raise UsageError(f"--data {root} is a file, not a folder.")


def check_writable(root: Path) -> None:
    """Refuse a --data that cannot hold a new or resumed dataset, in one sentence."""
    check_folder(root)
    outer = enclosing_dataset(root)
    if outer is not None:
        raise UsageError(f"--data {root} lies inside the dataset {outer}; a dataset cannot "
                         "hold another one (its readers would read both).")
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--data {root} cannot be written.")
