"""The SQLite sink (issue 11): every run's inserts, updates and deletes executed exactly once.

Checked against the dataset's files read independently (``sink_checks``), and with
``fastgen verify --db``. Kills are real (SIGKILL of a ``fastgen sink`` process at the fault
point ``sink``, after a run's DML and before its commit); a failing statement is a real
trigger raising in SQLite.
"""

from __future__ import annotations

import signal
import sqlite3
from pathlib import Path

import pytest

from fastgen import Dataset, sinks
from fastgen.errors import UsageError
from tests.sink_checks import (
    follow_every_run,
    OTHER,
    expected_rows,
    generate,
    sqlite_rows,
    sqlite_state,
)

RUNS = 30


def url(path: Path) -> str:
    return f"sqlite:///{path}"  # an absolute path: sqlite:////tmp/...


def test_equals_ground_truth_after_every_run(tmp_path):
    data, db, late = tmp_path / "data", tmp_path / "every.db", tmp_path / "late.db"

    def path(target: str) -> Path:
        return Path(target[len("sqlite:///"):])

    def indexed(target: str) -> None:  # its indexes, built after the rows went in
        with sqlite3.connect(path(target)) as con:
            assert {r[1] for r in con.execute("PRAGMA index_list(sales)")} >= {
                "sales_updated_at", "sales_sold_at"}
            assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    follow_every_run(data, url(db), url(late), lambda target: sqlite_rows(path(target)), RUNS,
                     after_bulk=indexed)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    indexes = {r[1] for r in con.execute("PRAGMA index_list(sales)")}
    assert {"sales_updated_at", "sales_sold_at"} <= indexes
    con.close()


def test_verify_names_each_differing_day(tmp_path, run_cli):
    data, db = tmp_path / "data", tmp_path / "s.db"
    generate(data, 6)
    assert run_cli("sink", "--to", url(db), "--data", data).code == 0
    result = run_cli("verify", "--db", url(db), "--data", data)
    assert result.code == 0 and "all 6 days match run 5" in result.out
    con = sqlite3.connect(db)
    days = [d for (d,) in con.execute("SELECT DISTINCT sale_date FROM sales ORDER BY 1")]
    con.execute("UPDATE sales SET amount = amount + 0.01 WHERE sale_id = "
                "(SELECT min(sale_id) FROM sales WHERE sale_date = ?)", [days[1]])
    con.execute("DELETE FROM sales WHERE sale_date = ?", [days[3]])
    con.commit()
    con.close()
    result = run_cli("verify", "--db", url(db), "--data", data)
    assert result.code == 1
    named = {line.split(":")[0] for line in result.out_lines}
    assert named == {f"day {days[1]}", f"day {days[3]}"}, result.out
    assert any("amount" in line for line in result.out_lines)


def test_killed_mid_run_keeps_the_last_whole_run(tmp_path, run_script):
    data, db = tmp_path / "data", tmp_path / "k.db"
    generate(data, 3)
    assert run_script("sink", "--to", url(db), "--data", data).code == 0
    generate(data, 3)  # runs 3, 4, 5
    killed = run_script("sink", "--to", url(db), "--data", data,
                        env={"FASTGEN_FAULT": "sink:2"})
    assert killed.code == -signal.SIGKILL
    assert "applied run 3" in killed.out and "applied run 4" not in killed.out
    report = sinks.verify(data, url(db))
    assert (report.problems, report.run) == ([], 3)  # run 4's DML was rolled back whole
    again = run_script("sink", "--to", url(db), "--data", data)
    assert again.code == 0
    assert [line.split(" (")[0] for line in again.out_lines[:-1]] == [
        f"{url(db)}: applied run 4", f"{url(db)}: applied run 5"]
    assert sqlite_rows(db) == expected_rows(data)


def test_killed_during_the_first_load_leaves_nothing(tmp_path, run_script):
    data, db = tmp_path / "data", tmp_path / "first.db"
    generate(data, 4)
    killed = run_script("sink", "--to", url(db), "--data", data, env={"FASTGEN_FAULT": "sink"})
    assert killed.code == -signal.SIGKILL
    assert "fastgen_sink_state" not in str(sqlite_state(db))  # the tables were rolled back
    assert run_script("sink", "--to", url(db), "--data", data).code == 0
    assert sqlite_rows(db) == expected_rows(data)


def test_a_failing_statement_rolls_the_run_back(tmp_path, run_cli):
    data, db = tmp_path / "data", tmp_path / "f.db"
    generate(data, 5)
    assert run_cli("sink", "--to", url(db), "--data", data).code == 0
    generate(data, 2)
    con = sqlite3.connect(db)
    con.execute("CREATE TRIGGER boom BEFORE UPDATE ON sales "
                "BEGIN SELECT RAISE(ABORT, 'no updates today'); END")
    con.commit()
    before = sqlite_state(db)
    failed = run_cli("sink", "--to", url(db), "--data", data)
    assert failed.code == 1 and len(failed.err_lines) == 1, failed.err
    assert "no updates today" in failed.err and "rolled back" in failed.err
    assert sqlite_state(db) == before
    con.execute("DROP TRIGGER boom")
    con.commit()
    con.close()
    done = run_cli("sink", "--to", url(db), "--data", data)
    assert done.code == 0 and "applied run 5" in done.out and "applied run 6" in done.out
    assert sqlite_rows(db) == expected_rows(data)
    assert "nothing to apply" in run_cli("sink", "--to", url(db), "--data", data).out


