"""Issue 8, the loaders' items: no silent wrong data, no tracebacks.

One regression test (or a few) per defect found by trying to break the loaders (the item
numbers are the issue's): a dataset path that contains ``sale_date=`` (2), a ``--warehouse``
that is not a DuckDB database (5), files that do not match the manifest a load claims (7),
Ctrl-C during a load (11), and verifying a warehouse that holds another dataset (15).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import textwrap
import time
from datetime import date
from pathlib import Path

import duckdb
import psutil
import pytest

import fastgen
from fastgen.config import ChangeModel, Model, SalesModel
from fastgen.dataset import Dataset, DatasetError, signature
from fastgen.dataset.check import load_checked
from fastgen.loaders import STRATEGIES, load
from fastgen.loaders.warehouse import STATE_TABLE

try:
    from tests.warehouse_checks import problems
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    from warehouse_checks import problems

START = date(2025, 3, 1)
MODEL = Model(seed=5, sales=SalesModel(rows_per_day=2_000),
              changes=ChangeModel(late_share=0.05, delete_mode="mixed", delete_rate=0.02))


def _generate(path: Path, runs: int, model: Model = MODEL, fmt: str = "parquet") -> None:
    for _ in range(runs):  # one run per call, as a daily pipeline does
        fastgen.generate(path, days=1, model=model, start=START, fmt=fmt)


def _state(wh: Path) -> list[tuple]:
    """The control table and the table's size: what a load that changed nothing leaves."""
    con = duckdb.connect(str(wh), read_only=True)
    try:
        control = con.execute(f"SELECT * FROM {STATE_TABLE} ORDER BY strategy").fetchall()
        return control + con.execute("SELECT count(*), sum(amount) FROM sales").fetchall()
    finally:
        con.close()


