"""Tasks: whole partitions made into temporary files, with the facts the manifests need.

A task is a pure function of its ``Context`` and its task description. It writes only files
under the call's temporary names (which the driver journals before it starts any task), takes
no lock and writes no manifest, so any executor (this process, a pool, a Dask cluster over
shared storage) gives the same bytes, and a task that is run twice (a lost worker's retry)
writes the same files again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

import numpy as np
import polars as pl

from fastgen import history
from fastgen.build.plan import Context, FeedTask, PartTask
from fastgen.dataset import layout
from fastgen.dataset.layout import tmp_name
from fastgen.digest import Digest, digest_arrays
from fastgen.faults import fault
from fastgen.formats import FORMATS, file_checksum, write_file
from fastgen.formats import feed as feed_format
from fastgen.kernels import changes as ck
from fastgen.kernels.random import Stream, uniforms_at
from fastgen.model import EPOCH, Simulation
from fastgen.part import Changes, Part
from fastgen.schema import sales_frame

PIECE = ".arrow"
_KINDS = (("updates", ck.UPDATE), ("soft_deletes", ck.SOFT_DELETE),
          ("hard_deletes", ck.HARD_DELETE))


@dataclass
class StagedFile:
    """One file a task wrote under its temporary name."""

    tmp: str  # relative to the dataset
    final: str
    bytes: int
    sha256: str


@dataclass
class RunFacts:
    """What a part task learned about one run that touched its day."""

    digest: dict  # of the part after the run
    history: dict = field(default_factory=history.NONE.to_json)  # what the run adds (a delta)
    counts: dict[str, int] = field(default_factory=dict)  # updates, soft and hard deletes
    piece_rows: int = 0  # rows of the run's feed piece for this part (0: none staged)
    piece_bytes: int = 0
    piece_sha256: str = ""
    late_commit_reach_us: int = 0  # how far before the run's day its changes were stamped
    # Late events: what the run's held-back events do to the part (``held_facts``), or None.
    held: dict | None = None


@dataclass
class PartResult:
    task: PartTask
    runs: dict[int, RunFacts]
    file: StagedFile
    inserts: StagedFile | None = None  # a new day's: its run's feed inserts of the part's rows


@dataclass
class FeedResult:
    task: FeedTask | None  # None: a run of a dataset without a feed
    files: list[StagedFile]  # changes to history; then, after the inserts, ``same_day`` files
    rows: int
    same_day: int = 0  # how many of ``files``, at its end, come after the run's inserts
    # Redelivery, late events: (run, its tail file, rows), for the next run and, for a
    # call's first run, its own.
    tails: list[tuple[int, StagedFile, int]] = field(default_factory=list)
    held: StagedFile | None = None  # late events: the run's events held back to the next
    held_rows: int = 0


@lru_cache(maxsize=4)
def simulation(context: Context) -> Simulation:
    """One Simulation per process and call: its caches serve every task the process runs."""
    return Simulation(context.model, context.start)


# ---- names ---------------------------------------------------------------------------------
def run_folder(context: Context, run: int) -> Path:
    return layout.run_folder(context.root, simulation(context).date_of(run))


def part_path(context: Context, day: int, index: int) -> Path:
    return (layout.day_folder(context.root, simulation(context).date_of(day))
            / layout.part_name(index, FORMATS[context.format].EXTENSION))


def piece_path(context: Context, run: int, day: int, index: int) -> Path:
    """Where a part task stages its changes of ``run`` for that run's feed task."""
    final = run_folder(context, run) / f"piece-{day:06d}-{index:05d}{PIECE}"
    return tmp_name(final, context.tag)


def change_path(context: Context, run: int, number: int) -> Path:
    """A file of the run's changes to history (before its inserts in name order)."""
    return run_folder(context, run) / f"change-{number:05d}{FORMATS[context.format].EXTENSION}"


def insert_path(context: Context, run: int, index: int) -> Path:
    """The run's inserts of the rows of part ``index`` of its new day (late rows included)."""
    return run_folder(context, run) / f"insert-{index:05d}{FORMATS[context.format].EXTENSION}"


def same_day_path(context: Context, run: int, number: int) -> Path:
    """A file of the changes of the run's new rows on their own day (after its inserts)."""
    return run_folder(context, run) / f"sameday-{number:05d}{FORMATS[context.format].EXTENSION}"


