"""Ground truth of a set of sales rows: counts, exact sum(amount) and an order-independent hash.

Manifests store these per day; ``fastgen verify`` and the loaders recompute them from files or
from a warehouse table, in any row order, and compare.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np
import polars as pl

from fastgen.kernels.digest import channel_digest, row_digest
from fastgen.schema import CHANNEL, NOT_DELETED, SALES_COLUMNS, channel_codes


@dataclass(frozen=True)
class Digest:
    rows: int
    live_rows: int
    amount: str  # exact decimal, as text: sum over all rows of the export
    row_hash: str  # 16 hex digits

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> Digest:
        return cls(rows=data["rows"], live_rows=data["live_rows"], amount=data["amount"],
                   row_hash=data["row_hash"])

    @classmethod
    def combine(cls, parts: list[Digest], signs: list[int] | None = None) -> Digest:
        """The digest of the union of disjoint row sets (the parts of one day).

        With ``signs`` of -1, a set is taken out instead: every field is an exact sum (the
        hash one mod 2**64), so a day's digest can follow its changes without a full pass.
        """
        signs = signs or [1] * len(parts)
        cents = sum(s * Decimal(p.amount).scaleb(2) for s, p in zip(signs, parts))
        total = sum(s * int(p.row_hash, 16) for s, p in zip(signs, parts)) % 2**64
        return cls(rows=sum(s * p.rows for s, p in zip(signs, parts)),
                   live_rows=sum(s * p.live_rows for s, p in zip(signs, parts)),
                   amount=str(Decimal(int(cents)).scaleb(-2)), row_hash=f"{total:016x}")


def encoded(frame: pl.DataFrame) -> pl.DataFrame:
    """The ``sales`` columns of ``frame`` as the kernels hold them: Int64 microseconds, cents,
    0/1, NOT_DELETED for a null."""
    exprs = []
    for name in SALES_COLUMNS:
        dtype = frame.schema[name]
        col = pl.col(name)
        if isinstance(dtype, pl.Decimal):
            col = (col * 100).cast(pl.Int64)
        elif isinstance(dtype, pl.Datetime):
            col = col.dt.cast_time_unit("us").cast(pl.Int64)
        exprs.append(col.cast(pl.Int64).fill_null(NOT_DELETED).alias(name))
    return frame.select(exprs)


def digest(frame: pl.DataFrame) -> Digest:
    """Digest of the ``sales`` rows in ``frame``, with channel if it has one (other extra
    columns are ignored)."""
    ints = encoded(frame)
    columns = {name: ints[name].to_numpy() for name in SALES_COLUMNS}
    if CHANNEL in frame.columns:
        columns[CHANNEL] = channel_codes(frame[CHANNEL])
    return digest_arrays([columns])


def digest_arrays(parts: list[dict[str, np.ndarray]], keeps: list[np.ndarray] | None = None) -> Digest:
    """Digest of rows held as kernel arrays (us, cents, NOT_DELETED for null), part by part.

    Same encoding as ``digest``, so a manifest computed from memory matches the files read back.
    """
    digests = []
    for n, columns in enumerate(parts):
        keep = keeps[n] if keeps is not None else np.ones(columns["sale_id"].size, np.bool_)
        rows, live, cents, total = row_digest(keep, *(columns[name] for name in SALES_COLUMNS))
        if CHANNEL in columns:
            total = (int(total) + int(channel_digest(keep, columns["sale_id"],
                                                     columns[CHANNEL]))) % 2**64
        digests.append(Digest(rows=int(rows), live_rows=int(live),
                              amount=str(Decimal(sum(int(c) for c in cents)).scaleb(-2)),
                              row_hash=f"{int(total):016x}"))
    return Digest.combine(digests)
