"""Where a target stands: the control row that an exactly-once apply writes with its data.

A target (a sink's database, or the loaders' DuckDB warehouse) records the dataset it holds
(``fingerprint``: of the model and start date, not the folder), the last run applied (its
``commit_version``) and that run's date. The row is written in the same transaction as the
run's changes (``fastgen.sinks.commit``), so the table and its position never disagree: a
target killed halfway is at its last whole run, and a repeated apply starts after it.

A sink's database holds one row in ``fastgen_sink_state``; the warehouse holds one row per
strategy in ``fastgen_load_state`` (``fastgen.loaders.tables``), its position being its most
recent load's.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date

from fastgen.dataset import Dataset
from fastgen.errors import UsageError

__all__ = ["STATE_TABLE", "Position", "check", "fingerprint"]

STATE_TABLE = "fastgen_sink_state"
# (column, portable type, nullable): each dialect maps the type to its own.
STATE_COLUMNS = (("id", "INTEGER", False), ("dataset", "TEXT", False),
                 ("last_run", "INTEGER", False), ("last_run_date", "DATE", False),
                 ("applied_at", "TIMESTAMP", False), ("method", "TEXT", False),
                 ("changes", "BIGINT", False))
STATE_ROW_ID = 1  # one row: a target holds one dataset


@dataclass(frozen=True)
class Position:
    """A target's control row."""

    dataset: str  # fingerprint()
    last_run: int
    last_run_date: date
    # Whether the last run was applied from its feed: with late events the target then
    # holds ``fastgen.delivered.truth``, and the next run's held-back events are its to apply.
    fed: bool = False


def fingerprint(dataset: Dataset) -> str:
    """Identity of a dataset's contents: its model and start date (not its folder)."""
    key = json.dumps({"model": dataset.identity.raw["model"], "start": dataset.start.isoformat()},
                     sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def check(position: Position | None, dataset: Dataset, last: dict, target: str,
          remedy: str) -> None:
    """UsageError unless ``target`` may go on from ``position`` towards ``last`` (a manifest):
    it must hold this dataset and be at or behind its last committed run. ``remedy`` says
    what the user can do instead (a clause: "use another database")."""
    if position is None:
        return
    if position.dataset != fingerprint(dataset):
        raise UsageError(f"{target} holds another dataset than {dataset.root} (its model or "
                         f"start date differ); {remedy}.")
    if position.last_run > last["run"]:
        raise UsageError(f"{target} is at run {position.last_run} ({position.last_run_date}), "
                         f"ahead of {dataset.root} (run {last['run']}, {last['run_date']}); "
                         f"was the dataset made again? {remedy[:1].upper()}{remedy[1:]}.")
