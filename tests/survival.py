"""The survival matrix (issue 13): which loader keeps its table exact under which stress mode,
and what its loads cost. Shared by tests/test_survival.py (the cells, asserted) and
benchmarks/test_survival.py (the costs, at a larger size).

One dataset per mode (``MODES``) is made run by run through the command line
(``fastgen.cli.main(["generate", ..., "--days", "1"])``); after each run a hard-linked
snapshot of it is kept (``grow``: the generator only ever replaces files by renaming, so a
link is a copy). Each loader (``LOADERS``) then loads each snapshot in turn into its own
database, as it would after each day's run, and after each load fastgen's own verify judges
it against the ground truth of that run (``Loader.judge``). A cell (``Cell``) is ``exact``
(verify passed after every run), ``wrong on N of M runs``, or ``refused`` (a load raised:
fastgen's DatasetError or UsageError, or for the baseline DuckDB's error).

The loaders are fastgen's (full, incremental, cdc, watermark with and without a lookback,
scd2 judged on ``sales_history``, and the SQLite sink judged as ``fastgen verify --db``
does), and one that is not: ``merge (no positions)`` (``Merge``), a CDC written by hand as
people typically write it, which applies a run's whole feed in one statement set and ignores
the feed's positions.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import duckdb

from fastgen import delivered, sinks
from fastgen.cli import main
from fastgen.dataset import CHECKED, LOCK, Dataset, DatasetError
from fastgen.loaders import connect, load, verify_warehouse
from fastgen.loaders.target import Warehouse
from fastgen.sinks.source import file_bytes
from fastgen.sinks.verify import compare

START = "2025-01-01"

# Mode -> the options of `fastgen generate` that make it (issue 13's task list). Every mode
# but "hard deletes" and --stress deletes softly, so that a loader blind to hard deletes
# (watermark) is judged on the mode alone.
MODES: dict[str, tuple[str, ...]] = {
    "calm": ("--delete-mode", "soft"),
    "hard deletes": (),  # the default: mixed soft and hard deletes
    "repeat": ("--repeat-share", "0.3", "--delete-mode", "soft"),
    "same day": ("--same-day-share", "0.1", "--delete-mode", "soft"),
    "late commit": ("--late-commit-share", "0.1", "--delete-mode", "soft"),
    "schema change": ("--schema-change-run", "3", "--delete-mode", "soft"),
    "redelivery": ("--redelivery-share", "0.1", "--delete-mode", "soft"),
    "late events": ("--late-event-share", "0.1", "--delete-mode", "soft"),
    # Every mode above at --stress's rates (fastgen.config.STRESS), mixed deletes.
    "--stress": ("--stress",),
}

EXACT, REFUSED = "exact", "refused"


# ---- the datasets --------------------------------------------------------------------------
def grow(root: Path, mode: str, *, runs: int, rows_per_day: int) -> list[Path]:
    """Make ``runs`` one-run ``fastgen generate`` calls of ``mode`` in ``root/data``; return a
    hard-linked snapshot of the dataset after each (``root/run-NN``)."""
    data = root / "data"
    snapshots = []
    for run in range(runs):
        args = ["generate", "--data", str(data), "--days", "1", "--rows-per-day",
                str(rows_per_day), "--start-date", START, *MODES[mode]]
        with contextlib.redirect_stdout(io.StringIO()), \
                contextlib.redirect_stderr(io.StringIO()) as err:
            code = main(args)
        if code != 0:
            raise RuntimeError(f"fastgen {' '.join(args)} exited {code}: {err.getvalue()}")
        snapshots.append(link_copy(data, root / f"run-{run:02d}"))
    return snapshots


def link_copy(src: Path, dst: Path) -> Path:
    """A copy of a dataset that shares its files, with the generator's check cache kept valid.

    The cache (``.fastgen.checked``) spares a load hashing the files a writer's start already
    hashed, if their inode, size, mtime and ctime are unchanged; a hard link changes the ctime,
    so the copy's cache gets the new ctimes (a new file: the source's stays as it was). Loads of
    the copy then hash what a daily load hashes: the files of the last call.
    """
    shutil.copytree(src, dst, copy_function=os.link, ignore=shutil.ignore_patterns(LOCK,
                                                                                    CHECKED))
    with contextlib.suppress(OSError, ValueError, TypeError, IndexError, AttributeError):
        checked = json.loads((src / CHECKED).read_text())
        for rel, signature in checked.items():
            st = (dst / rel).stat()
            if [st.st_ino, st.st_size, st.st_mtime_ns] == signature[:3]:
                signature[3] = st.st_ctime_ns
        (dst / CHECKED).write_text(json.dumps(checked, sort_keys=True))
    return dst


# ---- the loaders ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Cost:
    rows_read: int
    bytes_read: int
    notes: tuple[str, ...] = ()  # what the load said (LoadStats.notes)


class Loader:
    """One row of the matrix: ``load`` a snapshot into ``place`` (its own database), then
    ``judge`` it: verify's problems, empty when the database equals that run's truth."""

    name: str

    def __init__(self, place: Path):
        self.place = place

    def load(self, data: Path) -> Cost:
        raise NotImplementedError

    def judge(self, data: Path) -> list[str]:
        raise NotImplementedError


class FastgenLoad(Loader):
    """``fastgen load --strategy S [--lookback L] --warehouse W`` (``fastgen.loaders.load``,
    which the command calls), judged by ``fastgen verify --warehouse`` (``verify_warehouse``:
    ``sales``, or ``sales_history`` for scd2)."""

    def __init__(self, place: Path, strategy: str, lookback: timedelta | None = None):
        super().__init__(place)
        self.strategy, self.lookback = strategy, lookback
        self.warehouse = place / "warehouse.duckdb"

    def load(self, data: Path) -> Cost:
        stats = load(self.strategy, data, self.warehouse, lookback=self.lookback)
        return Cost(stats.rows_read, stats.bytes_read, stats.notes)

    def judge(self, data: Path) -> list[str]:
        con = connect(self.warehouse, read_only=True)
        try:
            return verify_warehouse(Dataset(data), con)
        finally:
            con.close()


class SqliteSink(Loader):
    """``fastgen sink --to sqlite:///...`` (``fastgen.sinks.sink``, which the command calls),
    judged by ``fastgen verify --db`` (``fastgen.sinks.verify``; a database behind the dataset
    is wrong here, where the command only says so). Rows and bytes read are those the sink's
    transactions record (``commit.Work``), from the manifests: the export for the bulk path,
    a run's feed files for a feed."""

    def __init__(self, place: Path):
        super().__init__(place)
        self.url = f"sqlite:///{(place / 'source.db').resolve()}"

    def load(self, data: Path) -> Cost:
        stats = sinks.sink(data, self.url)
        dataset = Dataset(data)
        last = dataset.committed()
        rows = size = 0
        for applied in stats.applied:
            if applied.method == "bulk":
                rels = [rel for day in last["partitions"].values() for rel in day["files"]]
                rows += sum(day["rows"] for day in last["partitions"].values())
            else:
                manifest = dataset.manifests(applied.run, applied.run)[0]
                rels = manifest["feed"]
                rows += manifest["counts"]["feed_rows"]
            size += sum(file_bytes(dataset, last, rel) for rel in rels)
        return Cost(rows, size)

    def judge(self, data: Path) -> list[str]:
        report = sinks.verify(data, self.url)
        return report.problems + ([f"the database is behind: {report.behind}"]
                                  if report.behind else [])


