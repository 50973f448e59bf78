"""Which suite a run collects (STYLE.md rule 7; issue 10 item 4): a plain ``pytest`` runs
tests/ only, ``pytest --benchmark-only`` runs benchmarks/ only, both from the repository root
(pyproject's testpaths name both folders). Files or folders named on the command line are
collected as asked. Loaded by ``-p benchmarks.suite`` in pyproject.toml: a root conftest.py
would clash with the module name of tests/conftest.py, which the tests import.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SUITES = {ROOT / "tests": False, ROOT / "benchmarks": True}  # folder -> holds benchmarks


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    if config.args_source != pytest.Config.ArgsSource.TESTPATHS:
        return None
    for folder, holds_benchmarks in SUITES.items():
        if Path(collection_path).is_relative_to(folder):
            return holds_benchmarks != bool(config.getoption("benchmark_only", False)) or None
    return None
