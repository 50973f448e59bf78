"""Feed tasks: a run's changes written as its feed files (change-, sameday-), after its part
tasks staged them as pieces; with late events, the events held back (``held/``); and the tail
that ends the next run's feed: the held-back events and the rows delivered again.

Like every task (``fastgen.build.tasks``), a pure function of its context and description
that writes only temporary names.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import polars as pl

from fastgen.build.plan import Context, FeedTask
from fastgen.build.tasks import (FeedResult, StagedFile, change_path, held_back, held_path,
                                 insert_path, piece_path, same_day_path, simulation, stage,
                                 tail_path)
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
    come after the run's inserts. The inserts were written by the parts of its new day.
    With late events, the events of the sales ``held_back`` leave those files (their
    positions stay taken) for the run's held file."""
    run, held = task.run, []
    history, rows = _feed_files(context, run, [p for p in task.pieces if p[0] != run],
                                change_path, feed_format.HISTORY_BASE, held)
    same_day, more = _feed_files(context, run, [p for p in task.pieces if p[0] == run],
                                 same_day_path, feed_format.SAME_DAY_BASE, held)
    held_frame = pl.concat(held) if held else None
    held_file = (stage(context, held_frame, held_path(context, run), wait=False)
                 if held_frame is not None and held_frame.height else None)
    files = [staged() for staged in history + same_day]
    held_file = held_file() if held_file else None
    paths = [context.root / f.tmp for f in files]
    tails = _tails(context, task, paths[:len(history)], paths[len(history):], held_file)
    fault("feed")
    for day, index in task.pieces:
        piece_path(context, run, day, index).unlink(missing_ok=True)
    return FeedResult(task, files, rows + more, len(same_day), tails, held_file,
                      held_frame.height if held_file else 0)


def _tails(context: Context, task: FeedTask, changes: list[Path], same_day: list[Path],
           held: StagedFile | None) -> list[tuple[int, StagedFile, int]]:
    """The tail of the next run's feed, from this run's files just written (its inserts and
    held events too), when the call makes that run; and a call's first run's own tail, from
    the previous run's committed files. Either way a pure function of the same rows: the
    held-back events and the redelivered rows, in the order of their positions."""
    run, sim, stress = task.run, simulation(context), context.model.stress
    if not (context.feed and (stress.redelivery_share or stress.late_event_share)):
        return []
    sources = []
    if run + 1 <= context.last:
        inserts = [tmp_name(insert_path(context, run, k), context.tag) for k in range(sim.parts())]
        sources.append((run, changes + inserts + same_day,
                        [context.root / held.tmp] if held else []))
    if task.before or task.held_before:
        sources.append((run - 1, [context.root / rel for rel in task.before],
                        [context.root / rel for rel in task.held_before]))
    tails = []
    for source_run, paths, held_paths in sources:
        frames = [redelivered(context, source_run, paths)] if stress.redelivery_share else []
        if held_paths:
            frames.insert(0, FORMATS[context.format].read([str(p) for p in held_paths]))
        tail = pl.concat(frames, how="diagonal_relaxed").sort(LSN) if frames else None
        if tail is not None and tail.height:
            tails.append((source_run + 1, stage(context, tail, tail_path(context, source_run + 1)),
                          tail.height))
    return tails


def redelivered(context: Context, run: int, paths: list[Path]) -> pl.DataFrame:
    """The rows of run ``run``'s own feed files (in name order) delivered again with the next
    run: each with probability ``redelivery_share``, keyed by its lsn."""
    frame = FORMATS[context.format].read([str(p) for p in paths])
    positions = (frame[LSN] - (run << feed_format.RUN_SHIFT)).to_numpy()
    u = uniforms_at(simulation(context).key(Stream.REDELIVERY, run), positions)
    return frame.filter(pl.Series(u < context.model.stress.redelivery_share))


def _feed_files(context: Context, run: int, pieces: list[tuple[int, int]],
                path: Callable[[Context, int, int], Path], base: int, held: list[pl.DataFrame]
                ) -> tuple[list[Callable[[], StagedFile]], int]:
    """Stage ``pieces`` (day, part) of the run's changes as numbered files (``path``), with
    positions from ``base`` on when a stress mode is on; the files to wait for, and the rows
    in them. The events of sales held back go to ``held`` instead, with their positions."""
    files, batch, pending, rows, placed = [], [], 0, 0, 0
    sim = simulation(context)
    for n, (day, index) in enumerate(pieces):
        piece = pl.read_ipc(piece_path(context, run, day, index))
        batch.append(piece)
        pending += piece.height
        if pending >= context.model.rows_per_file or n == len(pieces) - 1:
            frame = pl.concat(batch)
            if context.model.stress.on:
                frame = feed_format.with_lsn(frame, run, base + placed)
            placed += frame.height
            if context.model.stress.late_event_share:
                late = pl.Series(held_back(sim, run, frame["sale_id"].to_numpy()))
                held.append(frame.filter(late))
                frame = frame.filter(~late)
            if frame.height:
                files.append(stage(context, frame, path(context, run, len(files)), wait=False))
            rows += frame.height
            batch, pending = [], 0
    return files, rows
