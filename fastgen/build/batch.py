"""One call of ``generate``: runs first..last made into staged files, then committed once.

Each touched day is written once, in its state after the batch's last run; the feeds of every
run and the manifests of the earlier runs are staged as they are made; the commit (the dataset
layer's) renames them into place. The dataset's writer lock is held by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from fastgen.build.parts import PartCache
from fastgen.dataset import commit, layout
from fastgen.dataset import manifest as manifests
from fastgen.digest import Digest, digest_arrays
from fastgen.faults import fault
from fastgen.formats import Written, write_file
from fastgen.formats import feed as feed_format
from fastgen.kernels import changes as ck
from fastgen.model import Part
from fastgen.schema import FEED_PARTITION_KEY, SALES_SCHEMA

if TYPE_CHECKING:
    from fastgen.dataset.store import Dataset

# Part states kept in memory between the runs of a batch; evicted parts are recomputed.
DEFAULT_CACHE_BYTES = 2 << 30
# Bytes a row takes on disk with the default model, rounded up (measured: 1M-row days take
# 18-20 MB of sales and 20-27 MB of feed); only for telling a user how much space a call needs.
SALES_BYTES_PER_ROW, FEED_BYTES_PER_ROW = 20, 30


@dataclass
class RunSummary:
    run: int
    run_date: date
    counts: dict[str, int]
    seconds: float
    bytes: int


class Batch:
    """Runs ``last_run + 1 .. last_run + days`` of ``dataset``."""

    def __init__(self, dataset: Dataset, days: int, *, cache_bytes: int = DEFAULT_CACHE_BYTES):
        self.ds, self.sim = dataset, dataset.sim
        self.first = dataset.last_run() + 1
        self.last = self.first + days - 1
        self.staging = commit.Staging(dataset.root, tag=str(self.last))
        self.previous = dataset.manifest(self.first - 1) if self.first else None
        self.partitions = dict(self.previous["partitions"]) if self.previous else {}
        self.cache = PartCache(self.sim, cache_bytes, self._committed_part)

    def estimated_bytes(self) -> int:
        """About how many bytes the batch writes: every run's feed, every touched day once."""
        days = set()
        for run in range(self.first, self.last + 1):
            days.update(self.sim.touched(run).tolist())
        runs = self.last - self.first + 1
        return self.sim.rows * (FEED_BYTES_PER_ROW * runs + SALES_BYTES_PER_ROW * len(days))

    def make(self, *, on_run: Callable[[RunSummary], None] | None = None,
             on_write: Callable[[int, int], None] | None = None) -> tuple[list[RunSummary], list[dict]]:
        """Stage every file and manifest of the batch; return the summaries and manifests."""
        summaries, made, touched = [], [], set()
        for run in range(self.first, self.last + 1):
            t0 = time.perf_counter()
            summary, manifest = self._make_run(run, write_now=run == self.last)
            touched.update(int(d) for d in self.sim.touched(run))
            made.append(manifest)
            summary.seconds = time.perf_counter() - t0
            summaries.append(summary)
            if on_run:
                on_run(summary)
            fault("run")
        # Each touched day is written once, in its state after the batch's last run; the last
        # run wrote its own days already, without holding them in memory.
        remaining = sorted(touched - set(self.sim.touched(self.last).tolist()))
        for n, day in enumerate(remaining):
            for index in range(self.sim.parts()):
                part = self.cache.get(day, index, self.last)  # taken out, so freed once written
                self._stage(part.frame(), self.ds.part_path(day, index))
            fault("partition")
            if on_write:
                on_write(n + 1, len(remaining))
        self._stage_manifests(made)
        return summaries, made

    def _make_run(self, run: int, write_now: bool) -> tuple[RunSummary, dict]:
        """Make one run: its feed, and the ground truth of every day it touches.

        With ``write_now`` (the batch's last run) each touched part is written as soon as it
        is made, so memory holds one part at a time; else parts stay in the cache.
        """
        sim, partitions = self.sim, self.partitions
        commit_ts = datetime.combine(sim.date_of(run) + timedelta(days=1), datetime.min.time())
        feed = _FeedFiles(self, run)
        counts = {"inserts": sim.rows, "late_rows": int(sim.late(run)[0].size),
                  "updates": 0, "soft_deletes": 0, "hard_deletes": 0}
        touched = [int(d) for d in sim.touched(run)]
        chosen = set(int(d) for d in sim.chosen_days(run))
        for day in touched:
            # A new day is digested whole; an earlier one follows its changes: its digest after
            # the previous run, plus the late rows it gains, minus each changed row's before
            # image, plus its after image (gone for a hard delete). O(changes), not O(rows).
            before = partitions.get(sim.date_of(day).isoformat()) if day < run else None
            digests, signs = ([Digest.from_json(before)], [1]) if before else ([], [])
            for index in range(sim.parts()):
                part = self.cache.get(day, index, run - 1) if day < run else sim.new_part(day, index)
                held = part.slots.size
                captured = sim.advance(part, run, capture=day in chosen).get(run)
                if captured is not None and captured.kinds.size:
                    feed.add(feed_format.changes(run, commit_ts, sim.date_of(day), captured.kinds,
                                                 captured.before, captured.after))
                    for name, kind in (("updates", ck.UPDATE), ("soft_deletes", ck.SOFT_DELETE),
                                       ("hard_deletes", ck.HARD_DELETE)):
                        counts[name] += int((captured.kinds == kind).sum())
                if not before:
                    digests.append(digest_arrays([part.columns], [part.alive]))
                    signs.append(1)
                else:
                    digests.append(digest_arrays([{k: v[held:] for k, v in part.columns.items()}]))
                    signs.append(1)
                    if captured is not None and captured.kinds.size:
                        digests += [digest_arrays([captured.before]),
                                    digest_arrays([captured.after],
                                                  [captured.kinds != ck.HARD_DELETE])]
                        signs += [-1, 1]
                if write_now:
                    self._stage(part.frame(), self.ds.part_path(day, index))
                else:
                    self.cache.put(part)
            if write_now:
                fault("partition")
            truth = Digest.combine(digests, signs).to_json()
            truth["last_run"] = run
            truth["files"] = [self.ds.rel(self.ds.part_path(day, k)) for k in range(sim.parts())]
            partitions[sim.date_of(day).isoformat()] = truth
        # Inserts go to the feed a file's worth of rows at a time, so memory stays bounded.
        step = self.ds.model.rows_per_file
        for lo in range(0, sim.rows, step):
            rows, landing = sim.inserts(run, lo, min(lo + step, sim.rows))
            days = np.unique(landing)
            dates = np.array([np.datetime64(sim.date_of(int(d)), "D") for d in days])
            feed.add(feed_format.inserts(run, commit_ts, rows, dates[np.searchsorted(days, landing)]))
        feed.flush()
        fault("feed")
        counts["partitions_rewritten"] = len(touched)
        counts["feed_rows"] = feed.rows
        manifest = {
            "format_version": layout.FORMAT_VERSION, "run": run,
            "run_date": sim.date_of(run).isoformat(), "commit_ts": commit_ts.isoformat(),
            "counts": counts, "touched": [sim.date_of(d).isoformat() for d in touched],
            "feed": feed.paths, "partitions": dict(sorted(partitions.items())),
            "identity": self.ds.identity.recorded(),
        }
        return RunSummary(run, sim.date_of(run), counts, 0.0, feed.bytes), manifest

    def _committed_part(self, day: int, index: int) -> Part | None:
        """Part ``index`` of ``day`` read back from the last commit, or None if it has none.

        Reading a day's file (checked against its checksum at start) costs O(rows); replaying
        its history from the keys costs O(changes it has seen), several times more for days a
        month old. Both give the same arrays; the tests pin daily runs to backfills byte for byte.
        """
        previous = self.previous
        if not previous or self.sim.date_of(day).isoformat() not in previous["partitions"]:
            return None
        frame = self.ds.reader([str(self.ds.part_path(day, index))])
        return self.sim.part_from_frame(day, index, previous["run"], frame)

    def _stage(self, frame: pl.DataFrame, final: Path) -> Written:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.staging.temporary(final)
        written = write_file(frame, tmp, self.ds.format)
        self.staging.owe(tmp, final, {"bytes": written.bytes, "sha256": written.sha256})
        return written

    def _stage_manifests(self, made: list[dict]) -> None:
        """Stage the earlier runs' manifests; complete the last one as the commit manifest."""
        (self.ds.root / layout.MANIFESTS).mkdir(exist_ok=True)
        for manifest in made[:-1]:
            final = self.ds.manifest_path(manifest["run"])
            tmp = self.staging.temporary(final)
            manifest["checksum"] = manifests.checksum(manifest)
            layout.write_json(tmp, manifest)
            self.staging.owe(tmp, final)
            fault("manifest")
        for parent in {(self.ds.root / a).parent for a, _ in self.staging.renames}:
            layout.fsync_dir(parent)
        last = made[-1]
        files = dict(self.previous["files"]) if self.previous else {}
        files.update(self.staging.files)
        last["files"] = dict(sorted(files.items()))
        last["renames"] = self.staging.renames
        last["bytes_written"] = sum(f["bytes"] for f in self.staging.files.values())
        last["checksum"] = manifests.checksum(last)


