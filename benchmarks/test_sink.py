"""The database sink (issue 11): a first load and a daily change set, against each database's
own bulk path measured in the same run.

(a) SQLite, first load of ``ROWS`` rows (a one-day dataset: the bulk path), against one
    ``executemany`` of the same rows, already as Python tuples, into the same indexed table.
(b) PostgreSQL (a throwaway cluster, ``tests/postgres_server.py``), the same load, against
    ``COPY sales FROM`` a CSV file of the same rows on the server into the same indexed table.
(c) One daily change set (run H after H days of ``DAILY`` rows), applied from the feed in
    one transaction to each database, as changes per second.

Targets (issue 11, recorded with the ``target`` fixture, never asserted): PostgreSQL first
load >= 250k rows/s and <= 1.5x its COPY; SQLite >= 200k rows/s; change sets >= 100k
changes/s. Asserted: every load equals the ground truth (``fastgen.sinks.verify``).

Environment (defaults take a few minutes here; the issue's sizes are 1M and 1M, H = 90):

* ``FASTGEN_BENCH_SINK_ROWS``   rows of the first load (default 1,000,000)
* ``FASTGEN_BENCH_SINK_DAILY``  rows a day of the change-set dataset (default 20,000)
* ``FASTGEN_BENCH_SINK_H``      days of history before the change set (default 90)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from datetime import date
from pathlib import Path

import pytest

import fastgen
from fastgen import Dataset, sinks
from fastgen.config import Model, SalesModel
from fastgen.sinks import postgres as pg
from fastgen.sinks import sqlite as sq
from fastgen.sinks.source import TABLE_COLUMNS, snapshot_pieces

ROWS = int(os.environ.get("FASTGEN_BENCH_SINK_ROWS", 1_000_000))
DAILY = int(os.environ.get("FASTGEN_BENCH_SINK_DAILY", 20_000))
H = int(os.environ.get("FASTGEN_BENCH_SINK_H", 90))
START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def server():
    from tests import postgres_server

    if postgres_server.binaries() is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine")
    started = postgres_server.start_server()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def one_day(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("sink") / "day"
    fastgen.generate(data, days=1, model=Model(seed=3, sales=SalesModel(rows_per_day=ROWS)),
                     start=START)
    return data


@pytest.fixture(scope="module")
def history(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("sink") / "history"
    model = Model(seed=4, sales=SalesModel(rows_per_day=DAILY))
    fastgen.generate(data, days=H, model=model, start=START)
    return data


def _fresh_sqlite(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


def _database(server, name: str, template: str | None = None) -> str:
    import psycopg

    with psycopg.connect(server.url(), autocommit=True) as con:
        con.execute(f'DROP DATABASE IF EXISTS "{name}"')
        con.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return server.url(name)


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def test_sqlite_first_load(benchmark, target, one_day, tmp_path):
    db = tmp_path / "first.db"
    url = f"sqlite:///{db}"
    benchmark.pedantic(lambda: sinks.sink(one_day, url), setup=lambda: _fresh_sqlite(db),
                       rounds=1, iterations=1)
    seconds = benchmark.stats.stats.mean
    assert sinks.verify(one_day, url).problems == []
    # Its own bulk path: the same rows, as tuples made beforehand, one executemany.
    ds = Dataset(one_day)
    rows = [row for piece in snapshot_pieces(ds, ds.committed())
            for row in sq._values(piece, TABLE_COLUMNS)]
    own = tmp_path / "own.db"
    con = sqlite3.connect(own, isolation_level=None)
    con.execute("PRAGMA journal_mode = WAL")
    con.execute("PRAGMA synchronous = NORMAL")
    con.execute("BEGIN")
    for statement in sq.CREATE:
        con.execute(statement)
    baseline = _timed(lambda: (con.executemany(sq.INSERT, rows), con.execute("COMMIT")))
    con.close()
    benchmark.extra_info.update(rows=ROWS, executemany_seconds=baseline)
    target(f"SQLite first load, {ROWS:,} rows", ROWS / seconds, 200_000, "rows/s", "higher")
    target("SQLite first load / one executemany of the same rows", seconds / baseline, 1.5, "x")


def test_postgres_first_load(benchmark, target, one_day, server):
    names = iter(range(100))
    urls: list[str] = []
    benchmark.pedantic(lambda: sinks.sink(one_day, urls[-1]),
                       setup=lambda: urls.append(_database(server, f"first{next(names)}")),
                       rounds=1, iterations=1)
    seconds = benchmark.stats.stats.mean
    assert sinks.verify(one_day, urls[-1]).problems == []
    # Its own bulk path: COPY sales FROM a CSV file of the same rows, on the server.
    ds = Dataset(one_day)
    csv = server.folder / "rows.csv"
    with open(csv, "wb") as f:
        for piece in snapshot_pieces(ds, ds.committed()):
            f.write(pg._csv(piece.select(TABLE_COLUMNS)))
    if server.user:
        shutil.chown(csv, server.user)
    import psycopg
    from psycopg import sql

    copy = sql.SQL("COPY sales ({}) FROM {} (FORMAT csv)").format(
        sql.SQL(", ".join(TABLE_COLUMNS)), sql.Literal(str(csv)))
    with psycopg.connect(_database(server, "own")) as con:
        for statement in pg.CREATE:
            con.execute(statement)
        con.commit()
        baseline = _timed(lambda: (con.execute(copy), con.commit()))
    benchmark.extra_info.update(rows=ROWS, copy_seconds=baseline)
    target(f"PostgreSQL first load, {ROWS:,} rows", ROWS / seconds, 250_000, "rows/s", "higher")
    target("PostgreSQL first load / COPY of the same CSV rows", seconds / baseline, 1.5, "x")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_daily_change_set(benchmark, target, history, tmp_path, kind, request):
    data = tmp_path / "data"
    shutil.copytree(history, data)
    if kind == "sqlite":
        prepared, db = tmp_path / "prepared.db", tmp_path / "db.db"
        sinks.sink(data, f"sqlite:///{prepared}")
        url = f"sqlite:///{db}"

        def setup():
            _fresh_sqlite(db)
            shutil.copyfile(prepared, db)
    else:
        server = request.getfixturevalue("server")
        sinks.sink(data, _database(server, "prepared"))
        url = server.url("changes")

        def setup():
            _database(server, "changes", template="prepared")
    fastgen.generate(data, days=1)  # run H: the change set
    changes = Dataset(data).manifest()["counts"]["feed_rows"]
    stats = []
    benchmark.pedantic(lambda: stats.append(sinks.sink(data, url)), setup=setup, rounds=1,
                       iterations=1)
    assert [a.changes for a in stats[-1].applied] == [changes]
    assert sinks.verify(data, url).problems == []
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(changes=changes, history_days=H, rows_per_day=DAILY)
    target(f"{kind} daily change set, {changes:,} changes (H = {H}, {DAILY:,} rows a day)",
           changes / seconds, 100_000, "rows/s", "higher")