# The baseline's table: the sales columns and sale_date, with the primary key that INSERT OR
# REPLACE needs; written out by hand, as its author would.
MERGE_TABLE = """CREATE TABLE IF NOT EXISTS sales (
    sale_id BIGINT PRIMARY KEY, sold_at TIMESTAMP, store_id INTEGER, product_id INTEGER,
    quantity INTEGER, unit_price DECIMAL(10, 2), amount DECIMAL(12, 2), created_at TIMESTAMP,
    updated_at TIMESTAMP, version INTEGER, is_deleted BOOLEAN, deleted_at TIMESTAMP,
    sale_date DATE)"""
MERGE_IMAGE = ", ".join(f"after.{c}" for c in (
    "sale_id", "sold_at", "store_id", "product_id", "quantity", "unit_price", "amount",
    "created_at", "updated_at", "version", "is_deleted", "deleted_at"))


class Merge(Loader):
    """merge (no positions): a hand-written CDC, not part of fastgen.

    It keeps the last ``run_date`` it applied in a table of its own, and applies each newer
    ``changes/run_date=...`` folder in one transaction as one statement set over the run's
    whole feed: delete the keys of the run's deletes, then ``INSERT OR REPLACE`` the after
    images of its inserts and updates. It ignores ``lsn``: within a run, which of two events
    of one key wins is up to DuckDB. Judged by the comparison ``verify --warehouse`` makes of
    the ``sales`` of a target that applied the last run from its feed
    (``fastgen.sinks.verify.compare`` against ``fastgen.delivered.truth`` of the last
    manifest: the export less the events the source held back, stress mode late events; it
    writes no fastgen control row, so ``verify_warehouse`` itself would only say it was never
    loaded).
    """

    name = "merge (no positions)"

    def __init__(self, place: Path):
        super().__init__(place)
        self.warehouse = place / "merge.duckdb"

    def load(self, data: Path) -> Cost:
        con = duckdb.connect(str(self.warehouse))
        rows = size = 0
        try:
            con.execute(MERGE_TABLE)
            con.execute("CREATE TABLE IF NOT EXISTS merge_position (run_date DATE)")
            done = con.execute("SELECT max(run_date) FROM merge_position").fetchone()[0]
            for folder in sorted((data / "changes").glob("run_date=*")):
                run_date = date.fromisoformat(folder.name.split("=", 1)[1])
                if done is not None and run_date <= done:
                    continue
                files = [str(f) for f in sorted(folder.glob("*.parquet"))]
                feed = f"read_parquet({files!r})"
                con.execute("BEGIN")
                try:
                    con.execute(f"DELETE FROM sales WHERE sale_id IN "
                                f"(SELECT sale_id FROM {feed} WHERE op = 'delete')")
                    con.execute(f"INSERT OR REPLACE INTO sales SELECT {MERGE_IMAGE}, sale_date "
                                f"FROM {feed} WHERE op <> 'delete'")
                    con.execute("INSERT INTO merge_position VALUES (?)", [run_date])
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
                rows += con.execute(f"SELECT count(*) FROM {feed}").fetchone()[0]
                size += sum(os.path.getsize(f) for f in files)
        finally:
            con.close()
        return Cost(rows, size)

    def judge(self, data: Path) -> list[str]:
        last = Dataset(data).committed()
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            # A feed consumer, judged as one: the events a run held back are not its to have.
            return compare(delivered.truth(last["partitions"], last), Warehouse(con, "merge"),
                           "the warehouse")
        finally:
            con.close()

    def differences(self, data: Path) -> dict[str, int]:
        """How its ``sales`` differs from the export of ``data``, by sale: rows the export
        lacks (hard-deleted sales brought back), rows it lacks, rows of an older version;
        and apart (``held_back``), the sales whose events the last run held back (stress mode
        late events), which no feed consumer has yet and are counted in none of the three."""
        export = f"read_parquet({str(data / 'sales' / '*' / '*.parquet')!r})"
        files = [str(data / rel) for rel in
                 Dataset(data).committed().get("held", {}).get("files", [])]
        held = (f"(SELECT DISTINCT sale_id FROM read_parquet({files!r}))" if files
                else "(SELECT NULL::BIGINT AS sale_id WHERE false)")
        con = duckdb.connect(str(self.warehouse), read_only=True)
        try:
            return dict(zip(("resurrected", "missing", "older_version", "held_back"),
                            con.execute(
                f"""SELECT count(*) FILTER (WHERE mine AND NOT theirs AND NOT held),
                           count(*) FILTER (WHERE theirs AND NOT mine AND NOT held),
                           count(*) FILTER (WHERE older AND NOT held),
                           count(*) FILTER (WHERE held)
                    FROM (SELECT s.sale_id IS NOT NULL AS mine, e.sale_id IS NOT NULL AS theirs,
                                 s.version < e.version AS older, sale_id IN {held} AS held
                          FROM sales s FULL JOIN {export} e USING (sale_id))""").fetchone()))
        finally:
            con.close()


