"""The Python API of the README: a day in memory, runs into a folder, the folder as a LazyFrame."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from polars.testing import assert_frame_equal

import fastgen
from fastgen import Model, SalesModel
from fastgen.schema import SALES_SCHEMA

README = Path(__file__).resolve().parents[1] / "README.md"
START = date(2025, 1, 1)
ROWS = 3000


def _model(seed: int = 2) -> Model:
    return Model(seed=seed, sales=SalesModel(rows_per_day=ROWS))


@pytest.fixture
def no_disk(tmp_path, monkeypatch) -> Path:
    """Work in an empty folder, with every way fastgen writes files made to fail loudly."""
    def refuse(*args, **kwargs):
        raise AssertionError("fastgen.day touched the disk")

    import fastgen.dataset
    import fastgen.formats

    monkeypatch.setattr(fastgen.formats, "write_file", refuse)
    monkeypatch.setattr(fastgen.dataset, "write_file", refuse, raising=False)
    monkeypatch.setattr(fastgen.Dataset, "create", refuse)
    monkeypatch.setattr(pl.DataFrame, "write_parquet", refuse)
    monkeypatch.setattr(pl.DataFrame, "write_csv", refuse)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_day_is_a_polars_frame_made_in_memory(no_disk):
    frame = fastgen.day(_model(), START, 0)
    assert isinstance(frame, pl.DataFrame)
    assert dict(frame.schema) == SALES_SCHEMA
    assert frame.height == ROWS  # no late rows can land on the first day yet
    assert frame["sale_id"].to_list() == list(range(1, ROWS + 1))
    assert frame["sold_at"].is_sorted()
    day_start = datetime.combine(START, datetime.min.time())
    assert frame["sold_at"].min() >= day_start
    assert frame["sold_at"].max() < day_start + timedelta(days=1)
    assert list(no_disk.iterdir()) == []


def test_a_later_day_has_the_ids_of_its_run(no_disk):
    frame = fastgen.day(_model(), START, 2)
    assert dict(frame.schema) == SALES_SCHEMA
    # A few of the run's rows arrive late and live on earlier days.
    assert 0.9 * ROWS < frame.height <= ROWS
    assert frame["sale_id"].min() >= 2 * ROWS + 1 and frame["sale_id"].max() <= 3 * ROWS
    assert_frame_equal(frame, fastgen.day(_model(), START, 2))
    assert list(no_disk.iterdir()) == []


def test_generate_then_scan(tmp_path):
    path = tmp_path / "data"
    summaries = fastgen.generate(path, days=2, model=_model(), start=START)
    assert len(summaries) == 2
    sales = fastgen.scan(path).collect()
    assert isinstance(sales, pl.DataFrame)
    assert {k: sales.schema[k] for k in SALES_SCHEMA} == SALES_SCHEMA
    assert sales.schema["sale_date"] == pl.Date
    assert sorted(sales["sale_date"].unique().to_list()) == [START, START + timedelta(days=1)]
    assert sales["sale_id"].is_unique().all()
    assert (sales["sold_at"].dt.date() == sales["sale_date"]).all()
    # What the API scans is what any reader of the folder sees.
    direct = pl.scan_parquet(path / "sales", hive_partitioning=True).collect()
    assert_frame_equal(sales.sort("sale_id"), direct.sort("sale_id"), check_column_order=False)
    # The folder holds what the simulation computes in memory for that day after that run.
    on_disk = sales.filter(pl.col("sale_date") == START + timedelta(days=1)).drop("sale_date")
    in_memory = fastgen.Simulation(_model(), START).partition(1, 1)
    assert_frame_equal(on_disk.sort("sale_id"), in_memory.sort("sale_id"))

    more = fastgen.generate(path, days=1)
    assert len(more) == 1
    assert fastgen.scan(path).select(pl.col("sale_date").n_unique()).collect().item() == 3


def test_generate_refuses_a_different_model_for_an_existing_dataset(tmp_path):
    path = tmp_path / "data"
    fastgen.generate(path, days=1, model=_model(seed=2), start=START)
    # The CLI refuses a model change (issue 2 item 6); the API must not silently drop it.
    with pytest.raises((fastgen.ConfigError, fastgen.DatasetError, ValueError)):
        fastgen.generate(path, days=1, model=_model(seed=3), start=START)


def test_scan_of_a_csv_dataset_equals_the_parquet_one(tmp_path):
    frames = {}
    for fmt in ("parquet", "csv"):
        fastgen.generate(tmp_path / fmt, days=2, model=_model(), start=START, fmt=fmt)
        frames[fmt] = fastgen.scan(tmp_path / fmt).collect().sort("sale_id")
    assert_frame_equal(frames["csv"], frames["parquet"], check_column_order=False)


def test_readme_python_api_runs(tmp_path, monkeypatch):
    text = README.read_text()
    section = text.split("## Python API", 1)
    assert len(section) == 2, "README.md has no '## Python API' section"
    block = re.search(r"```python\n(.*?)```", section[1], re.S)
    assert block, "the README's Python API section has no python code block"
    code = block.group(1)
    for call in ("fastgen.day(", "fastgen.generate(", "fastgen.scan("):
        assert call in code, f"the README's Python API does not show {call}"
    # The README's sizes, made small: the point is that the calls work as written.
    code = re.sub(r"rows_per_day=[\d_]+", f"rows_per_day={ROWS}", code)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(compile(code, str(README), "exec"), scope)
    assert isinstance(scope["day"], pl.DataFrame)
    assert scope["sales"].height > 0
