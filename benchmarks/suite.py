"""The benchmark suite's plugin (STYLE.md rule 7; issue 10 item 4), loaded by
``-p benchmarks.suite`` in pyproject.toml (a root conftest.py would clash with the module name
of tests/conftest.py, which the tests import).

Which suite a run collects: a plain ``pytest`` runs tests/ only, ``pytest --benchmark-only``
runs benchmarks/ only, both from the repository root (pyproject's testpaths name both
folders). Files or folders named on the command line are collected as asked.

Targets that depend on the machine (rows/s, wall seconds, ratios to another program, peak
RSS) are not asserted: a benchmark records each with the ``target`` fixture, and the end of
the session prints them as a table, met or missed with the figures, so that a slower machine
still passes and still says where it stands. The table also goes into the benchmark JSON
(``--benchmark-json``) under ``"targets"``, and into each benchmark's ``extra_info``.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Literal

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITES = {ROOT / "tests": False, ROOT / "benchmarks": True}  # folder -> holds benchmarks
TARGETS = pytest.StashKey[list["Target"]]()


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return None
    for folder, holds_benchmarks in SUITES.items():
        if Path(collection_path).is_relative_to(folder):
            return holds_benchmarks != bool(config.getoption("benchmark_only", False)) or None
    return None


# ---- machine-dependent targets -------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    name: str
    measured: float
    limit: float
    unit: str  # "s", "x" (a ratio), "rows/s" or "B"
    better: Literal["lower", "higher"]
    test: str  # the benchmark that measured it
    load: float  # 1-minute load average when it was recorded

    @property
    def met(self) -> bool:
        return self.measured <= self.limit if self.better == "lower" else self.measured >= self.limit

    def row(self) -> tuple[str, str, str, str]:
        sign = "<=" if self.better == "lower" else ">="
        return ("met" if self.met else "MISSED", self.name, show(self.measured, self.unit),
                f"{sign} {show(self.limit, self.unit)}")


@contextmanager
def bench_folder(tmp_path_factory: pytest.TempPathFactory, name: str) -> Iterator[Path]:
    """A fresh folder for a benchmark's datasets, removed after: ``$FASTGEN_BENCH_DIR/name``
    (emptied first) when that is set, to put them on another disk; else pytest's tmp."""
    base = os.environ.get("FASTGEN_BENCH_DIR")
    root = Path(base) / name if base else tmp_path_factory.mktemp(name)
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    yield root
    shutil.rmtree(root, ignore_errors=True)


def show(value: float, unit: str) -> str:
    if value != value:  # NaN: not measured
        return "n/a"
    if unit == "rows/s":
        return f"{value / 1e6:.2f}M rows/s"
    if unit == "B":
        return f"{value / 1e9:.2f} GB"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:.2f} {unit}"


@pytest.fixture
def target(request: pytest.FixtureRequest) -> Callable[..., Target]:
    """``target(name, measured, limit, unit, better="lower")``: record a target, not assert it."""

    def record(name: str, measured: float, limit: float, unit: str,
               better: Literal["lower", "higher"] = "lower") -> Target:
        assert better in ("lower", "higher"), better
        t = Target(name, float(measured), float(limit), unit, better, request.node.nodeid,
                   os.getloadavg()[0])
        request.config.stash.setdefault(TARGETS, []).append(t)
        if "benchmark" in request.fixturenames:
            info = request.getfixturevalue("benchmark").extra_info
            info.setdefault("targets", []).append(asdict(t) | {"met": t.met})
        return t

    return record


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    targets = config.stash.get(TARGETS, [])
    if not targets:
        return
    rows = [t.row() for t in targets]
    width = [max(len(r[i]) for r in rows) for i in range(4)]
    terminalreporter.write_sep("=", "targets: depend on the machine, recorded, not asserted")
    for t, r in zip(targets, rows):
        line = "  ".join(cell.ljust(w) for cell, w in zip(r, width))
        terminalreporter.write_line(f"{line}  (load {t.load:.1f})",
                                    red=not t.met, green=t.met)
    missed = sum(not t.met for t in targets)
    one, five, fifteen = os.getloadavg()
    terminalreporter.write_line(f"{len(targets) - missed} met, {missed} missed; "
                                f"load average {one:.2f} {five:.2f} {fifteen:.2f}")


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    output_json["targets"] = [asdict(t) | {"met": t.met}
                              for t in config.stash.get(TARGETS, [])]
