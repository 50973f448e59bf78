"""Ground truth of a set of sales rows: counts, exact sum(amount) and an order-independent hash.

Manifests store these per day; ``fastgen verify`` and the loaders recompute them from files or
from a warehouse table, in any row order, and compare.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

import numpy as np
import polars as pl

from fastgen.kernels.digest import row_hash_sum
from fastgen.schema import NOT_DELETED, SALES_COLUMNS


@dataclass(frozen=True)
class Digest:
    rows: int
    live_rows: int
    amount: str  # exact decimal, as text: sum over all rows of the export
    row_hash: str  # 16 hex digits

    def to_json(self) -> dict:
        return asdict(self)


def _as_int64(frame: pl.DataFrame) -> pl.DataFrame:
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
    """Digest of the ``sales`` rows in ``frame`` (extra columns are ignored)."""
    ints = _as_int64(frame)
    matrix = np.ascontiguousarray(ints.to_numpy().T) if frame.height else np.zeros((12, 0), np.int64)
    cents = int(ints["amount"].sum()) if frame.height else 0
    live = frame.height - int(frame["is_deleted"].sum()) if frame.height else 0
    return Digest(rows=frame.height, live_rows=live,
                  amount=str(Decimal(cents).scaleb(-2)),
                  row_hash=f"{int(row_hash_sum(matrix)):016x}")
