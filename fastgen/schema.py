"""The one definition of the ``sales`` table and of the change feed (DESIGN.md section 1).

Kernels produce plain numpy arrays: timestamps as int64 microseconds since the Unix epoch and
money as int64 cents. ``sales_frame`` turns them into the typed Polars frame written to disk.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

PARTITION_KEY = "sale_date"
FEED_PARTITION_KEY = "run_date"

TIMESTAMP = pl.Datetime("us")
PRICE = pl.Decimal(10, 2)
AMOUNT = pl.Decimal(12, 2)

SALES_SCHEMA: dict[str, pl.DataType] = {
    "sale_id": pl.Int64(),
    "sold_at": TIMESTAMP,
    "store_id": pl.Int32(),
    "product_id": pl.Int32(),
    "quantity": pl.Int32(),
    "unit_price": PRICE,
    "amount": AMOUNT,
    "created_at": TIMESTAMP,
    "updated_at": TIMESTAMP,
    "version": pl.Int32(),
    "is_deleted": pl.Boolean(),
    "deleted_at": TIMESTAMP,
}
SALES_COLUMNS = tuple(SALES_SCHEMA)

ROW_IMAGE = pl.Struct(SALES_SCHEMA)
FEED_SCHEMA: dict[str, pl.DataType] = {
    "op": pl.String(),
    "commit_version": pl.Int64(),
    "commit_ts": TIMESTAMP,
    "sale_id": pl.Int64(),
    PARTITION_KEY: pl.Date(),
    "before": ROW_IMAGE,
    "after": ROW_IMAGE,
}
OPS = ("insert", "update", "delete")

# A deleted_at of this value in the kernels' int64 arrays means "not deleted" (null).
NOT_DELETED = np.iinfo(np.int64).min


def decimal_series(name: str, cents: np.ndarray, dtype: pl.Decimal) -> pl.Series:
    """Exact decimals from int64 cents, without a float or a per-row Python object."""
    words = np.zeros((len(cents), 2), dtype=np.int64)
    words[:, 0] = cents
    words[:, 1] = cents >> 63  # sign extension to 128 bits
    array = pa.Array.from_buffers(pa.decimal128(dtype.precision, dtype.scale), len(cents),
                                  [None, pa.py_buffer(words)])
    return pl.Series(name, array)


def sales_frame(columns: dict[str, np.ndarray]) -> pl.DataFrame:
    """Typed sales frame from kernel arrays (timestamps in us, money in cents)."""
    series = [
        pl.Series("sale_id", columns["sale_id"], pl.Int64),
        pl.Series("sold_at", columns["sold_at"].view("datetime64[us]")),
        pl.Series("store_id", columns["store_id"], pl.Int32),
        pl.Series("product_id", columns["product_id"], pl.Int32),
        pl.Series("quantity", columns["quantity"], pl.Int32),
        decimal_series("unit_price", columns["unit_price"], PRICE),
        decimal_series("amount", columns["amount"], AMOUNT),
        pl.Series("created_at", columns["created_at"].view("datetime64[us]")),
        pl.Series("updated_at", columns["updated_at"].view("datetime64[us]")),
        pl.Series("version", columns["version"], pl.Int32),
        pl.Series("is_deleted", columns["is_deleted"], pl.Boolean),
        # NOT_DELETED is NaT in datetime64 terms, which Polars reads as null.
        pl.Series("deleted_at", columns["deleted_at"].view("datetime64[us]")),
    ]
    return pl.DataFrame(series)