class _FeedFiles:
    """A run's feed, cut into files of about ``rows_per_file`` rows as pieces arrive.

    Pieces and their sizes are a function of the seed, so the cut is too.
    """

    def __init__(self, batch: Batch, run: int):
        self.batch = batch
        ds = batch.ds
        self.folder = ds.root / layout.CHANGES / f"{FEED_PARTITION_KEY}={ds.sim.date_of(run)}"
        self.limit, self.ext = ds.model.rows_per_file, ds.ext
        self.pieces: list[pl.DataFrame] = []
        self.pending = self.rows = self.bytes = 0
        self.paths: list[str] = []

    def add(self, piece: pl.DataFrame) -> None:
        self.pieces.append(piece)
        self.pending += piece.height
        if self.pending >= self.limit:
            self.flush()

    def flush(self) -> None:
        if not self.pieces and self.paths:
            return
        frame = pl.concat(self.pieces) if self.pieces else feed_format.inserts(
            0, datetime(1970, 1, 1), pl.DataFrame(schema=SALES_SCHEMA), np.empty(0, "M8[D]"))
        path = self.folder / f"part-{len(self.paths):05d}{self.ext}"
        written = self.batch._stage(frame, path)
        self.paths.append(self.batch.ds.rel(path))
        self.rows += frame.height
        self.bytes += written.bytes
        self.pieces, self.pending = [], 0