def _fastgen(strategy: str, lookback: timedelta | None = None) -> Callable[[Path], Loader]:
    return lambda place: FastgenLoad(place, strategy, lookback)


# Row name -> how to make it in a folder of its own. 6h: the default late_commit_max_hours.
LOADERS: dict[str, Callable[[Path], Loader]] = {
    "full": _fastgen("full"),
    "incremental": _fastgen("incremental"),
    "cdc": _fastgen("cdc"),
    "watermark": _fastgen("watermark"),
    "watermark --lookback 6h": _fastgen("watermark", timedelta(hours=6)),
    "scd2": _fastgen("scd2"),
    "sqlite sink": SqliteSink,
    Merge.name: Merge,
}


# ---- the cells -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Load:
    """One load after one run, and verify's judgement of it."""

    run: int
    seconds: float  # wall time of the load call (opening the database to closing it)
    cpu_seconds: float  # CPU time of this process (DuckDB's threads included) in that call
    rows_read: int
    bytes_read: int
    refused: str | None = None  # the first line of what the load raised
    problems: tuple[str, ...] = ()  # verify's, after the load
    notes: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return self.refused is None and not self.problems


@dataclass(frozen=True)
class Cell:
    loader: str
    mode: str
    loads: tuple[Load, ...]

    @property
    def verdict(self) -> str:
        """``exact``, ``refused``, or ``wrong on N of M runs``."""
        if any(one.refused for one in self.loads):
            return REFUSED
        wrong = sum(not one.exact for one in self.loads)
        return EXACT if not wrong else f"wrong on {wrong} of {len(self.loads)} runs"

    @property
    def why(self) -> str:
        """The first refusal, or verify's first problem after the first wrong run."""
        for one in self.loads:
            if one.refused:
                return f"run {one.run}: {one.refused}"
            if one.problems:
                return f"run {one.run}: {one.problems[0]} ({len(one.problems)} problem(s))"
        return ""

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for one in self.loads for n in one.notes))

    def total(self, key: str) -> float:
        return sum(getattr(one, key) for one in self.loads)

    def extra_info(self) -> dict:
        return {"loader": self.loader, "mode": self.mode, "verdict": self.verdict,
                "why": self.why, "runs": len(self.loads),
                "wrong_runs": sum(not one.exact for one in self.loads),
                "seconds": self.total("seconds"), "cpu_seconds": self.total("cpu_seconds"),
                "seconds_per_run": [one.seconds for one in self.loads],
                "rows_read": int(self.total("rows_read")),
                "bytes_read": int(self.total("bytes_read")), "notes": list(self.notes)}