def tail_path(context: Context, run: int) -> Path:
    """The end of this run's feed: the previous run's events held back (stress mode
    ``late_event_share``) and rows of its feed delivered again (``redelivery_share``)."""
    return run_folder(context, run) / f"tail-00000{FORMATS[context.format].EXTENSION}"


def held_path(context: Context, run: int) -> Path:
    """The run's events held back to the next run's tail (``late_event_share``): committed
    with the run, outside its feed, as ground truth and for the next call's first run."""
    return (layout.held_folder(context.root, simulation(context).date_of(run))
            / layout.part_name(0, FORMATS[context.format].EXTENSION))


def held_back(sim: Simulation, run: int, sale_ids: np.ndarray) -> np.ndarray:
    """Whether each sale's events of ``run`` are held back to the next run's feed (stress
    mode ``late_event_share``): all of a sale's events in the run's files that the feed task
    writes (changes to history and same-day changes; inserts are never held)."""
    share = sim.model.stress.late_event_share
    if not share or not sale_ids.size:
        return np.zeros(sale_ids.size, np.bool_)
    ids = np.ascontiguousarray(sale_ids, dtype=np.int64)
    return uniforms_at(sim.key(Stream.LATE_EVENT, run), ids) < share


def held_facts(sim: Simulation, run: int, captured: Changes) -> dict | None:
    """What the held-back events of ``captured`` do to a part's truth: the digests of their
    before and after images and the versions they add (a feed consumer, which has not seen
    them, holds the export with the afters taken out and the befores put back)."""
    held = held_back(sim, run, captured.before["sale_id"])
    if not held.any():
        return None
    before = {k: v[held] for k, v in captured.before.items()}
    after = {k: v[held] for k, v in captured.after.items()}
    kinds = captured.kinds[held]
    return {"events": int(held.sum()), "before": digest_arrays([before]).to_json(),
            "after": digest_arrays([after], [kinds != ck.HARD_DELETE]).to_json(),
            "history": history.changed(kinds, before, after,
                                       sim.day_start_us(run + 1)).to_json()}


def change_patterns(context: Context, run: int) -> list[Path]:
    """The temporary names of the files a run's feed task writes, as globs (their count is
    known only after)."""
    return [tmp_name(path(context, run, 0).with_name(
        path(context, run, 0).name.replace("00000", "*")), context.tag)
        for path in (change_path, same_day_path)] + [tmp_name(held_path(context, run),
                                                             context.tag)]


def commit_ts(context: Context, run: int) -> datetime:
    sim = simulation(context)
    return datetime.combine(sim.date_of(run) + timedelta(days=1), datetime.min.time())


