"""The reference loaders keep a DuckDB warehouse equal to the ground truth (issue 5).

Every kind of change is on: updates, soft and hard deletes (mixed mode) and late rows (5% of
new rows). Loads are transactions with their control row, so a failure or a kill halfway
leaves the previous warehouse, and a repeated load changes nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import date
from pathlib import Path

import duckdb
import polars as pl
import pytest

import fastgen
from fastgen import cli
from fastgen.config import ChangeModel, Model, SalesModel
from fastgen.dataset import Dataset, UsageError
from fastgen.loaders import LOADERS, STRATEGIES, cdc, load, warehouse
from fastgen.loaders.target import Warehouse
from fastgen.loaders.warehouse import STATE_TABLE, connect, verify_warehouse

try:
    from tests.warehouse_checks import problems
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from warehouse_checks import problems

START = date(2025, 3, 1)
RUNS = 60
MODEL = Model(seed=5, sales=SalesModel(rows_per_day=2_000),
              changes=ChangeModel(late_share=0.05, delete_mode="mixed", delete_rate=0.02))


def _generate(path: Path, runs: int, model: Model = MODEL, fmt: str = "parquet") -> None:
    for _ in range(runs):  # one run per call, as a daily pipeline does
        fastgen.generate(path, days=1, model=model, start=START, fmt=fmt)


def _snapshot(path: Path) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Everything a load may change: the table's rows and the control table."""
    con = duckdb.connect(str(path), read_only=True)
    try:
        rows = con.sql("SELECT * FROM sales ORDER BY sale_id").pl()
        control = con.sql(f"SELECT * FROM {STATE_TABLE} ORDER BY strategy").pl()
    finally:
        con.close()
    return rows, control


