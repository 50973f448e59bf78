"""The exactly-once core: apply run r to a target and record it, in one transaction.

``transact`` is the one transaction every target's work runs in, a sink's and the DuckDB
loaders' alike: take the target's write lock, make its tables, read its position and check
it (``position.check``: this dataset, not ahead of it), do the work, write the control row
with the run now held, COMMIT; on any exception, ROLLBACK. Killed anywhere, the target keeps
its last whole transaction, and the next one goes on from there.

The work is one of two kinds, both written once here:

- ``first_load``, the *bulk path*: a target that holds nothing takes the export after the
  last run, a snapshot of the whole history, with its fastest insert (``insert_days``);
  applying every run's feed in turn would rewrite most rows many times over;
- ``feed``: one run's feed, read in bounded pieces (``source.feed_pieces``), becomes
  row-level changes (``Target.apply_changes``) that must touch exactly the rows the feed
  names: an UPDATE or DELETE of a row that is not there means the table is not the previous
  run's, and the run is refused, never half-applied.

``apply`` (``fastgen sink``) runs one transaction per run; a DuckDB load runs its whole load
in one (``fastgen.loaders.warehouse.run_load``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

from fastgen.dataset import Dataset
from fastgen.errors import DatasetError, UsageError
from fastgen.faults import fault
from fastgen.schema import PARTITION_KEY
from fastgen.sinks import position as positions
from fastgen.sinks.base import Target
from fastgen.sinks.position import Position, fingerprint
from fastgen.sinks.source import check_files, feed_pieces, file_bytes, last_manifest

OPS = ("insert", "update", "delete")


@dataclass(frozen=True)
class Work:
    """What one transaction did to a target, recorded with its position."""

    method: str  # "bulk" (a snapshot), "feed", or a loader's strategy
    changes: int = 0  # rows inserted, updated or deleted
    rows_read: int = 0
    bytes_read: int = 0
    days: frozenset[str] = field(default_factory=frozenset)  # ISO dates touched
    watermark: datetime | None = None  # the largest updated_at written
    fed: bool = False  # the last run was applied from its feed (``Position.fed``)

    def then(self, other: Work) -> Work:
        """This work followed by ``other``, in one transaction."""
        marks = [m for m in (self.watermark, other.watermark) if m is not None]
        return Work(self.method, self.changes + other.changes, self.rows_read + other.rows_read,
                    self.bytes_read + other.bytes_read, self.days | other.days,
                    max(marks) if marks else None, other.fed)


@dataclass(frozen=True)
class Applied:
    """One transaction a sink committed."""

    run: int
    run_date: date
    method: str  # "bulk" (a snapshot) or "feed"
    changes: int  # rows inserted, updated or deleted
    seconds: float


@dataclass(frozen=True)
class SinkStats:
    target: str  # the redacted URL
    from_run: int  # -1: the target held nothing
    to_run: int
    to_date: date
    applied: tuple[Applied, ...]

    @property
    def changes(self) -> int:
        return sum(a.changes for a in self.applied)


Step = Callable[[Position | None], "tuple[int, Work] | None"]


def transact(dataset: Dataset, target: Target, last: dict, step: Step, *,
             check: bool = True) -> tuple[Position | None, int | None, Work | None]:
    """Run ``step`` in one transaction with the target's control row: (the position before,
    the run recorded, the work), or (position, None, None) when ``step`` had nothing to do.

    ``step`` gets the position read under the lock and returns (run now held, work) or None;
    with ``check`` that position must be this dataset's and not ahead of ``last``.
    """
    with target.transaction():
        target.prepare()
        target.evolve(dataset.model.stress.has_channel(last["run"]))
        before = target.position()
        if check:
            positions.check(before, dataset, last, target.name, target.remedy)
        done = step(before)
        if done is None:
            return before, None, None
        run, work = done
        fault("sink")
        target.record(Position(fingerprint(dataset), run, dataset.sim.date_of(run), work.fed),
                      work)
    return before, run, work


def apply(dataset: Dataset, target: Target,
          on_applied: Callable[[Applied], None] | None = None) -> SinkStats:
    """Bring ``target`` to the dataset's last committed run, one transaction per run.

    Hold ``dataset.reading()`` around it (as ``fastgen sink`` does) so that a commit does not
    replace files while they are read.
    """
    last = last_manifest(dataset)
    done: list[Applied] = []
    start: int | None = None
    manifests: dict[int, dict] = {}

    def next_run(where: Position | None) -> tuple[int, Work] | None:
        run = where.last_run if where else -1
        if run == last["run"]:
            return None
        if where is None:
            return last["run"], first_load(dataset, target, last)
        if run + 1 not in manifests:
            manifests.update({m["run"]: m for m in runs(dataset, run + 1, last)})
        return run + 1, feed(dataset, target, last, manifests[run + 1], fed=where.fed)

    while True:
        t0 = time.perf_counter()
        before, run, work = transact(dataset, target, last, next_run)
        start = (before.last_run if before else -1) if start is None else start
        if work is None:
            break
        applied = Applied(run, dataset.sim.date_of(run), work.method, work.changes,
                          time.perf_counter() - t0)
        done.append(applied)
        if on_applied:
            on_applied(applied)
    return SinkStats(str(target.name), start, last["run"],
                     date.fromisoformat(last["run_date"]), tuple(done))


def runs(dataset: Dataset, first: int, last: dict) -> list[dict]:
    """The manifests of runs first .. last, whose feeds are to be applied."""
    if dataset.feed == "none":
        raise UsageError(f"{dataset.root} has no change feed (it was made with --feed none), "
                         f"so runs after {first - 1} cannot be applied as changes; sink it "
                         "into a new database (the first apply copies the whole export).")
    return dataset.manifests(first, last["run"])


def first_load(dataset: Dataset, target: Target, last: dict) -> Work:
    """The bulk path into a target with no position: the export after ``last``."""
    if target.row_count():
        raise UsageError(f"the sales table of {target.name} has rows but no "
                         f"{target.state_table} row; fastgen did not make it. "
                         f"{target.remedy[:1].upper()}{target.remedy[1:]}, or empty the table.")
    with target.indexes_after():
        return insert_days(dataset, target, last, list(last["partitions"]))


def insert_days(dataset: Dataset, target: Target, last: dict, days: list[str],
                method: str = "bulk") -> Work:
    """Insert the whole days ``days`` (ISO dates) of the export after ``last``, from the
    files it lists, checked first; the rows inserted must be the manifest's."""
    truth = last["partitions"]
    rels = [rel for day in days for rel in truth[day]["files"]]
    check_files(dataset, last, rels)
    inserted = target.insert_files(dataset, last, rels) if rels else 0
    expected = sum(truth[day]["rows"] for day in days)
    if inserted != expected:  # a file replaced after it was checked
        raise DatasetError(f"the files of {len(days)} day(s) held {inserted} rows, the "
                           f"manifest of run {last['run']} says {expected}; nothing was loaded "
                           "(was a generator committing? try again, or run `fastgen verify`).")
    return Work(method, inserted, inserted, sum(file_bytes(dataset, last, r) for r in rels),
                frozenset(days))


