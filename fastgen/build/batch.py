"""One call of ``generate``, driven: plan, then tasks on an executor, then the manifests.

The driver (this module, in the process that holds the writer lock) journals every temporary
name of the plan, runs the part tasks and then the feed tasks on the executor, and assembles
each run's manifest from what the tasks return; the dataset layer commits them. Tasks never
see a manifest or the lock.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from fastgen import delivered, history
from fastgen.build import feed_tasks, resume, tasks
from fastgen.build.executors import Executor, Serial
from fastgen.build.plan import Context, Plan, plan
from fastgen.dataset import commit, layout, snapshot
from fastgen.dataset.layout import tmp_name
from fastgen.dataset import manifest as manifests
from fastgen.digest import Digest
from fastgen.history import History
from fastgen.faults import fault

if TYPE_CHECKING:
    from fastgen.dataset.store import Dataset

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

    def __init__(self, dataset: Dataset, days: int, executor: Executor | None = None, *,
                 previous: dict | None = None):
        self.ds, self.sim = dataset, dataset.sim
        self.first = dataset.last_run() + 1
        self.last = self.first + days - 1
        self.staging = commit.Staging(dataset.root, tag=str(self.last))
        # The state the call starts from: the last commit's snapshot (``previous`` if the
        # caller read it already).
        self.previous = (previous or dataset.snapshot(self.first - 1)) if self.first else None
        self.executor = executor or Serial()
        # Absolute: workers of a cluster do not share this process's working directory.
        self.context = Context(Path(os.path.abspath(dataset.root)), dataset.model, dataset.start,
                               dataset.format, self.first, self.last, self.staging.tag,
                               feed=dataset.feed == "full")
        self.plan: Plan = plan(self.sim, self.context)
        stress = dataset.model.stress
        if self.previous and self.plan.feeds and (stress.redelivery_share
                                                  or stress.late_event_share):
            # The previous run's own feed files, whose rows the first run redelivers, and
            # its held-back events, which end the first run's feed.
            own = tuple(rel for rel in self.previous["feed"]
                        if not Path(rel).name.startswith("tail-"))
            held = tuple(self.previous.get("held", {}).get("files", []))
            self.plan = replace(self.plan, feeds=(
                replace(self.plan.feeds[0], before=own if stress.redelivery_share else (),
                        held_before=held), *self.plan.feeds[1:]))
        self.resumed = False  # whether ``reuse`` continues an interrupted call's journal
        self.parts_done: dict[str, tasks.PartResult] = {}
        self.feeds_done: dict[int, tasks.FeedResult] = {}

    @property
    def tasks(self) -> int:
        """How many tasks the call runs (what a progress bar counts)."""
        return len(self.plan.parts) + len(self.plan.feeds)

    def estimated_bytes(self) -> int:
        """About how many bytes the batch writes: every run's feed, every touched day once."""
        days = {task.day for task in self.plan.parts}
        runs = self.last - self.first + 1
        return self.sim.rows * (FEED_BYTES_PER_ROW * runs + SALES_BYTES_PER_ROW * len(days))

    def resumable(self) -> dict[str, dict] | None:
        """Finished tasks an interrupted call of this same plan left (``resume``), or None."""
        return resume.finished(self.ds.root, self._header())

    def _header(self) -> dict:
        return resume.header(self.context, self.ds.identity.recorded())

    def reuse(self, done: dict[str, dict]) -> int:
        """Take the finished tasks of an interrupted call of this plan whose files are intact
        (``resumable``); ``make`` then runs only the rest. Returns how many are reused."""
        ctx = self.context
        feeds = {t.run: resume.feed_result(t, done[resume.key(t)])
                 for t in self.plan.feeds if resume.key(t) in done}
        self.feeds_done = {run: r for run, r in feeds.items() if resume.reusable_feed(ctx, r)}
        for t in self.plan.parts:
            if resume.key(t) in done:
                result = resume.part_result(t, done[resume.key(t)])
                if resume.reusable_part(ctx, result, set(self.feeds_done)):
                    self.parts_done[resume.key(t)] = result
        self.resumed = True
        return len(self.parts_done) + len(self.feeds_done)

    def make(self, *, on_task: Callable[[object], None] | None = None
             ) -> tuple[list[RunSummary], list[dict]]:
        """Stage every file and manifest of the batch; return the summaries and manifests."""
        ctx, t0 = self.context, time.perf_counter()
        if not self.resumed:
            # Every temporary name is journaled before any task may create it.
            self.staging.journal_header(self._header())
            self.staging.journal(
                [tmp_name(tasks.part_path(ctx, t.day, t.index), ctx.tag) for t in self.plan.parts]
                + [tasks.piece_path(ctx, run, t.day, t.index)
                   for t in self.plan.parts for run in t.runs]
                + [tmp_name(tasks.insert_path(ctx, t.day, t.index), ctx.tag)
                   for t in self.plan.parts if t.day >= ctx.first and ctx.feed]
                + [glob for t in self.plan.feeds for glob in tasks.change_patterns(ctx, t.run)]
                + [tmp_name(tasks.tail_path(ctx, t.run), ctx.tag) for t in self.plan.feeds
                   if t.run and (ctx.model.stress.redelivery_share
                                 or ctx.model.stress.late_event_share)])
        parts_done, feeds_done = self.parts_done, self.feeds_done

        def finished(task, result) -> None:
            resume.record(self.ds.root, task, result)
            if on_task:
                on_task(task)

        todo = [t for t in self.plan.parts if resume.key(t) not in parts_done]
        made_parts = self.executor.map(tasks.make_part, ctx, todo, finished)
        parts = [parts_done.get(resume.key(t)) for t in self.plan.parts]
        fresh = iter(made_parts)
        parts = [r if r is not None else next(fresh) for r in parts]
        by_part = {(r.task.day, r.task.index): r for r in parts}
        feeds = [replace(task, pieces=tuple(p for p in task.pieces
                                            if by_part[p].runs[task.run].piece_rows))
                 for task in self.plan.feeds if task.run not in feeds_done]
        made_feeds = iter(self.executor.map(feed_tasks.make_feed, ctx, feeds, finished))
        by_run = {t.run: feeds_done[t.run] if t.run in feeds_done else next(made_feeds)
                  for t in self.plan.feeds}  # empty without a feed
        tails = {run: (tail, rows) for result in by_run.values()
                 for run, tail, rows in result.tails}
        for result in parts:
            self.staging.owe_staged(result.file)
            if result.inserts:
                self.staging.owe_staged(result.inserts)
        made, summaries = [], []
        partitions = dict(self.previous["partitions"]) if self.previous else {}
        runs = range(self.first, self.last + 1)
        seconds = (time.perf_counter() - t0) / len(runs)
        for run in runs:
            feed = by_run.get(run, tasks.FeedResult(None, [], 0))
            for staged in feed.files + ([feed.held] if feed.held else []):
                self.staging.owe_staged(staged)
            if ctx.feed:  # the changes to history, the inserts, the new rows' changes
                inserts = [by_part[(run, k)].inserts for k in range(self.sim.parts())]
                cut = len(feed.files) - feed.same_day
                tail, again = tails.get(run, (None, 0))  # rows of the previous run, again
                if tail:
                    self.staging.owe_staged(tail)
                feed = replace(feed, files=feed.files[:cut] + inserts + feed.files[cut:]
                               + ([tail] if tail else []),
                               rows=feed.rows + self.sim.rows + again)
            # The tail: the previous run's held-back events, then rows of it again.
            late = (by_run[run - 1].held_rows if run - 1 in by_run
                    else self.previous["counts"].get("late_events", 0) if self.previous else 0)
            manifest = self._manifest(run, feed, by_part, partitions,
                                      tails.get(run, (None, 0))[1] - late)
            made.append(manifest)
            summaries.append(RunSummary(run, self.sim.date_of(run), manifest["counts"],
                                        seconds, sum(f.bytes for f in feed.files)))
            fault("run")
        self._stage_manifests(made)
        return summaries, made

    def _manifest(self, run: int, feed: tasks.FeedResult, by_part: dict, partitions: dict,
                  redelivered: int) -> dict:
        """Run ``run``'s manifest: its counts, feed (``redelivered`` rows of the previous run
        among them), and the truth of the days it touched."""
        sim = self.sim
        touched = self.plan.touched[run]
        counts = {"inserts": sim.rows, "late_rows": int(sim.late(run)[0].size),
                  "updates": 0, "soft_deletes": 0, "hard_deletes": 0}
        if sim.model.stress.on:  # what the stress modes did (README "Stress modes")
            counts |= dict.fromkeys(("repeat_changes", "same_day_changes", "late_commits",
                                     "late_commit_reach_us"), 0)
        if sim.model.stress.redelivery_share:
            counts["redelivered"] = redelivered
        if sim.model.stress.late_event_share:
            counts["late_events"] = feed.held_rows
        held: dict[str, list[dict]] = {}  # day -> its parts' held truths
        for day in touched:
            facts = [by_part[(day, k)].runs[run] for k in range(sim.parts())]
            for fact in facts:
                for name, n in fact.counts.items():
                    counts[name] = counts.get(name, 0) + n
                if fact.held:
                    held.setdefault(sim.date_of(day).isoformat(), []).append(fact.held)
                if fact.late_commit_reach_us:  # the ground truth a watermark's lookback needs
                    counts["late_commit_reach_us"] = max(counts.get("late_commit_reach_us", 0),
                                                         fact.late_commit_reach_us)
            truth = Digest.combine([Digest.from_json(f.digest) for f in facts]).to_json()
            before = partitions.get(sim.date_of(day).isoformat())
            versions = History.from_json(before) if before else history.NONE
            for fact in facts:
                versions += History.from_json(fact.history)
            truth |= versions.to_json()
            truth["last_run"] = run
            truth["files"] = [self.ds.rel(self.ds.part_path(day, k)) for k in range(sim.parts())]
            partitions[sim.date_of(day).isoformat()] = truth
        # What the run changed; a checkpoint holds every day (fastgen.dataset.snapshot).
        whole = snapshot.is_checkpoint(run)
        days = partitions if whole else {sim.date_of(d).isoformat(): None for d in touched}
        counts["partitions_rewritten"] = len(touched)
        counts["feed_rows"] = feed.rows
        late = sim.model.stress.late_event_share and self.context.feed
        extra = {"held": delivered.held(held, feed.held)} if late else {}
        return {
            "format_version": layout.FORMAT_VERSION, "run": run,
            "run_date": sim.date_of(run).isoformat(),
            "commit_ts": tasks.commit_ts(self.context, run).isoformat(),
            "counts": counts, "touched": [sim.date_of(d).isoformat() for d in touched],
            "feed": [f.final for f in feed.files],
            "partitions": {day: partitions[day] for day in sorted(days)},
            "identity": self.ds.identity.recorded(), **extra,
        }

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
        # Every current file at the first commit and at a call that reached a checkpoint;
        # else the files this call wrote (fastgen.dataset.snapshot).
        complete = self.previous is None or any(
            snapshot.is_checkpoint(r) for r in range(self.first, self.last + 1))
        files = dict(self.previous["files"]) if complete and self.previous else {}
        files.update(self.staging.files)
        last["files"] = dict(sorted(files.items()))
        last["files_complete"] = complete
        last["renames"] = self.staging.renames
        last["bytes_written"] = sum(f["bytes"] for f in self.staging.files.values())
        last["checksum"] = manifests.checksum(last)
