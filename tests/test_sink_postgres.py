"""The PostgreSQL sink (issue 11) against a real server the tests start (``postgres_server``).

Skipped, with the reason, only where no PostgreSQL server binaries exist; ``.ci/run``
installs them. Every test gets a database of its own. The URLs carry the password, so every
message a test sees is also checked not to show it.
"""

from __future__ import annotations

import signal
from urllib.parse import quote

import pytest

from fastgen import Dataset, sinks
from tests import postgres_server
from tests.sink_checks import (
    follow_every_run,
    OTHER,
    SELECT_ROWS,
    SELECT_STATE,
    expected_rows,
    generate,
    normalised,
)

psycopg = pytest.importorskip("psycopg", reason="psycopg is not installed (fastgen[postgres])")
RUNS = 30

if postgres_server.binaries() is None:
    pytest.skip("no PostgreSQL server binaries (initdb) on this machine; .ci/run installs them",
                allow_module_level=True)


@pytest.fixture(scope="session")
def server():
    started = postgres_server.start_server()
    yield started
    started.stop()


@pytest.fixture
def make_db(server, request):
    """``make_db()``: the URL of a new, empty database (with the password in it)."""
    made = []

    def make() -> str:
        name = f"t{len(made)}_{request.node.name[5:30].lower()}".replace("[", "_")
        name = "".join(c if c.isalnum() or c == "_" else "_" for c in name)
        with psycopg.connect(server.url(), autocommit=True) as con:
            con.execute(f'DROP DATABASE IF EXISTS "{name}"')
            con.execute(f'CREATE DATABASE "{name}"')
        made.append(name)
        return server.url(name)

    return make


def rows(url: str) -> list[tuple]:
    with psycopg.connect(url) as con:
        return normalised(con.execute(SELECT_ROWS).fetchall())


