"""Shared fixtures: the CLI in-process and as the real console script, folder snapshots."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from fastgen.cli import main

# A start date far from today, so that a test never depends on the clock.
START = "2025-01-01"
# Small days keep a CLI call well under a second; 1,000 rows still have late rows and changes.
SMALL = ("--rows-per-day", "1000", "--start-date", START)


@dataclass(frozen=True)
class CliResult:
    code: int
    out: str
    err: str

    @property
    def err_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.strip()]

    @property
    def out_lines(self) -> list[str]:
        return [line for line in self.out.splitlines() if line.strip()]


def _exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 1


@pytest.fixture
def run_cli(capsys, monkeypatch):
    """``run_cli(*args)``: ``fastgen.cli.main(list)`` in this process, with its exit code and output."""
    monkeypatch.setenv("COLUMNS", "200")  # argparse help without wrapping inside "(default: ...)"

    def run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # --help, and argparse if it ever exits on its own
            code = _exit_code(exc)
        out, err = capsys.readouterr()
        return CliResult(code, out, err)

    return run


def console_script() -> Path:
    """The installed ``fastgen`` entry point next to this interpreter."""
    path = Path(sys.executable).with_name("fastgen")
    if not path.exists():
        pytest.skip(f"no console script at {path}; install the package (pip install -e .)")
    return path


@pytest.fixture
def run_script():
    """``run_script(*args, env=..., cwd=...)``: the real ``fastgen`` console script in a subprocess."""
    exe = console_script()

    def run(*args: object, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 300) -> CliResult:
        full_env = {**os.environ, **(env or {})}
        done = subprocess.run([str(exe), *map(str, args)], capture_output=True, text=True,
                              env=full_env, cwd=cwd, timeout=timeout)
        return CliResult(done.returncode, done.stdout, done.stderr)

    return run


def tree(root: Path) -> dict[str, bytes | None]:
    """Every folder (None) and file (its bytes) under ``root``, hidden ones included."""
    if not root.exists():
        return {}
    out: dict[str, bytes | None] = {}
    for path in sorted(root.rglob("*")):
        rel = str(path.relative_to(root))
        out[rel] = path.read_bytes() if path.is_file() else None
    return out


def file_hashes(root: Path, *folders: str) -> dict[str, str]:
    """sha256 of every file under the given sub-folders of ``root``, by relative path."""
    out = {}
    for folder in folders:
        for path in sorted((root / folder).rglob("*")):
            if path.is_file():
                out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


@pytest.fixture
def snapshot():
    """``snapshot(root)``: the folder tree and bytes under ``root``, to compare before and after."""
    return tree


@pytest.fixture
def hashes():
    """``hashes(root, *folders)``: sha256 of every file under those folders."""
    return file_hashes


@pytest.fixture
def small_dataset(run_cli, tmp_path):
    """``small_dataset(*extra, path=None, days=3)``: a committed dataset of 1,000-row days."""

    def make(*extra: object, path: Path | None = None, days: int = 3) -> Path:
        path = path or tmp_path / "data"
        result = run_cli("generate", "--data", path, "--days", days, *SMALL, *extra)
        assert result.code == 0, result.err
        return path

    return make
