"""CSV, for people coming from the original generator's CSV files.

Struct columns (the change feed's ``before`` and ``after`` images) are flattened into
``before.<column>`` and ``after.<column>``; decimals keep their two digits.
"""

from __future__ import annotations

from typing import IO

import polars as pl

from fastgen.schema import CHANNEL, FEED_SCHEMA, LSN, SALES_SCHEMA

EXTENSION = ".csv"


def _flatten(frame: pl.DataFrame) -> pl.DataFrame:
    structs = [n for n, t in frame.schema.items() if isinstance(t, pl.Struct)]
    if not structs:
        return frame
    return frame.select([
        pl.col(n).struct.field(f).alias(f"{n}.{f}") if n in structs else pl.col(n)
        for n, t in frame.schema.items()
        for f in (t.to_schema() if n in structs else [None])
    ])


def write(frame: pl.DataFrame, sink: IO[bytes]) -> None:
    _flatten(frame).write_csv(sink, datetime_format="%Y-%m-%dT%H:%M:%S%.6f")


def read(paths: list[str]) -> pl.DataFrame:
    """Read sales or feed CSV files back with the schema's types (and ``channel``, a string,
    in files written after a schema change: all of ``paths`` must agree on it)."""
    header = pl.read_csv(paths[0], n_rows=0).columns
    if "op" not in header:
        return pl.read_csv(paths, schema={**SALES_SCHEMA, **_channel(header)})
    flat = {n: t for n, t in FEED_SCHEMA.items() if not isinstance(t, pl.Struct)}
    image = {**SALES_SCHEMA, **_channel(header, "after.")}
    for side in ("before", "after"):
        flat |= {f"{side}.{c}": t for c, t in image.items()}
    flat |= {n: pl.Int64() for n in header if n == LSN}
    raw = pl.read_csv(paths, schema={n: flat[n] for n in header})
    images = {side: pl.struct([pl.col(f"{side}.{c}").alias(c) for c in image])
              for side in ("before", "after")}
    null = {side: pl.col(f"{side}.sale_id").is_null() for side in images}
    return raw.select(
        *[pl.col(n) for n, t in FEED_SCHEMA.items() if not isinstance(t, pl.Struct)],
        *[pl.when(null[s]).then(None).otherwise(images[s]).alias(s) for s in images],
        *[pl.col(n) for n in header if n == LSN])


def _channel(header: list[str], prefix: str = "") -> dict[str, pl.DataType]:
    return {CHANNEL: pl.String()} if f"{prefix}{CHANNEL}" in header else {}