def test_generate_sink_and_sink_give_the_same_table(tmp_path, run_cli):
    data, a, b = tmp_path / "data", tmp_path / "a.db", tmp_path / "b.db"
    small = ("--rows-per-day", "300", "--start-date", "2025-03-01", "--late-share", "0.05",
             "--delete-rate", "0.03", "--data", data)
    first = run_cli("generate", "--days", "2", "--sink", url(a), *small)
    assert first.code == 0 and f"{url(a)}: applied run 1" in first.out
    for _ in range(3):
        assert run_cli("generate", "--sink", url(a), "--data", data).code == 0
    assert run_cli("sink", "--to", url(b), "--data", data).code == 0
    assert sqlite_rows(a) == sqlite_rows(b) == expected_rows(data)


def _one_line(result, code: int) -> str:
    assert result.code == code, result
    assert len(result.err_lines) == 1 and not result.out.strip(), result
    return result.err


def test_bad_input_is_one_line_and_changes_nothing(tmp_path, run_cli):
    data, db = tmp_path / "data", tmp_path / "ok.db"
    generate(data, 4)
    assert run_cli("sink", "--to", url(db), "--data", data).code == 0
    before = sqlite_state(db)

    err = _one_line(run_cli("sink", "--to", "mysql://me:Sup3rSecret@host/db", "--data", data), 2)
    assert "unknown database URL scheme" in err and "Sup3rSecret" not in err

    shorter = tmp_path / "shorter"  # the same model, made again with fewer runs
    generate(shorter, 2)
    err = _one_line(run_cli("sink", "--to", url(db), "--data", shorter), 2)
    assert "ahead of" in err

    other = tmp_path / "other"
    generate(other, 5, OTHER)
    err = _one_line(run_cli("sink", "--to", url(db), "--data", other), 2)
    assert "another dataset" in err
    assert "another dataset" in run_cli("verify", "--db", url(db), "--data", other).out
    assert sqlite_state(db) == before

    shaped = tmp_path / "shaped.db"
    con = sqlite3.connect(shaped)
    con.execute("CREATE TABLE sales (id INTEGER PRIMARY KEY, note TEXT)")
    con.execute("INSERT INTO sales VALUES (1, 'mine')")
    con.commit()
    con.close()
    err = _one_line(run_cli("sink", "--to", url(shaped), "--data", data), 2)
    assert "another shape" in err
    assert sqlite_state(shaped) == (["sales"],)

    text = tmp_path / "notes.db"
    text.write_text("not a database, just notes\n" * 100)
    _one_line(run_cli("sink", "--to", url(text), "--data", data), 2)
    assert text.read_text() == "not a database, just notes\n" * 100

    missing = tmp_path / "no" / "such" / "folder.db"
    assert "does not exist" in _one_line(run_cli("sink", "--to", url(missing), "--data", data), 2)
    new = tmp_path / "new.db"  # a dataset with nothing committed: the new file is removed
    empty = tmp_path / "empty"
    empty.mkdir()
    run_cli("sink", "--to", url(new), "--data", empty)
    assert not new.exists() and not Path(f"{new}-wal").exists()


def test_url_forms(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sinks.parse("sqlite:///rel/x.db").path == Path("rel/x.db")
    assert sinks.parse("sqlite:////abs/x.db").path == Path("/abs/x.db")
    parsed = sinks.parse("postgresql://me:p%40ss@h:5432/db?password=other")
    assert "p%40ss" not in str(parsed) and "other" not in str(parsed) and "me" in str(parsed)
    assert parsed.scrub("auth failed for p@ss and p%40ss and other") == \
        "auth failed for *** and *** and ***"
    for bad in ("sqlite://host/x.db", "sqlite:///", "postgresql://h:5432/", "x.db", "ftp://a/b"):
        with pytest.raises(UsageError):
            sinks.parse(bad)


def test_rows_are_not_rewritten_when_untouched(tmp_path):
    """Real row-level DML, one statement execution per change of the feed: inserts are
    INSERTs, updates and soft deletes UPDATEs, hard deletes DELETEs (triggers count them)."""
    data, db = tmp_path / "data", tmp_path / "dml.db"
    generate(data, 8)
    sinks.sink(data, url(db))
    generate(data, 1)
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE log (op TEXT, sale_id INTEGER)")
    for op, row in (("INSERT", "NEW"), ("UPDATE", "NEW"), ("DELETE", "OLD")):
        con.execute(f"CREATE TRIGGER log_{op} AFTER {op} ON sales "
                    f"BEGIN INSERT INTO log VALUES ('{op}', {row}.sale_id); END")
    con.commit()
    sinks.sink(data, url(db))
    events = con.execute("SELECT op, count(*) FROM log GROUP BY 1").fetchall()
    con.close()
    counts = Dataset(data).manifest()["counts"]
    assert dict(events) == {
        "INSERT": counts["inserts"],
        "UPDATE": counts["updates"] + counts["soft_deletes"],
        "DELETE": counts["hard_deletes"]}, events