def state(url: str) -> tuple:
    """Everything a sink may change: the tables there are, the rows, the control row."""
    with psycopg.connect(url) as con:
        tables = sorted(r[0] for r in con.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"))
        if "fastgen_sink_state" not in tables:
            return (tables,)
        return (tables, normalised(con.execute(SELECT_ROWS).fetchall()),
                con.execute(SELECT_STATE).fetchall())


def no_secret(server, *texts: str) -> None:
    for text in texts:
        assert server.password not in text and quote(server.password, safe="") not in text


def test_equals_ground_truth_after_every_run(tmp_path, make_db):
    data = tmp_path / "data"
    db, late = make_db(), make_db()
    follow_every_run(data, db, late, rows, RUNS)
    with psycopg.connect(db) as con:
        indexes = {r[0] for r in con.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename = 'sales'")}
        key = con.execute("SELECT a.attname FROM pg_index i JOIN pg_attribute a ON "
                          "a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) "
                          "WHERE i.indrelid = 'sales'::regclass AND i.indisprimary").fetchall()
    assert {"sales_updated_at", "sales_sold_at"} <= indexes and key == [("sale_id",)]


def test_one_statement_effect_per_feed_row(tmp_path, make_db):
    """Row-level DML as a CDC tool reading the log would see it: per-row triggers count one
    INSERT, UPDATE or DELETE per feed row, and rows the run does not change are not touched."""
    data, db = tmp_path / "data", make_db()
    generate(data, 8)
    sinks.sink(data, db)
    generate(data, 1)
    with psycopg.connect(db, autocommit=True) as con:
        con.execute("CREATE TABLE log (op text, sale_id bigint)")
        con.execute("CREATE FUNCTION log_change() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                    "INSERT INTO log VALUES (TG_OP, CASE WHEN TG_OP = 'DELETE' THEN OLD.sale_id "
                    "ELSE NEW.sale_id END); RETURN NULL; END $$")
        con.execute("CREATE TRIGGER log_change AFTER INSERT OR UPDATE OR DELETE ON sales "
                    "FOR EACH ROW EXECUTE FUNCTION log_change()")
    sinks.sink(data, db)
    counts = Dataset(data).manifest()["counts"]
    with psycopg.connect(db) as con:
        events = dict(con.execute("SELECT op, count(*) FROM log GROUP BY 1").fetchall())
        distinct = con.execute("SELECT count(DISTINCT sale_id) FROM log").fetchone()[0]
    assert events == {"INSERT": counts["inserts"],
                      "UPDATE": counts["updates"] + counts["soft_deletes"],
                      "DELETE": counts["hard_deletes"]}
    assert distinct == counts["feed_rows"]


def test_killed_mid_run_keeps_the_last_whole_run(tmp_path, make_db, run_script, server):
    data, db = tmp_path / "data", make_db()
    generate(data, 3)
    assert run_script("sink", "--to", db, "--data", data).code == 0
    generate(data, 3)
    killed = run_script("sink", "--to", db, "--data", data, env={"FASTGEN_FAULT": "sink:2"})
    assert killed.code == -signal.SIGKILL
    no_secret(server, killed.out, killed.err)
    report = sinks.verify(data, db)
    assert (report.problems, report.run) == ([], 3)
    again = run_script("sink", "--to", db, "--data", data)
    assert again.code == 0
    assert [line.split(" (")[0].split(": ", 1)[1] for line in again.out_lines[:-1]] == [
        "applied run 4", "applied run 5"]
    no_secret(server, again.out, again.err)
    assert rows(db) == expected_rows(data)
    first = make_db()  # killed inside the bulk path of a first load
    assert run_script("sink", "--to", first, "--data", data,
                      env={"FASTGEN_FAULT": "sink"}).code == -signal.SIGKILL
    assert state(first) == ([],)
    assert run_script("sink", "--to", first, "--data", data).code == 0
    assert rows(first) == rows(db)


def test_a_failing_statement_rolls_the_run_back(tmp_path, make_db, run_cli, server):
    data, db = tmp_path / "data", make_db()
    generate(data, 5)
    assert run_cli("sink", "--to", db, "--data", data).code == 0
    generate(data, 2)
    with psycopg.connect(db, autocommit=True) as con:
        con.execute("CREATE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'no deletes today'; END $$")
        con.execute("CREATE TRIGGER boom BEFORE DELETE ON sales FOR EACH ROW "
                    "EXECUTE FUNCTION boom()")
    before = state(db)
    failed = run_cli("sink", "--to", db, "--data", data)
    assert failed.code == 1 and len(failed.err_lines) == 1, failed.err
    assert "no deletes today" in failed.err and "rolled back" in failed.err
    no_secret(server, failed.out, failed.err)
    assert state(db) == before
    with psycopg.connect(db, autocommit=True) as con:
        con.execute("DROP TRIGGER boom ON sales")
    done = run_cli("sink", "--to", db, "--data", data)
    assert done.code == 0 and "applied run 5" in done.out and "applied run 6" in done.out
    assert rows(db) == expected_rows(data)
    assert "nothing to apply" in run_cli("sink", "--to", db, "--data", data).out


def test_generate_sink_and_sink_give_the_same_table(tmp_path, make_db, run_cli, server):
    data, a, b = tmp_path / "data", make_db(), make_db()
    small = ("--rows-per-day", "300", "--start-date", "2025-03-01", "--late-share", "0.05",
             "--delete-rate", "0.03", "--data", data)
    first = run_cli("generate", "--days", "2", "--sink", a, *small)
    assert first.code == 0 and "applied run 1" in first.out
    no_secret(server, first.out, first.err)
    for _ in range(3):
        assert run_cli("generate", "--sink", a, "--data", data).code == 0
    assert run_cli("sink", "--to", b, "--data", data).code == 0
    assert rows(a) == rows(b) == expected_rows(data)
    checked = run_cli("verify", "--db", b, "--data", data)
    assert checked.code == 0 and "all" in checked.out
    no_secret(server, checked.out, checked.err)


def _one_line(server, result, code: int) -> str:
    assert result.code == code, result
    assert len(result.err_lines) == 1 and not result.out.strip(), result
    no_secret(server, result.err)
    return result.err


def test_bad_input_is_one_line_and_changes_nothing(tmp_path, make_db, run_cli, server,
                                                   monkeypatch):
    data, db = tmp_path / "data", make_db()
    generate(data, 4)
    assert run_cli("sink", "--to", db, "--data", data).code == 0
    before = state(db)
    dead = server.url("x").replace(f":{server.port}/", f":{postgres_server._free_port()}/")
    assert "cannot connect" in _one_line(server, run_cli("sink", "--to", dead, "--data", data), 1)
    wrong = db.replace(quote(server.password, safe=""), "not-the-password")
    err = _one_line(server, run_cli("sink", "--to", wrong, "--data", data), 1)
    assert "password authentication failed" in err and "not-the-password" not in err
    nodb = server.url("no_such_database")
    assert "does not exist" in _one_line(server, run_cli("sink", "--to", nodb, "--data", data), 1)
    query = f"{server.url(db.rsplit('/', 1)[1], password=False)}?password=bad%20one"
    err = _one_line(server, run_cli("verify", "--db", query, "--data", data), 1)
    assert "bad one" not in err and "bad%20one" not in err

    shorter = tmp_path / "shorter"
    generate(shorter, 2)
    assert "ahead of" in _one_line(server, run_cli("sink", "--to", db, "--data", shorter), 2)
    other = tmp_path / "other"
    generate(other, 5, OTHER)
    assert "another dataset" in _one_line(server, run_cli("sink", "--to", db, "--data", other), 2)
    assert state(db) == before

    shaped = make_db()
    with psycopg.connect(shaped, autocommit=True) as con:
        con.execute("CREATE TABLE sales (sale_id bigint PRIMARY KEY, sold_at text)")
    err = _one_line(server, run_cli("sink", "--to", shaped, "--data", data), 2)
    assert "another shape" in err
    assert state(shaped) == (["sales"],)

    # The password from PGPASSWORD instead of the URL, as the README recommends.
    monkeypatch.setenv("PGPASSWORD", server.password)
    bare = make_db().replace(f":{quote(server.password, safe='')}@", "@")
    assert run_cli("sink", "--to", bare, "--data", data).code == 0
    assert rows(bare.replace("@", f":{quote(server.password, safe='')}@", 1)) == \
        expected_rows(data)


def test_a_stressed_source_that_grows_a_column_is_exact_after_every_sink(tmp_path, make_db,
                                                                          run_cli):
    """--stress (several changes of a sale in a run, late commits, the column channel from
    run 3): every sink exact, one of them catching up two runs across the schema change
    (COPY into the staging table names its columns in the table's order)."""
    url, data = make_db(), tmp_path / "data"
    for run in range(6):
        made = run_cli("generate", "--data", data, "--days", 1, "--rows-per-day", 2_000,
                       "--start-date", "2025-01-01", "--stress")
        assert made.code == 0, made.err
        if run == 2:  # the next sink applies runs 2 and 3, across the change
            continue
        assert run_cli("sink", "--to", url, "--data", data).code == 0
        checked = run_cli("verify", "--db", url, "--data", data)
        assert checked.code == 0 and "match" in checked.out, checked.out + checked.err
    with psycopg.connect(url) as con:
        named = con.execute("SELECT count(channel) FROM sales").fetchone()[0]
    assert named > 0