# ---- part tasks ----------------------------------------------------------------------------
def make_part(context: Context, task: PartTask) -> PartResult:
    """Move one part through the call's runs that touch its day; write its export after the last.

    A part of a day the call creates also writes its run's feed inserts of the same rows,
    from the same arrays (and, when no later run of the call touches the day, its export
    from the same frame).
    """
    sim = simulation(context)
    day, index = task.day, task.index
    if day >= context.first and context.feed:
        inserted, landing = sim.inserts_of_part(day, index)
        on_time = landing == day
        rows = sales_frame(sim.columns_in(day, inserted))
        days = landing.astype(np.int32)
        days -= sim.index_of(EPOCH)
        frame = feed_format.inserts(day, commit_ts(context, day), rows,
                                    pl.Series(days).cast(pl.Date))
        if sim.model.stress.on:
            frame = feed_format.insert_lsn(frame, day, sim.rows)
        inserts = stage(context, frame, insert_path(context, day, index), wait=False)
        del frame
        if task.runs == (day,) and not sim.changes_day(day, day):
            # Nothing else in the call changes the part: no copy of it.
            digest = digest_arrays([inserted], [on_time])
            made = history.inserted(inserted, on_time)
            written = stage(context, rows.filter(pl.Series(on_time)), part_path(context, day, index))
            fault("partition")
            return PartResult(task, {day: RunFacts(digest.to_json(), made.to_json())}, written,
                              inserts())
        part = sim.part_of_inserts(day, index, inserted, on_time)
        inserts = inserts()
        del rows, inserted
    else:
        part, inserts = _starting_part(context, day, index), None
    digest = digest_arrays([part.columns], [part.alive])
    # A day the call creates starts its history in its own run; an older one's is in the
    # previous manifest, which the driver adds each run's delta to.
    made = history.inserted(part.columns) if day >= context.first else history.NONE
    facts: dict[int, RunFacts] = {}
    for run in task.runs:
        held = part.slots.size
        captured = part.advance(sim, run, capture=sim.changes_day(run, day)).get(run)
        pieces, signs = [digest], [1]
        if part.slots.size > held:  # late rows landed
            landed = {k: v[held:] for k, v in part.columns.items()}
            pieces.append(digest_arrays([landed]))
            signs.append(1)
            made += history.inserted(landed)
        counts, reach = {name: 0 for name, _ in _KINDS}, 0
        if captured is not None and captured.kinds.size:
            pieces += [digest_arrays([captured.before]),
                       digest_arrays([captured.after], [captured.kinds != ck.HARD_DELETE])]
            signs += [-1, 1]
            counts = {name: int((captured.kinds == kind).sum()) for name, kind in _KINDS}
            reach = _stress_facts(sim, run, day, captured, counts)
            made += history.changed(captured.kinds, captured.before, captured.after,
                                    sim.day_start_us(run + 1))  # the run's commit_ts
            held = held_facts(sim, run, captured) if context.feed else None
        else:
            held = None
        if captured is not None and captured.kinds.size and context.feed:
            frame = feed_format.changes(run, commit_ts(context, run), sim.date_of(day),
                                        captured.kinds, sim.columns_in(run, captured.before),
                                        sim.columns_in(run, captured.after))
            path = piece_path(context, run, day, index)
            path.parent.mkdir(parents=True, exist_ok=True)
            frame.write_ipc(path, compression="uncompressed")
            piece = (frame.height, path.stat().st_size, file_checksum(path))
        else:
            piece = (0, 0, "")
        digest = Digest.combine(pieces, signs)
        facts[run] = RunFacts(digest.to_json(), made.to_json(), counts, *piece, reach, held)
        made = history.NONE
    written = stage(context, part.frame(), part_path(context, day, index))
    fault("partition")
    return PartResult(task, facts, written, inserts)


def _stress_facts(sim: Simulation, run: int, day: int, captured: Changes,
                  counts: dict[str, int]) -> int:
    """Count what the stress modes did in ``captured`` (into ``counts``); return how far
    before the run's day its earliest late-committed change was stamped (0: none)."""
    if not sim.model.stress.on:
        return 0
    timed = captured.kinds != ck.HARD_DELETE
    stamped = captured.after["updated_at"][timed]
    late = stamped < sim.day_start_us(run)
    again = captured.before["sale_id"][1:] == captured.before["sale_id"][:-1]
    counts |= {"repeat_changes": int(again.sum()),
               "same_day_changes": int(captured.kinds.size) if day == run else 0,
               "late_commits": int(late.sum())}
    return int(sim.day_start_us(run) - stamped[late].min()) if late.any() else 0


def _starting_part(context: Context, day: int, index: int) -> Part:
    """The part before the call: its committed file for a day the dataset had, else new.

    Reading a day's file (checked against its checksum when the writer started) costs
    O(rows); replaying its history from the keys costs O(changes it has seen), several times
    more for days a month old. Both give the same arrays; the tests pin daily runs to
    backfills byte for byte.
    """
    sim = simulation(context)
    if day >= context.first:
        return sim.new_part(day, index)
    frame = FORMATS[context.format].read([str(part_path(context, day, index))])
    return Part.from_frame(sim, day, index, context.first - 1, frame)


def stage(context: Context, frame: pl.DataFrame, final: Path, *, wait: bool = True
           ) -> StagedFile | Callable[[], StagedFile]:
    """Write ``frame`` under the temporary name of ``final``. With ``wait=False`` its fsync
    and checksum go on in the background: call the returned function for the StagedFile."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = tmp_name(final, context.tag)
    written = write_file(frame, tmp, context.format, wait=wait)

    def staged() -> StagedFile:
        done = written if wait else written.result()
        return StagedFile(str(tmp.relative_to(context.root)),
                          str(final.relative_to(context.root)), done.bytes, done.sha256)
    return staged() if wait else staged