def test_every_loader_matches_ground_truth_after_every_run(tmp_path):
    data = tmp_path / "data"
    seen = {"updates": 0, "soft_deletes": 0, "hard_deletes": 0, "late_rows": 0}
    # One long-lived connection per warehouse, as a loading service would keep.
    cons = {s: connect(tmp_path / f"{s}.duckdb") for s in STRATEGIES}
    for run in range(RUNS):
        _generate(data, 1)
        ds = Dataset(data)
        counts = ds.manifest()["counts"]
        for key in seen:
            seen[key] += counts[key]
        for strategy, con in cons.items():
            stats = LOADERS[strategy](ds, con)
            assert (stats.from_run, stats.to_run) == (run - 1, run)
            assert verify_warehouse(ds, con) == [], (strategy, run)
            if run % 20 == 19:  # a repeated load is harmless
                again = LOADERS[strategy](ds, con)
                if strategy != "full":
                    assert (again.rows_read, again.rows_changed, again.partitions) == (0, 0, 0)
                assert verify_warehouse(ds, con) == [], (strategy, run, "again")
    assert all(seen.values()), seen  # every kind of change happened
    for con in cons.values():
        con.close()
    last = Dataset(data).snapshot()
    con = duckdb.connect(str(tmp_path / "cdc.duckdb"), read_only=True)
    assert con.execute("SELECT count(*) FROM sales").fetchone()[0] == \
        sum(p["rows"] for p in last["partitions"].values())  # hard deletes are gone
    con.close()


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A dataset of 12 runs and, per strategy, a warehouse loaded after run 7."""
    root = tmp_path_factory.mktemp("history")
    data = root / "data"
    _generate(data, 8)
    warehouses = {}
    for strategy in STRATEGIES:
        warehouses[strategy] = root / f"{strategy}.duckdb"
        load(strategy, data, warehouses[strategy])
    _generate(data, 4)
    return data, warehouses


def _copy(src: Path, tmp_path: Path) -> Path:
    dst = tmp_path / src.name
    dst.write_bytes(src.read_bytes())
    return dst


class Boom(RuntimeError):
    pass


def _then_fail(real):
    def failing(*args, **kwargs):
        real(*args, **kwargs)
        raise Boom("killed halfway")

    return failing


@pytest.mark.parametrize("strategy, module, name", [
    ("full", Warehouse, "insert_files"),          # the old table dropped, the new one filled
    ("incremental", Warehouse, "insert_files"),   # days deleted and re-inserted
    ("cdc", cdc, "feed"),                         # the first of four feeds applied
])
def test_a_load_failing_halfway_leaves_the_previous_state(history, tmp_path, monkeypatch,
                                                          strategy, module, name):
    data, warehouses = history
    wh = _copy(warehouses[strategy], tmp_path)
    rows, control = _snapshot(wh)
    monkeypatch.setattr(module, name, _then_fail(getattr(module, name)))
    with pytest.raises(Boom):
        load(strategy, data, wh)
    after_rows, after_control = _snapshot(wh)
    assert after_rows.equals(rows) and after_control.equals(control)
    assert control["last_run"].to_list() == [7]
    monkeypatch.undo()
    stats = load(strategy, data, wh)  # the next load simply starts again
    assert (stats.from_run, stats.to_run) == (7, 11)
    assert problems(data, wh) == []


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_a_load_killed_before_commit_leaves_the_previous_state(history, tmp_path, strategy):
    data, warehouses = history
    wh = _copy(warehouses[strategy], tmp_path)
    rows, control = _snapshot(wh)
    # The process dies (no rollback, no close) after all the data work, before COMMIT.
    script = textwrap.dedent(f"""
        import os
        from fastgen.loaders import load, target
        def die(*args, **kwargs):
            os._exit(9)
        target.save_state = die  # the Warehouse target's control row, written last
        load({strategy!r}, {str(data)!r}, {str(wh)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 9, proc.stderr
    after_rows, after_control = _snapshot(wh)
    assert after_rows.equals(rows) and after_control.equals(control)
    assert load(strategy, data, wh).to_run == 11
    assert problems(data, wh) == []


def test_strategies_can_take_over_one_warehouse(history, tmp_path):
    data, warehouses = history
    wh = _copy(warehouses["full"], tmp_path)  # at run 7, loaded by full
    stats = load("cdc", data, wh)
    assert (stats.from_run, stats.to_run) == (7, 11)
    assert problems(data, wh) == []
    _, control = _snapshot(wh)
    assert dict(zip(control["strategy"], control["last_run"])) == {"cdc": 11, "full": 7}
    assert load("incremental", data, wh).rows_read == 0  # already at run 11


def test_verify_names_each_day_that_differs(history, tmp_path):
    data, warehouses = history
    wh = _copy(warehouses["incremental"], tmp_path)
    load("incremental", data, wh)
    con = duckdb.connect(str(wh))
    con.execute("UPDATE sales SET amount = amount + 1 WHERE sale_id = "
                "(SELECT min(sale_id) FROM sales WHERE sale_date = DATE '2025-03-02')")
    con.execute("DELETE FROM sales WHERE sale_date = DATE '2025-03-05'")
    con.execute("INSERT INTO sales SELECT * REPLACE (DATE '2024-12-31' AS sale_date, "
                "sale_id + 10000000 AS sale_id) FROM sales WHERE sale_date = DATE '2025-03-06'")
    con.close()
    found = problems(data, wh)
    assert sorted({p.split(":")[0] for p in found}) == [
        "day 2024-12-31", "day 2025-03-02", "day 2025-03-05"]
    assert any("2025-03-02: amount" in p for p in found)
    assert any("2025-03-05: missing" in p for p in found)


def test_verify_says_when_the_warehouse_is_behind(history):
    data, warehouses = history
    found = problems(data, warehouses["cdc"])  # at run 7; the dataset is at run 11
    assert found[0].startswith("the warehouse is at run 7 (2025-03-08)")
    assert len(found) > 1  # and the days that changed since


def test_cdc_applies_a_run_in_bounded_pieces(history, tmp_path, monkeypatch):
    from fastgen.sinks import source

    data, warehouses = history
    wh = _copy(warehouses["cdc"], tmp_path)  # at run 7
    sizes: list[int] = []
    real = Warehouse.apply_changes
    monkeypatch.setattr(source, "PIECE_ROWS", 300)
    monkeypatch.setattr(Warehouse, "apply_changes",
                        lambda self, piece: sizes.append(piece.height) or real(self, piece))
    stats = load("cdc", data, wh)
    assert (stats.from_run, stats.to_run) == (7, 11)
    feed_rows = sum(Dataset(data).manifest(run)["counts"]["feed_rows"] for run in range(8, 12))
    assert sum(sizes) == stats.rows_read == feed_rows and max(sizes) <= 300 < feed_rows / 4
    assert problems(data, wh) == []


def test_cdc_refuses_a_table_that_is_not_at_its_run(history, tmp_path):
    data, warehouses = history
    wh = _copy(warehouses["cdc"], tmp_path)  # at run 7
    feed = pl.concat(pl.read_parquet(data / rel) for rel in Dataset(data).manifest(8)["feed"])
    updates = feed.filter(pl.col("op") == "update")["sale_id"]  # soft deletes included
    updated, victim = updates.len(), updates[0]
    con = duckdb.connect(str(wh))  # a row that run 8 updates goes missing
    con.execute("DELETE FROM sales WHERE sale_id = ?", [victim])
    con.close()
    rows, control = _snapshot(wh)
    with pytest.raises(fastgen.DatasetError, match=f"not at run 7: run 8 found {updated - 1} "
                                                   f"of {updated} updates"):
        load("cdc", data, wh)
    after_rows, after_control = _snapshot(wh)
    assert after_rows.equals(rows) and after_control.equals(control)


def test_a_first_cdc_load_takes_the_bulk_path(history, tmp_path):
    data, _ = history
    stats = load("cdc", data, tmp_path / "w.duckdb")
    last = Dataset(data).snapshot()
    assert (stats.from_run, stats.to_run) == (-1, 11)
    assert stats.rows_read == stats.rows_changed == sum(p["rows"] for p in
                                                         last["partitions"].values())
    assert stats.partitions == len(last["partitions"])
    assert problems(data, tmp_path / "w.duckdb") == []


def test_incremental_and_cdc_refuse_another_dataset(history, tmp_path):
    _, warehouses = history
    other = tmp_path / "other"
    _generate(other, 2, model=Model(seed=6, sales=SalesModel(rows_per_day=100)))
    for strategy in ("incremental", "cdc"):
        wh = _copy(warehouses[strategy], tmp_path)
        rows, _ = _snapshot(wh)
        with pytest.raises(UsageError, match="another dataset"):
            load(strategy, other, wh)
        assert _snapshot(wh)[0].equals(rows)
        load("full", other, wh)  # full may always start over
        assert problems(other, wh) == []


def test_loads_read_files_whose_rename_is_still_owed(tmp_path):
    data = tmp_path / "data"
    _generate(data, 3)
    renames = Dataset(data).snapshot()["renames"]
    assert any("sales/" in final for _, final in renames)
    for tmp, final in renames:  # as if the generator died right after its commit point
        os.replace(data / final, data / tmp)
    for strategy in STRATEGIES:
        load(strategy, data, tmp_path / f"{strategy}.duckdb")
        assert problems(data, tmp_path / f"{strategy}.duckdb") == [], strategy


def test_loaders_read_csv_datasets(tmp_path):
    data = tmp_path / "csv"
    model = Model(seed=2, sales=SalesModel(rows_per_day=300),
                  changes=ChangeModel(late_share=0.05, delete_rate=0.05))
    for run in range(4):
        _generate(data, 1, model=model, fmt="csv")
        for strategy in STRATEGIES:
            load(strategy, data, tmp_path / f"{strategy}.duckdb")
    for strategy in STRATEGIES:
        assert problems(data, tmp_path / f"{strategy}.duckdb") == [], strategy


def test_cli_load_and_verify_warehouse(history, tmp_path, capsys):
    data, _ = history
    wh = tmp_path / "cli.duckdb"
    assert cli.main(["load", "--strategy", "cdc", "--warehouse", str(wh), "--data", str(data)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "run 11" in out[0]
    assert cli.main(["verify", "--warehouse", str(wh), "--data", str(data)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and "match" in out[0]
    con = duckdb.connect(str(wh))
    con.execute("DELETE FROM sales WHERE sale_id IN (SELECT min(sale_id) FROM sales "
                "GROUP BY sale_date ORDER BY sale_date LIMIT 2)")
    con.close()
    assert cli.main(["verify", "--warehouse", str(wh), "--data", str(data)]) == 1
    out = capsys.readouterr().out
    assert "day 2025-03-01: rows" in out and "day 2025-03-02: rows" in out


def test_cli_load_errors_are_one_sentence(history, tmp_path, capsys):
    data, _ = history
    args = ["load", "--strategy", "cdc", "--data", str(data), "--warehouse"]
    assert cli.main(args + [str(tmp_path / "no" / "wh.duckdb")]) == 2
    assert cli.main(["verify", "--data", str(data), "--warehouse", str(tmp_path / "x.duckdb")]) == 2
    assert not (tmp_path / "x.duckdb").exists()
    assert cli.main(["load", "--strategy", "nope", "--data", str(data), "--warehouse",
                     str(tmp_path / "y.duckdb")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and all(line.startswith("fastgen") for line in err)


def test_the_control_table_records_each_strategy(history):
    data, warehouses = history
    con = connect(warehouses["cdc"], read_only=True)
    row = warehouse.strategy_state(con, "cdc")
    con.close()
    assert row["last_run"] == row["commit_version"] == 7
    assert row["watermark"] is not None and row["watermark"].date() <= date(2025, 3, 9)
    assert row["dataset"] == warehouse.fingerprint(Dataset(data))