@pytest.fixture(scope="module")
def loaded(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A dataset of 3 runs and, per strategy, a warehouse loaded after run 1."""
    root = tmp_path_factory.mktemp("loaded")
    data = root / "data"
    _generate(data, 2)
    warehouses = {}
    for strategy in STRATEGIES:
        warehouses[strategy] = root / f"{strategy}.duckdb"
        load(strategy, data, warehouses[strategy])
    _generate(data, 1)
    return data, warehouses


# ---- 2: each file's day comes from the manifest, not from its path -------------------------

@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_a_dataset_under_a_sale_date_folder_loads_each_row_under_its_own_day(tmp_path, fmt):
    # DuckDB's hive parsing takes the first "sale_date=" of a path: every row used to get
    # sale_date 1999-01-01, and each incremental load added the reloaded days again.
    data = tmp_path / "sale_date=1999-01-01" / "ds"
    for _ in range(3):
        _generate(data, 1, fmt=fmt)
        for strategy in STRATEGIES:
            load(strategy, data, tmp_path / f"{strategy}.duckdb")
    truth = Dataset(data).snapshot()["partitions"]
    for strategy in STRATEGIES:
        wh = tmp_path / f"{strategy}.duckdb"
        assert problems(data, wh) == [], strategy
        con = duckdb.connect(str(wh), read_only=True)
        rows, ids, first = con.execute("SELECT count(*), count(DISTINCT sale_id), "
                                       "min(sale_date) FROM sales").fetchone()
        con.close()
        assert rows == ids == sum(p["rows"] for p in truth.values()), strategy
        assert first == START, strategy


# ---- 5: a --warehouse that is not a DuckDB database ---------------------------------------

def _not_a_database(kind: str, path: Path, sample: Path) -> Path:
    if kind == "folder":
        path.mkdir()
    elif kind == "parquet":
        shutil.copyfile(sample, path)
    elif kind == "csv":
        path.write_text("sale_id,amount\n1,2.50\n")
    elif kind == "bytes":
        path.write_bytes(bytes(range(256)) * 16)
    elif kind == "empty":
        path.touch()
    return path


@pytest.mark.parametrize("kind, name, words", [
    ("parquet", "w.parquet", "is not a DuckDB database"),
    ("csv", "w.csv", "is not a DuckDB database"),
    ("bytes", "w.duckdb", "is not a DuckDB database"),
    ("empty", "w.duckdb", "is an empty file"),    # DuckDB refuses it too; we do not delete it
    ("folder", "w.duckdb", "is a folder"),
])
def test_a_warehouse_that_is_not_a_duckdb_database_is_refused(loaded, tmp_path, run_cli,
                                                              snapshot, kind, name, words):
    data, _ = loaded
    sample = next((data / "sales").rglob("*.parquet"))
    (tmp_path / "wh").mkdir()
    wh = _not_a_database(kind, tmp_path / "wh" / name, sample)
    before = snapshot(tmp_path / "wh")
    for args in (["load", "--strategy", "full"], ["load", "--strategy", "cdc"], ["verify"]):
        result = run_cli(*args, "--warehouse", wh, "--data", data)
        assert result.code == 2, (args, result)
        assert len(result.err_lines) == 1 and words in result.err, (args, result.err)
        assert str(wh) in result.err and "Traceback" not in result.err
        assert result.out == ""
    assert snapshot(tmp_path / "wh") == before  # not written, no .wal beside it


def test_a_new_warehouse_and_an_existing_one_still_open(loaded, tmp_path, run_cli):
    data, _ = loaded
    wh = tmp_path / "new.parquet"  # a name is only a name: a missing file becomes a database
    for before in ("(empty before)", "(at run 2 before)"):
        result = run_cli("load", "--strategy", "cdc", "--warehouse", wh, "--data", data)
        assert result.code == 0 and before in result.out, result
    assert wh.read_bytes()[8:12] == b"DUCK"
    assert run_cli("verify", "--warehouse", wh, "--data", data).code == 0


# ---- 7: loads check the files against the manifest they claim ------------------------------

def _copies(loaded, tmp_path: Path, strategy: str) -> tuple[Path, Path]:
    data, warehouses = loaded
    shutil.copytree(data, tmp_path / "data")
    wh = tmp_path / f"{strategy}.duckdb"
    shutil.copyfile(warehouses[strategy], wh)
    return tmp_path / "data", wh


def _target(data: Path, strategy: str) -> str:
    """A file the strategy reads: an old day (full), the last run's new day (incremental),
    the last run's feed (cdc)."""
    last = Dataset(data).snapshot()
    if strategy == "full":
        return last["partitions"][START.isoformat()]["files"][0]
    if strategy == "incremental":
        return last["partitions"][last["run_date"]]["files"][0]
    return last["feed"][0]


def _flip_a_byte(path: Path) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("strategy", STRATEGIES)
@pytest.mark.parametrize("damage, words", [
    (lambda p: p.write_bytes(p.read_bytes()[:-1]), "bytes, the manifest of run 2"),
    (_flip_a_byte, "does not match its sha256"),
])
def test_a_load_refuses_a_file_that_does_not_match_its_manifest(loaded, tmp_path, strategy,
                                                                damage, words):
    data, wh = _copies(loaded, tmp_path, strategy)
    rel = _target(data, strategy)
    damage(data / rel)
    before = _state(wh)
    with pytest.raises(DatasetError) as caught:
        load(strategy, data, wh)
    message = str(caught.value)
    assert message.startswith(rel) and words in message and "nothing was loaded" in message
    assert _state(wh) == before  # rolled back


def test_a_file_replaced_after_its_check_is_caught_by_the_row_count(loaded, tmp_path,
                                                                   monkeypatch):
    # As if a writer without the reading lock replaced a day between the check and the read.
    from fastgen.sinks import commit  # every bulk insert: check the files, insert, count

    data, wh = _copies(loaded, tmp_path, "full")
    monkeypatch.setattr(commit, "check_files", lambda *args: None)
    last = Dataset(data).snapshot()
    first, second = (last["partitions"][day]["files"][0] for day in sorted(last["partitions"])[:2])
    shutil.copyfile(data / second, data / first)
    before = _state(wh)
    with pytest.raises(DatasetError, match=r"held \d+ rows, the manifest of run 2 says \d+"):
        load("full", data, wh)
    assert _state(wh) == before


def test_loads_hash_only_files_the_writers_cache_has_not_vouched_for(loaded, tmp_path,
                                                                      monkeypatch):
    data, warehouses = loaded
    cache = data / ".fastgen.checked"
    before = cache.read_bytes()
    checked = load_checked(data)
    last = Dataset(data).snapshot()
    hashed: list[str] = []
    from fastgen.dataset import check  # loads check their files with check.mismatches

    real = check.file_checksum
    monkeypatch.setattr(check, "file_checksum", lambda path: hashed.append(str(path)) or real(path))
    # From empty every strategy reads the export (cdc takes the bulk path: the export after
    # the last run is a snapshot): every sales file the writer's cache does not vouch for.
    rels = [rel for part in last["partitions"].values() for rel in part["files"]]
    unvouched = {str(data / rel) for rel in rels
                 if checked.get(rel) != signature(data / rel, last["files"][rel]["sha256"])}
    for strategy in STRATEGIES:
        hashed.clear()
        load(strategy, data, tmp_path / f"{strategy}.duckdb")
        assert sorted(hashed) == sorted(unvouched) != [], strategy
    # Continued from run 1, cdc reads run 2's feed only, which no writer's start has hashed
    # yet (feeds never change: in a daily pipeline only the last call's are unvouched).
    hashed.clear()
    wh = tmp_path / "at-run-1.duckdb"
    shutil.copyfile(warehouses["cdc"], wh)
    assert load("cdc", data, wh).from_run == 1
    assert sorted(hashed) == sorted(str(data / rel) for rel in last["feed"]) != []
    assert cache.read_bytes() == before  # a loader never writes the writer's cache


# ---- 11: Ctrl-C during a load -------------------------------------------------------------

@pytest.fixture(scope="module")
def big(tmp_path_factory) -> tuple[Path, Path]:
    """A dataset whose full load takes a few seconds here, and a warehouse loaded with it."""
    root = tmp_path_factory.mktemp("big")
    data = root / "data"
    fastgen.generate(data, days=20, start=START,
                     model=Model(seed=3, sales=SalesModel(rows_per_day=100_000)))
    load("full", data, root / "full.duckdb")
    return data, root / "full.duckdb"


def _interrupt_once_loading(command: list[str], wh: Path) -> subprocess.CompletedProcess:
    """Run ``command``; send SIGINT 0.3 s after it has opened the warehouse (DuckDB is then
    inserting rows, for 2 s here: the files are checked in 0.03 s)."""
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    try:
        while not any(f.path == str(wh) for f in psutil.Process(proc.pid).open_files()):
            assert proc.poll() is None and time.monotonic() < deadline, "never opened it"
            time.sleep(0.02)
        time.sleep(0.3)
        assert proc.poll() is None, "the load ended before it could be interrupted"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def test_an_interrupted_load_raises_keyboard_interrupt_after_its_rollback(big, tmp_path):
    data, loaded_wh = big
    wh = tmp_path / "w.duckdb"
    shutil.copyfile(loaded_wh, wh)
    before = _state(wh)
    script = textwrap.dedent(f"""
        import sys
        from fastgen.loaders import load
        try:
            load("full", {str(data)!r}, {str(wh)!r})
        except KeyboardInterrupt as exc:  # what it replaced: the interrupt hit a query
            print(type(exc.__context__).__name__)
            sys.exit(42)
    """)
    done = _interrupt_once_loading([sys.executable, "-c", script], wh)
    assert done.returncode == 42, done.stderr  # not RuntimeError("Query interrupted")
    assert done.stdout.strip() == "RuntimeError", done.stdout
    assert _state(wh) == before
    assert problems(data, wh) == []


def test_ctrl_c_during_cli_load_exits_130_with_one_line(big, tmp_path, run_cli):
    # Needs fastgen.cli.main to turn KeyboardInterrupt into one line and exit status 130.
    data, loaded_wh = big
    wh = tmp_path / "w.duckdb"
    shutil.copyfile(loaded_wh, wh)
    before = _state(wh)
    done = _interrupt_once_loading([sys.executable, "-m", "fastgen", "load", "--strategy",
                                    "full", "--warehouse", str(wh), "--data", str(data)], wh)
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 130, done.stderr
    assert len(lines) <= 1 and "Traceback" not in done.stderr, done.stderr
    assert _state(wh) == before
    assert run_cli("verify", "--warehouse", wh, "--data", data).code == 0


# ---- 15: verify --warehouse of another dataset's warehouse --------------------------------

def test_verifying_another_datasets_warehouse_says_so_in_one_line(loaded, tmp_path, run_cli):
    data, warehouses = loaded
    other = tmp_path / "other"
    _generate(other, 2, model=Model(seed=6, sales=SalesModel(rows_per_day=500)))
    assert problems(other, warehouses["full"]) == [
        f"the warehouse holds another dataset than {other}"]
    result = run_cli("verify", "--warehouse", warehouses["cdc"], "--data", other)
    assert result.code == 1 and result.out_lines == [
        f"the warehouse holds another dataset than {other}"], result.out