class Follow:
    """One loader following one mode's snapshots: ``step(k)`` loads snapshot k (and times it),
    ``judge(k)`` verifies it, in turn; ``finish()`` does the rest and gives the cell."""

    def __init__(self, loader: str, mode: str, snapshots: list[Path], place: Path):
        place.mkdir(parents=True, exist_ok=True)
        self.name, self.mode, self.snapshots = loader, mode, snapshots
        self.loader = LOADERS[loader](place)
        self.loads: list[Load] = []
        self._pending: tuple[float, float, Cost | None, str | None] | None = None

    def step(self, run: int) -> None:
        t0, c0 = time.perf_counter(), time.process_time()
        cost, refused = None, None
        try:
            cost = self.loader.load(self.snapshots[run])
        except DatasetError as exc:  # fastgen's refusal: UsageError is one too
            refused = str(exc).splitlines()[0]
        except duckdb.Error as exc:  # the baseline's
            if not isinstance(self.loader, Merge):
                raise
            refused = str(exc).splitlines()[0]
        self._pending = (time.perf_counter() - t0, time.process_time() - c0, cost, refused)

    def judge(self, run: int) -> None:
        seconds, cpu, cost, refused = self._pending
        self._pending = None
        cost = cost or Cost(0, 0)
        problems = tuple(self.loader.judge(self.snapshots[run]))
        self.loads.append(Load(run, seconds, cpu, cost.rows_read, cost.bytes_read, refused,
                               problems, cost.notes))

    def finish(self) -> Cell:
        """The cell, once every snapshot not judged yet is loaded (unless it was) and judged."""
        for run in range(len(self.loads), len(self.snapshots)):
            if self._pending is None:
                self.step(run)
            self.judge(run)
        return Cell(self.name, self.mode, tuple(self.loads))


