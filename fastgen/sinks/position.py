"""Where a target stands: the control row that an exactly-once apply writes with its data.

A target (a sink's database) holds one row in ``fastgen_sink_state``: the dataset it holds
(``fingerprint``: of the model and start date, not the folder; a DuckDB warehouse's too),
the last run applied (its ``commit_version``), that run's date, when and how it was applied. The row is written in the
same transaction as the run's changes, so the table and its position never disagree: a
target killed halfway is at its last whole run, and a repeated apply starts after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from fastgen.dataset import Dataset
from fastgen.errors import UsageError
from fastgen.loaders.tables import fingerprint  # one identity for warehouses and sinks

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


def check(position: Position | None, dataset: Dataset, last: dict, target: str) -> None:
    """UsageError unless ``target`` may go on from ``position`` towards ``last`` (a manifest):
    it must hold this dataset and be at or behind its last committed run."""
    if position is None:
        return
    if position.dataset != fingerprint(dataset):
        raise UsageError(f"{target} holds another dataset than {dataset.root} (its model or "
                         "start date differ); use another database, or drop its tables "
                         f"sales and {STATE_TABLE}.")
    if position.last_run > last["run"]:
        raise UsageError(f"{target} is at run {position.last_run} ({position.last_run_date}), "
                         f"ahead of {dataset.root} (run {last['run']}, {last['run_date']}); "
                         "was the dataset made again? Use another database.")
