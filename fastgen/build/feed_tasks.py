"""Feed tasks: a run's changes written as its feed files (change-, sameday-), after its part
tasks staged them as pieces, and, with redelivery, the tail of rows delivered again.

Like every task (``fastgen.build.tasks``), a pure function of its context and description
that writes only temporary names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from fastgen.build.plan import Context, FeedTask
from fastgen.build.tasks import (FeedResult, StagedFile, change_path, insert_path, piece_path,
                                 same_day_path, simulation, stage, tail_path)
from fastgen.dataset.layout import tmp_name
from fastgen.faults import fault
from fastgen.formats import FORMATS
from fastgen.formats import feed as feed_format
from fastgen.kernels.random import Stream, uniforms_at
from fastgen.schema import LSN


def make_feed(context: Context, task: FeedTask) -> FeedResult:
    """Write one run's changes: to history, its pieces in day order, in files of about
    ``rows_per_file`` rows (whole pieces each, so the cut is a function of the seed); then
    those of its new day's rows (stress mode ``same_day_share``), in files of their own, which
    come after the run's inserts. The inserts were written by the parts of its new day."""
    run = task.run
    history, rows = _feed_files(context, run, [p for p in task.pieces if p[0] != run],
                                change_path, feed_format.HISTORY_BASE)
    same_day, more = _feed_files(context, run, [p for p in task.pieces if p[0] == run],
                                 same_day_path, feed_format.SAME_DAY_BASE)
    files = [staged() for staged in history + same_day]
    paths = [context.root / f.tmp for f in files]
    tails = _tails(context, task, paths[:len(history)], paths[len(history):])
    fault("feed")
    for day, index in task.pieces:
        piece_path(context, run, day, index).unlink(missing_ok=True)
    return FeedResult(task, files, rows + more, len(same_day), tails)


def _tails(context: Context, task: FeedTask, changes: list[Path], same_day: list[Path]
           ) -> list[tuple[int, StagedFile, int]]:
    """Redelivery: the tail of the next run's feed, from this run's files just written (its
    inserts too), when the call makes that run; and a call's first run's own tail, from the
    previous run's committed files. Either way a pure function of the same rows."""
    run, sim = task.run, simulation(context)
    if not (context.feed and context.model.stress.redelivery_share):
        return []
    sources = []
    if run + 1 <= context.last:
        inserts = [tmp_name(insert_path(context, run, k), context.tag) for k in range(sim.parts())]
        sources.append((run, changes + inserts + same_day))
    if task.before:
        sources.append((run - 1, [context.root / rel for rel in task.before]))
    tails = []
    for source_run, paths in sources:
        again = redelivered(context, source_run, paths)
        if again.height:
            tails.append((source_run + 1, stage(context, again,
                                                 tail_path(context, source_run + 1)),
                          again.height))
    return tails


def redelivered(context: Context, run: int, paths: list[Path]) -> pl.DataFrame:
    """The rows of run ``run``'s own feed files (in name order) delivered again with the next
    run: each with probability ``redelivery_share``, keyed by its lsn."""
    frame = FORMATS[context.format].read([str(p) for p in paths])
    positions = (frame[LSN] - (run << feed_format.RUN_SHIFT)).to_numpy()
    u = uniforms_at(simulation(context).key(Stream.REDELIVERY, run), positions)
    return frame.filter(pl.Series(u < context.model.stress.redelivery_share))


def _feed_files(context: Context, run: int, pieces: list[tuple[int, int]],
                path: Callable[[Context, int, int], Path], base: int
                ) -> tuple[list[Callable[[], StagedFile]], int]:
    """Stage ``pieces`` (day, part) of the run's changes as numbered files (``path``), with
    positions from ``base`` on when a stress mode is on; the files to wait for, and rows."""
    files, batch, pending, rows = [], [], 0, 0
    for n, (day, index) in enumerate(pieces):
        piece = pl.read_ipc(piece_path(context, run, day, index))
        batch.append(piece)
        pending += piece.height
        if pending >= context.model.rows_per_file or n == len(pieces) - 1:
            frame = pl.concat(batch)
            if context.model.stress.on:
                frame = feed_format.with_lsn(frame, run, base + rows)
            files.append(stage(context, frame, path(context, run, len(files)), wait=False))
            rows += frame.height
            batch, pending = [], 0
    return files, rows
