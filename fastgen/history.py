"""Ground truth of the type 2 history of each day: one row per version of each sale.

Version *v* of a sale is valid from its ``updated_at`` to the next version's ``updated_at``,
or to the commit time of the run that hard-deleted it (what a change feed says of a delete);
the current version's ``valid_to`` is null. A soft delete is a version like any other. A
day's history is summed up as its number of versions and an order-independent hash of the
rows (sale_id, version, valid_from, valid_to): the wrapping sum of a 64-bit hash of each, like
the export's ``row_hash`` (``fastgen.digest``). Manifests carry both per day after every run
(``versions``, ``history_hash``), kept up to date from each run's changes in O(changes), so a
history table built by any loader (``fastgen load --strategy scd2``, a dbt snapshot of the
export) can be checked: ``of_table``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from fastgen.kernels import changes as ck
from fastgen.kernels.digest import version_digest
from fastgen.schema import NOT_DELETED

MASK = 2**64 - 1


@dataclass(frozen=True)
class History:
    versions: int
    hash: int  # mod 2**64

    def to_json(self) -> dict:
        return {"versions": self.versions, "history_hash": f"{self.hash:016x}"}

    @classmethod
    def from_json(cls, truth: dict) -> History:
        return cls(truth["versions"], int(truth["history_hash"], 16))

    def __add__(self, other: History) -> History:
        return History(self.versions + other.versions, (self.hash + other.hash) & MASK)

    def __neg__(self) -> History:
        """What takes these versions out again (a delta's inverse)."""
        return History(-self.versions, -self.hash & MASK)


NONE = History(0, 0)


def _sum(sign: np.ndarray, sale_id, version, valid_from, valid_to) -> int:
    as64 = [np.ascontiguousarray(a, dtype=np.int64) for a in (sale_id, version, valid_from,
                                                                valid_to)]
    return int(version_digest(np.ascontiguousarray(sign, dtype=np.int8), *as64))


def inserted(columns: dict[str, np.ndarray], keep: np.ndarray | None = None) -> History:
    """The versions new rows add: their first, open from their updated_at."""
    n = columns["sale_id"].size
    sign = np.ones(n, np.int8) if keep is None else keep.astype(np.int8)
    open_ = np.full(n, NOT_DELETED, np.int64)
    total = _sum(sign, columns["sale_id"], columns["version"], columns["updated_at"], open_)
    return History(int(sign.sum()), total)


def changed(kinds: np.ndarray, before: dict[str, np.ndarray], after: dict[str, np.ndarray],
            commit_ts_us: int) -> History:
    """What a run's changes to rows do to the history: each closes the row's open version
    (at the new version's updated_at, or at the run's commit time for a hard delete), and
    an update or soft delete opens the next one."""
    n = kinds.size
    if n == 0:
        return NONE
    hard = kinds == ck.HARD_DELETE
    ids = np.concatenate([before["sale_id"]] * 3)
    versions = np.concatenate([before["version"], before["version"], after["version"]])
    closed_at = np.where(hard, np.int64(commit_ts_us), after["updated_at"])
    open_ = np.full(n, NOT_DELETED, np.int64)
    starts = np.concatenate([before["updated_at"], before["updated_at"], after["updated_at"]])
    ends = np.concatenate([open_, closed_at, open_])
    sign = np.concatenate([np.full(n, -1, np.int8), np.ones(n, np.int8),
                           (~hard).astype(np.int8)])
    return History(int((~hard).sum()), _sum(sign, ids, versions, starts, ends))


def of_table(frame: pl.DataFrame) -> History:
    """The history of a table with columns sale_id, version, valid_from and valid_to (or
    dbt snapshot's dbt_valid_from and dbt_valid_to), timestamps in any unit."""
    names = {"valid_from": "dbt_valid_from", "valid_to": "dbt_valid_to"}
    cols = {}
    for name in ("sale_id", "version", "valid_from", "valid_to"):
        column = frame[name] if name in frame.columns else frame[names[name]]
        if column.dtype.is_temporal():
            column = column.dt.cast_time_unit("us").cast(pl.Int64)
        cols[name] = column.cast(pl.Int64).fill_null(NOT_DELETED).to_numpy()
    sign = np.ones(frame.height, np.int8)
    return History(frame.height, _sum(sign, *cols.values()))
