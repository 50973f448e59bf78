"""What a sink reads from the dataset, in bounded pieces: a run's feed, or the whole export.

Files are the ones the manifests list (a run's ``feed``, a day's ``files``), never a glob,
checked against the last commit's sizes and sha256 before they are read
(``fastgen.loaders.files.check_files``), under their temporary names while a commit still
owes their rename. Parquet files are read ``PIECE_ROWS`` rows at a time (pyarrow batches);
a CSV file is read whole, which the generator bounds by ``--rows-per-file``. So memory stays
bounded whatever the length of history or the size of a run.

Every piece has the columns of the target's ``sales`` table (``TABLE_COLUMNS``); a feed
piece also has ``op`` first. A hard delete has only ``sale_id`` and ``sale_date``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import polars as pl
import pyarrow.parquet as pq

from fastgen.dataset import Dataset
from fastgen.loaders.files import check_files, committed_paths
from fastgen.schema import PARTITION_KEY, SALES_COLUMNS, SALES_SCHEMA

TABLE_COLUMNS = (*SALES_COLUMNS, PARTITION_KEY)
# Rows of one piece: about 30 MB of Python-free Arrow data, a few hundred MB at most once a
# driver turns it into rows or CSV text.
PIECE_ROWS = 200_000
_IMAGE = [pl.col("after").struct.field(c).alias(c) for c in SALES_COLUMNS if c != "sale_id"]
FEED_COLUMNS = ("op", *TABLE_COLUMNS)


def feed_pieces(dataset: Dataset, last: dict, rels: list[str]) -> Iterator[pl.DataFrame]:
    """The changes of one run's feed files (listed by its manifest), piece by piece."""
    check_files(dataset, last, rels)
    for path in committed_paths(dataset, last, rels):
        for frame in _pieces(dataset, path, ["op", "sale_id", PARTITION_KEY, "after"]):
            yield frame.select("op", "sale_id", *_IMAGE, PARTITION_KEY)


def snapshot_pieces(dataset: Dataset, last: dict) -> Iterator[pl.DataFrame]:
    """Every row of the export after the commit of ``last``, piece by piece, with its day."""
    days = last["partitions"]
    check_files(dataset, last, [rel for truth in days.values() for rel in truth["files"]])
    for day, truth in days.items():
        for path in committed_paths(dataset, last, truth["files"]):
            for frame in _pieces(dataset, path, list(SALES_COLUMNS)):
                yield frame.with_columns(pl.lit(date.fromisoformat(day)).alias(PARTITION_KEY))


def _pieces(dataset: Dataset, path: str, columns: list[str]) -> Iterator[pl.DataFrame]:
    if dataset.format == "parquet":
        for batch in pq.ParquetFile(path).iter_batches(batch_size=PIECE_ROWS, columns=columns):
            yield pl.from_arrow(batch)
        return
    whole = dataset.reader([path]).select(columns)
    for start in range(0, whole.height, PIECE_ROWS):
        yield whole.slice(start, PIECE_ROWS)


def sql_types(dialect: dict[type, str]) -> dict[str, str]:
    """Each column of ``sales`` with its type in a dialect: ``dialect`` maps the Polars base
    types of ``fastgen.schema`` to SQL; decimals keep their precision and scale."""
    types = {**SALES_SCHEMA, PARTITION_KEY: pl.Date()}
    out = {}
    for name, dtype in types.items():
        if isinstance(dtype, pl.Decimal):
            out[name] = dialect[pl.Decimal].format(p=dtype.precision, s=dtype.scale)
        else:
            out[name] = dialect[dtype.base_type()]
    return out
