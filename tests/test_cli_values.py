"""Issue 8 item 8 through the command line: every model option, given any text, is either
refused with one line, exit 2 and nothing on disk, or makes a dataset that verifies.

The model's own checks are in test_validation.py; this is the edge users meet.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgen.cli import MODEL_OPTIONS

# Values that broke fastgen before (issue 8), and the shapes around them.
NUMBERS = ["nan", "inf", "-inf", "-1", "0", "1", "2", "0.5", "1e308", "1e300", "1e-300",
           "24", "23.99", "100", "101", "10000000", "10000001", "3000000000", "10000000000",
           "9223372036854775807", "9223372036854775808", "", "x", "1,2", "nan,1", "inf,1",
           "1e308,1e308", "9,17", "0.5,0.5", "1,1,1"]
FLAGS = [flag for flag, *_ in MODEL_OPTIONS if flag not in ("--delete-mode",)]


@pytest.mark.parametrize("args, named", [
    (["--rush-weights", "nan,1"], "--rush-weights"),
    (["--rush-weights", "inf,1"], "--rush-weights"),
    (["--rush-weights", "1e308,1e308"], "--rush-weights"),
    (["--rush-sigma", "inf"], "--rush-sigma"),
    (["--rush-sigma", "1e300"], "--rush-sigma"),
    (["--store-skew", "nan"], "--store-skew"),
    (["--sigmoid-steepness", "inf"], "--sigmoid-steepness"),
    (["--stores", "10000000000"], "--stores"),
    (["--products", "3000000000"], "--products"),
    (["--start-date", "9999-12-31", "--days", "5"], "--days"),
    (["--days", "10000000000000"], "--days"),
    (["--quantity-min", "1000000", "--quantity-max", "1000000", "--price-min-cents",
      "100000000", "--price-max-cents", "100000000"], "--price-max-cents"),
])
def test_the_values_that_broke_fastgen_are_refused(run_cli, snapshot, tmp_path, args, named):
    before = snapshot(tmp_path)
    result = run_cli("generate", "--data", tmp_path / "data", "--rows-per-day", 100, *args)
    assert result.code == 2, result.err
    assert len(result.err_lines) == 1 and named in result.err, result.err
    assert snapshot(tmp_path) == before


def test_a_resumed_dataset_cannot_run_past_the_calendar(run_cli, tmp_path, snapshot):
    data = tmp_path / "data"
    assert run_cli("generate", "--data", data, "--rows-per-day", 100, "--start-date",
                   "9999-12-28", "--days", 2).code == 0
    before = snapshot(data)
    result = run_cli("generate", "--data", data, "--days", 2)
    assert result.code == 2 and "9999-12-30" in result.err, result.err
    assert snapshot(data) == before


@settings(max_examples=40, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(FLAGS), st.sampled_from(NUMBERS), min_size=1, max_size=3))
def test_any_option_value_is_refused_cleanly_or_verifies(run_cli, snapshot, options):
    root = Path(tempfile.mkdtemp())
    try:
        data = root / "data"
        args = [x for flag, value in options.items() for x in (flag, value)]
        # Small days, unless the example sets them: a huge accepted day would only be slow.
        if "--rows-per-day" not in options:
            args += ["--rows-per-day", "200"]
        elif options["--rows-per-day"] not in ("0", "1", "2", "24", "100", "-1", ""):
            return
        result = run_cli("generate", "--data", data, "--days", 2, "--start-date", "2025-01-01",
                         *args)
        if result.code == 0:
            check = run_cli("verify", "--data", data)
            assert check.code == 0, (args, check.out)
        else:
            assert result.code == 2, (args, result.err)
            assert len(result.err_lines) == 1 and "Traceback" not in result.err, (args, result.err)
            assert snapshot(root) == {}, (args, "a refused call left files")
    finally:
        shutil.rmtree(root)
