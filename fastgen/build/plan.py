"""The plan of one call of ``generate``: which tasks make which files. Pure and picklable.

A plan depends on the model, the start date and the runs only, never on the number of
workers (tpchgen-rs' ``plan.rs`` does the same), so every executor makes the same files:

- one *part task* per part (file) of each day the call touches: it starts from the part's
  committed file (a day the dataset had before the call) or from the keys (a day the call
  creates: it then also writes the run's feed inserts of the same rows, from the same
  arrays), moves it through every run of the call that touches its day, stages each run's
  changes to it as a feed piece, and writes its export after the call's last run;
- one *feed task* per run: it writes the run's changes to history from the pieces of its
  touched days, in day order, cut into files of about ``rows_per_file`` rows.

Feed tasks need the pieces, so they run after the part tasks.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from fastgen.config import Model
from fastgen.model import Simulation


@dataclass(frozen=True)
class Context:
    """What every task of a call knows: the dataset and the call's runs."""

    root: Path
    model: Model
    start: date
    format: str
    first: int  # the call's first run; days before it start from their committed files
    last: int
    tag: str  # suffix of the call's temporary names
    feed: bool = True  # whether runs write a change feed (fastgen.json's "feed")


@dataclass(frozen=True)
class PartTask:
    day: int
    index: int
    runs: tuple[int, ...]  # the call's runs that touch the day, ascending

    @property
    def name(self) -> str:
        return f"part {self.index} of day {self.day}"


@dataclass(frozen=True)
class FeedTask:
    run: int
    pieces: tuple[tuple[int, int], ...]  # (day, part) whose changes of this run come first
    # The first run of a call: with redelivery on, the previous run's own feed files
    # (committed), whose redelivered rows end this run's feed (feed_tasks.make_feed); with
    # late events, the previous run's held file, whose events end it too.
    before: tuple[str, ...] = ()
    held_before: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return f"feed of run {self.run}"


@dataclass(frozen=True)
class Plan:
    context: Context
    parts: tuple[PartTask, ...]
    feeds: tuple[FeedTask, ...]
    touched: dict[int, tuple[int, ...]]  # run -> days it rewrites


def plan(sim: Simulation, context: Context) -> Plan:
    """The tasks that make runs ``context.first .. context.last``."""
    touched = {run: tuple(int(d) for d in sim.touched(run))
               for run in range(context.first, context.last + 1)}
    runs_of: dict[int, list[int]] = {}
    for run, days in touched.items():
        for day in days:
            runs_of.setdefault(day, []).append(run)
    parts = tuple(PartTask(day, index, tuple(runs_of[day]))
                  for day in sorted(runs_of) for index in range(sim.parts()))
    feeds = tuple(FeedTask(run, tuple((day, index) for day in days for index in range(sim.parts())))
                  for run, days in touched.items() if context.feed)
    return Plan(context, parts, feeds, touched)
