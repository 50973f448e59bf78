"""What the SQLite and PostgreSQL sink tests share: the model, and an independent reading of a
sink's tables (plain SELECTs, nothing of fastgen.sinks) to compare with the dataset's files."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import fastgen
from fastgen.config import ChangeModel, Model, SalesModel

START = date(2025, 3, 1)
# Every kind of change on, small days: 30 runs take a few seconds.
MODEL = Model(seed=11, sales=SalesModel(rows_per_day=300),
              changes=ChangeModel(late_share=0.05, delete_mode="mixed", delete_rate=0.03))
OTHER = Model(seed=12, sales=SalesModel(rows_per_day=300))
COLUMNS = ("sale_id", "sold_at", "store_id", "product_id", "quantity", "unit_price", "amount",
           "created_at", "updated_at", "version", "is_deleted", "deleted_at", "sale_date")


def generate(path: Path, runs: int, model: Model = MODEL) -> None:
    for _ in range(runs):  # one run per call, as a daily pipeline does
        fastgen.generate(path, days=1, model=model, start=START)


def _cents(value) -> int:
    if isinstance(value, Decimal):
        return int(value * 100)
    return round(value * 100)  # SQLite keeps money as REAL


def _time(value) -> datetime | None:
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(value)


def _day(value) -> date:
    return value if isinstance(value, date) else date.fromisoformat(value)


def normalised(rows) -> list[tuple]:
    """Rows in COLUMNS order as comparable Python values (cents, datetimes, bools, dates)."""
    out = []
    for r in rows:
        out.append((r[0], _time(r[1]), r[2], r[3], r[4], _cents(r[5]), _cents(r[6]),
                    _time(r[7]), _time(r[8]), r[9], bool(r[10]), _time(r[11]), _day(r[12])))
    return sorted(out)


def expected_rows(data: Path) -> list[tuple]:
    """The dataset's committed export, read from its files."""
    return normalised(fastgen.read(data).select(COLUMNS).rows())


SELECT_ROWS = f"SELECT {', '.join(COLUMNS)} FROM sales ORDER BY sale_id"
SELECT_STATE = "SELECT dataset, last_run, last_run_date, method, changes FROM fastgen_sink_state"


def sqlite_rows(path: Path) -> list[tuple]:
    con = sqlite3.connect(path)
    try:
        return normalised(con.execute(SELECT_ROWS).fetchall())
    finally:
        con.close()


def sqlite_state(path: Path) -> tuple | None:
    """(rows, control row), or None when the tables are not there."""
    if not path.exists():
        return None
    con = sqlite3.connect(path)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "fastgen_sink_state" not in tables:
            return (sorted(tables),)
        return (normalised(con.execute(SELECT_ROWS).fetchall()),
                con.execute(SELECT_STATE).fetchall())
    finally:
        con.close()


def follow_every_run(data: Path, db: str, late: str, rows, runs: int,
                     after_bulk=None) -> None:
    """Grow ``data`` one run at a time and sink each run into ``db``: after every run the
    database equals the files and ``verify`` agrees, a repeated sink applies nothing, and
    ``late`` (first sunk at run 14: the bulk path, then feeds) follows too. ``rows(url)``
    reads a database's rows; ``after_bulk(url)`` checks ``late`` right after its bulk load.
    Every kind of change must have happened."""
    from fastgen import Dataset, sinks

    kinds = {"updates": 0, "soft_deletes": 0, "hard_deletes": 0, "late_rows": 0}
    for run in range(runs):
        generate(data, 1)
        counts = Dataset(data).manifest()["counts"]
        for key in kinds:
            kinds[key] += counts[key]
        stats = sinks.sink(data, db)
        assert (stats.from_run, stats.to_run) == (run - 1, run)
        [applied] = stats.applied
        assert applied.method == ("bulk" if run == 0 else "feed")
        if run:  # one row change per feed row: inserts, updates, soft and hard deletes
            assert applied.changes == counts["feed_rows"]
        report = sinks.verify(data, db)
        assert (report.problems, report.run, report.behind) == ([], run, None)
        assert rows(db) == expected_rows(data), run
        if run % 10 == 9:
            assert sinks.sink(data, db).applied == ()  # re-running applies nothing
            assert rows(db) == expected_rows(data)
        if run == 14:  # a second database first loaded late takes the bulk path, then feeds
            assert [a.method for a in sinks.sink(data, late).applied] == ["bulk"]
            if after_bulk:
                after_bulk(late)
        elif run > 14:
            assert [a.run for a in sinks.sink(data, late).applied] == [run]
    assert all(kinds.values()), kinds
    assert rows(late) == rows(db)
