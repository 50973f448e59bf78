"""The one definition of the ``sales`` table and of the change feed (DESIGN.md section 1).

Kernels produce plain numpy arrays: timestamps as int64 microseconds since the Unix epoch and
money as int64 cents. ``sales_frame`` turns them into the typed Polars frame written to disk.
"""

from __future__ import annotations

import numpy as np
import polars as pl
import pyarrow as pa

from fastgen.kernels.digest import to_decimal128

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
# The feed's position, when a stress mode is on (fastgen.formats.feed): a dataset-wide
# monotone log sequence number; applying events in its order gives the export.
LSN = "lsn"

# Schema evolution (stress mode ``schema_change_run``): the column the source gains, its values
# and how often each is drawn. In the kernels' arrays a row's channel is an int8 code, the
# index in CHANNELS, or NO_CHANNEL (null).
CHANNEL = "channel"
CHANNELS = ("store", "web", "app", "phone")
CHANNEL_WEIGHTS = (0.55, 0.25, 0.15, 0.05)
NO_CHANNEL = -1


def channel_codes(names: pl.Series) -> np.ndarray:
    """The int8 codes of a ``channel`` column (null: NO_CHANNEL)."""
    return (names.replace_strict(dict(zip(CHANNELS, range(len(CHANNELS)))), default=NO_CHANNEL,
                                 return_dtype=pl.Int8).to_numpy())


def source_columns(columns: dict[str, np.ndarray], has_channel: bool) -> dict[str, np.ndarray]:
    """Kernel arrays as the source has them: without channel before its schema change (the
    arrays carry it as NO_CHANNEL codes all along)."""
    if has_channel or CHANNEL not in columns:
        return columns
    return {name: v for name, v in columns.items() if name != CHANNEL}


def image_type(columns) -> pl.Struct:
    """The feed's row image type for rows with these columns (with channel or without)."""
    return ROW_IMAGE if CHANNEL not in columns else pl.Struct({**SALES_SCHEMA,
                                                               CHANNEL: pl.String()})

# A deleted_at of this value in the kernels' int64 arrays means "not deleted" (null).
NOT_DELETED = np.iinfo(np.int64).min


def _decimal(cents: np.ndarray, dtype: pl.Decimal) -> pa.Array:
    """Exact decimals from int64 cents: the 128-bit words are written by a kernel, in parallel."""
    words = np.empty((len(cents), 2), dtype=np.int64)
    to_decimal128(cents, words)
    return pa.Array.from_buffers(pa.decimal128(dtype.precision, dtype.scale), len(cents),
                                 [None, pa.py_buffer(words)])


def _timestamps(us: np.ndarray, nullable: bool = False) -> pa.Array:
    """Zero-copy timestamps; if ``nullable``, NOT_DELETED values become nulls."""
    if not nullable:
        return pa.Array.from_buffers(pa.timestamp("us"), len(us), [None, pa.py_buffer(us)])
    # A validity bitmap over the values we have, even when every value is missing:
    # ``pa.nulls`` would zero a new buffer of 8 bytes a row (0.25 s for 10M rows).
    missing = us == NOT_DELETED
    validity = None
    if missing.any():
        validity = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.Array.from_buffers(pa.timestamp("us"), len(us), [validity, pa.py_buffer(us)])


def sales_frame(columns: dict[str, np.ndarray], keep: np.ndarray | None = None) -> pl.DataFrame:
    """Typed sales frame from kernel arrays (timestamps in us, money in cents).

    Arrays are handed to Arrow without copies where the types allow; ``keep`` filters rows
    (Polars filters all columns in parallel, faster than numpy masks column by column).
    """
    arrays = {
        "sale_id": pa.array(columns["sale_id"]),
        "sold_at": _timestamps(columns["sold_at"]),
        "store_id": pa.array(columns["store_id"]),
        "product_id": pa.array(columns["product_id"]),
        "quantity": pa.array(columns["quantity"]),
        "unit_price": _decimal(columns["unit_price"], PRICE),
        "amount": _decimal(columns["amount"], AMOUNT),
        "created_at": _timestamps(columns["created_at"]),
        "updated_at": _timestamps(columns["updated_at"]),
        "version": pa.array(columns["version"]),
        "is_deleted": pa.array(columns["is_deleted"]),
        "deleted_at": _timestamps(columns["deleted_at"], nullable=True),
    }
    if CHANNEL in columns:  # after a schema change: the source's new column, last
        codes = pl.Series(columns[CHANNEL])
        arrays[CHANNEL] = (codes.replace_strict(dict(enumerate(CHANNELS)), default=None,
                                                return_dtype=pl.String).to_arrow())
    frame = pl.from_arrow(pa.table(arrays))
    if keep is not None and not keep.all():
        frame = frame.filter(pl.Series(keep))
    return frame
