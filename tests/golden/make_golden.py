"""Write the golden files that ``tests/test_golden.py`` compares today's output with.

Regenerate them only with a deliberate change of bytes. Such a change bumps
``fastgen.dataset.FORMAT_VERSION`` and says why in the README's "Format history"; then run

    .venv/bin/python tests/golden/make_golden.py

and commit the new ``tests/golden/<format>.json`` with it. A refactor that is meant to keep the
bytes (the generation code, the kernels, the writers) must pass the golden test unchanged.

The dataset is tiny but has every kind of change: six days of 3,000 rows with a seed and a
start date fixed here, made as a 4-day backfill and then two one-day calls (so both the backfill
and the daily path are pinned), mixed soft and hard deletes at a raised delete rate, a raised
share of late rows, and ``--rows-per-file`` small enough that every day and every run's feed has
three files. For each file format the golden file holds:

- ``files``: the sha256 of every file under ``sales/`` and ``changes/``;
- ``days``: each day's rows, live rows, exact sum(amount) and row hash, recomputed from its
  files with ``fastgen.digest.digest`` (as ``fastgen verify`` does);
- ``counts``: each run's counts from its manifest;
- ``versions``: the libraries the bytes depend on, and ``format_version``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import sys
import tempfile
from pathlib import Path

import numba
import numpy
import polars
import pyarrow

from fastgen.cli import main as cli
from fastgen.dataset import FORMAT_VERSION
from fastgen.digest import digest
from fastgen.formats import FORMATS

HERE = Path(__file__).resolve().parent
FILE_FORMATS = ("parquet", "csv")
# A 4-day backfill, then two daily calls that read the committed files back.
CALLS = (4, 1, 1)
# Every model option that is not a default is set here. 3,000 rows a day with 1,000 rows a
# file make three files a day and three feed files a run; a delete rate of 0.02 (default 0.005)
# gives about 50 soft and 50 hard deletes per daily run, a late share of 0.05 (default 0.01)
# about 150 late rows per run.
ARGS = ("--start-date", "2025-01-01", "--seed", "20250101", "--rows-per-day", "3000",
        "--rows-per-file", "1000", "--delete-mode", "mixed", "--delete-rate", "0.02",
        "--late-share", "0.05")
TRUTH_KEYS = ("rows", "live_rows", "amount", "row_hash")


def golden_path(fmt: str) -> Path:
    return HERE / f"{fmt}.json"


def generate(root: Path, fmt: str, calls: tuple[int, ...] = CALLS) -> None:
    """Make the golden dataset in ``root`` with the public CLI, one call per entry of ``calls``."""
    for days in calls:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = cli(["generate", "--data", str(root), "--format", fmt, "--days", str(days),
                        *ARGS])
        if code != 0:
            raise RuntimeError(f"fastgen generate --days {days} exited {code}: {err.getvalue()}")


def file_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under ``sales/`` and ``changes/``, by path relative to ``root``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in ("sales", "changes") for p in sorted((root / folder).rglob("*"))
            if p.is_file()}


def day_truth(root: Path, fmt: str) -> dict[str, dict]:
    """Each day's rows, live rows, sum(amount) and row hash, from its files read back."""
    days = {}
    for folder in sorted((root / "sales").iterdir()):
        paths = sorted(str(p) for p in folder.iterdir() if p.is_file())
        truth = digest(FORMATS[fmt].read(paths)).to_json()
        days[folder.name.split("=", 1)[1]] = {k: truth[k] for k in TRUTH_KEYS}
    return days


def manifests(root: Path) -> dict[str, dict]:
    """Every manifest, by run date."""
    return {p.stem.split("=", 1)[1]: json.loads(p.read_text())
            for p in sorted((root / "manifests").glob("*.json"))}


def run_counts(root: Path) -> dict[str, dict]:
    return {run_date: m["counts"] for run_date, m in manifests(root).items()}


def versions() -> dict[str, str]:
    """The libraries whose versions the bytes depend on (polars writes its version into every
    Parquet file; numpy does not promise its Philox multinomial stream across versions)."""
    return {"python": platform.python_version(), "polars": polars.__version__,
            "numpy": numpy.__version__, "numba": numba.__version__, "pyarrow": pyarrow.__version__}


def summary(root: Path, fmt: str) -> dict:
    """What a golden file holds, computed from the dataset in ``root``."""
    return {
        "format_version": FORMAT_VERSION,
        "versions": versions(),
        "dataset": {"format": fmt, "calls": list(CALLS), "args": list(ARGS)},
        "days": day_truth(root, fmt),
        "counts": run_counts(root),
        "files": file_hashes(root),
    }


def dump(data: dict) -> str:
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def main() -> int:
    for fmt in FILE_FORMATS:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "data"
            generate(root, fmt)
            data = summary(root, fmt)
        path = golden_path(fmt)
        path.write_text(dump(data))
        print(f"{path}: {len(data['files'])} files, {len(data['days'])} days, "
              f"format version {FORMAT_VERSION}, {path.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