def follow(loader: str, mode: str, snapshots: list[Path], place: Path) -> Cell:
    """``loader`` after each run of ``mode`` (each snapshot in turn), judged after each."""
    return Follow(loader, mode, snapshots, place).finish()


@dataclass(frozen=True)
class Matrix:
    cells: dict[tuple[str, str], Cell]  # (loader, mode) -> its cell
    datasets: dict[str, list[Path]]  # mode -> its snapshot after each run

    def counts(self, mode: str) -> dict[str, int]:
        """The manifests' change counts of the mode's runs, summed: what the mode made."""
        snapshots = self.datasets[mode]
        total: dict[str, int] = {}
        for manifest in Dataset(snapshots[-1]).manifests(0, len(snapshots) - 1):
            for key, n in manifest["counts"].items():
                total[key] = total.get(key, 0) + n
        return total


def matrix(root: Path, *, runs: int, rows_per_day: int, modes: Iterable[str] = MODES,
           loaders: Iterable[str] = LOADERS) -> Matrix:
    """Every cell (loader, mode): each mode's dataset grown once, every loader following it."""
    cells, datasets = {}, {}
    for m, mode in enumerate(modes):
        datasets[mode] = grow(root / f"mode{m}", mode, runs=runs, rows_per_day=rows_per_day)
        for n, loader in enumerate(loaders):
            cells[loader, mode] = follow(loader, mode, datasets[mode],
                                         root / f"mode{m}" / f"loader{n}")
    return Matrix(cells, datasets)


def table(cells: dict[tuple[str, str], Cell], cost: bool = False) -> str:
    """The matrix as Markdown: a row per loader, a column per mode; with ``cost``, each cell
    also gives its loads' total seconds, rows and MB read."""
    modes = list(dict.fromkeys(mode for _, mode in cells))
    loaders = list(dict.fromkeys(loader for loader, _ in cells))
    lines = ["| loader | " + " | ".join(f"`{m}`" if m.startswith("-") else m for m in modes)
             + " |", "|---|" + "---|" * len(modes)]
    for loader in loaders:
        row = []
        for mode in modes:
            c = cells[loader, mode]
            text = c.verdict if c.verdict == EXACT else f"**{c.verdict}**"
            if cost:
                text += (f"<br>{c.total('seconds'):.2f} s, {int(c.total('rows_read')):,} rows, "
                         f"{c.total('bytes_read') / 1e6:.1f} MB")
            row.append(text)
        lines.append(f"| {loader} | " + " | ".join(row) + " |")
    return "\n".join(lines)