def feed(dataset: Dataset, target: Target, last: dict, manifest: dict, *, fed: bool = True
         ) -> Work:
    """Apply one run's feed, piece by piece; its counts must be what the feed asked for.
    ``fed``: whether the target applied the previous run from its feed (not a bulk load), so
    that the events that run held back are the target's to apply now (``feed_pieces``)."""
    applied = None
    if fed and manifest["run"] and dataset.model.stress.late_event_share:
        before = dataset.manifests(manifest["run"] - 1, manifest["run"] - 1)[0]
        applied = [rel for rel in before["feed"] if not Path(rel).name.startswith("tail-")]
    wanted = [0, 0, 0]
    got = [0, 0, 0]
    rows = 0
    days: set[str] = set()
    marks = []
    for piece in feed_pieces(dataset, last, manifest["feed"], channel=target.channel,
                             run=manifest["run"], applied=applied,
                             commit_ts=target.commit_ts):
        ops = piece["op"]
        for i, op in enumerate(OPS):
            wanted[i] += int((ops == op).sum())
        for i, n in enumerate(target.apply_changes(piece)):
            got[i] += n
        rows += piece.height
        days.update(piece[PARTITION_KEY].unique().dt.to_string("%Y-%m-%d").to_list())
        marks.append(piece["updated_at"].max())
    if got != wanted:
        kinds = ", ".join(f"{g} of {w} {k}s" for g, w, k in zip(got, wanted, OPS) if g != w)
        raise DatasetError(f"the sales table of {target.name} is not at run "
                           f"{manifest['run'] - 1}: run {manifest['run']} found {kinds}; "
                           "nothing of it was applied (run `fastgen verify`).")
    marks = [m for m in marks if m is not None]
    return Work("feed", sum(got), rows, sum(file_bytes(dataset, last, r) for r in manifest["feed"]),
                frozenset(days), max(marks) if marks else None, fed=True)
