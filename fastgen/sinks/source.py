"""What a sink reads from the dataset, in bounded pieces: a run's feed, or the whole export.

Files are the ones the manifests list (a run's ``feed``, a day's ``files``), never a glob,
checked against the last commit's sizes and sha256 before they are read (``check_files``),
under their temporary names while a commit still owes their rename (``committed_paths``).
The DuckDB loaders check and find their files with these functions too. Parquet files are
read ``PIECE_ROWS`` rows at a time (pyarrow batches); a CSV file is read whole, which the
generator bounds by ``--rows-per-file``. So memory stays bounded whatever the length of
history or the size of a run.

Every piece has the columns of the target's ``sales`` table (``TABLE_COLUMNS``); a feed
piece also has ``op`` first. A hard delete has only ``sale_id`` and ``sale_date``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date

import polars as pl
import pyarrow.parquet as pq

from fastgen.dataset import Dataset, DatasetError, UsageError
from fastgen.dataset.check import load_checked, mismatches
from fastgen.formats.feed import RUN_SHIFT
from fastgen.schema import CHANNEL, LSN, PARTITION_KEY, SALES_COLUMNS, SALES_SCHEMA

TABLE_COLUMNS = (*SALES_COLUMNS, PARTITION_KEY)
# Rows of one piece: about 30 MB of Python-free Arrow data, a few hundred MB at most once a
# driver turns it into rows or CSV text.
PIECE_ROWS = 200_000
_IMAGE = [pl.col("after").struct.field(c).alias(c) for c in SALES_COLUMNS if c != "sale_id"]
FEED_COLUMNS = ("op", *TABLE_COLUMNS)


def last_manifest(dataset: Dataset) -> dict:
    """The last commit's manifest, checked whole and of this identity: what every load brings
    the warehouse to (DatasetError when a manifest is missing or does not match)."""
    last = dataset.committed()
    if last is None:
        raise UsageError(f"{dataset.root} has no committed run yet; nothing to load.")
    return last


def committed_paths(dataset: Dataset, last: dict, rels: list[str]) -> list[str]:
    """Paths of committed files, under their temporary names while the commit still owes
    their rename (a crash came between), as ``Dataset.scan`` reads them."""
    owed = dataset.owed(last)
    return [str(owed.get(rel, dataset.root / rel)) for rel in rels]


def file_bytes(dataset: Dataset, manifest: dict, rel: str) -> int:
    info = manifest.get("files", {}).get(rel)
    return info["bytes"] if info else (dataset.root / rel).stat().st_size


def check_files(dataset: Dataset, last: dict, rels: list[str]) -> None:
    """Raise DatasetError naming the first of these files that is not what ``last`` lists.

    What: each file must be listed in the last manifest's ``files``, exist, have its size and
    its sha256. Why: a load records "the warehouse holds run T", so it must not load bytes
    that are not run T's: a file truncated or damaged since the commit, edited by hand, or
    replaced by a writer that commits while the load runs (hold ``Dataset.reading()``, as
    ``fastgen load`` does, to exclude that). Without this a damaged Parquet file often fails
    in DuckDB, but a changed CSV or feed file, or a Parquet page changed in place, can load
    silently wrong rows.

    Cost (``fastgen.dataset.check.mismatches``): hashing reads each file once more, in
    threads: 0.04 s for the 70 MB of a full load of 30 days of 100k rows here (files in the
    OS cache), against 1.3 s for the load itself.
    Files the writer's start already hashed, whose stat signature (inode, size, mtime, ctime)
    is still the one cached in ``.fastgen.checked``, are not hashed again (that load then
    checks in 3 ms): in a daily pipeline that is everything but the last call's files. The
    cache is only read here, never written: it is the writer's, and a loader may run as a
    user that cannot write the dataset. Bit rot that keeps a file's stat is left to
    ``fastgen verify``, as for the writer.
    """
    where = f"the manifest of run {last['run']} ({last['run_date']})"
    wording = {"unlisted": "{rel} is not listed in {where}", "missing": "{rel} is missing",
               "size": "{rel} has {size} bytes, {where} says {expected}",
               "checksum": "{rel} does not match its sha256 in {where}"}
    found = mismatches(dataset, last, rels, load_checked(dataset.root), record=False)
    if found:
        raise _refused(wording[found[0].kind].format(where=where, **vars(found[0])))


def _refused(problem: str) -> DatasetError:
    return DatasetError(f"{problem}; nothing was loaded (run `fastgen verify`).")


def feed_pieces(dataset: Dataset, last: dict, rels: list[str], *, channel: bool = False,
                run: int = 0, applied: list[str] | None = None, commit_ts: bool = False
                ) -> Iterator[pl.DataFrame]:
    """The changes of one run's feed files (listed by its manifest), piece by piece, each
    piece naming a sale at most once, and pieces in an order that applies a sale's events in
    the order of their position (``lsn``).

    Without stress modes a run names a sale once, and its files are read as they come. With
    them a run may change a sale several times: its events are sorted by ``lsn`` and dealt
    into rounds (a sale's first event in round 1, its second in round 2, ...), applied round
    after round, so that each piece stays one set-based statement per op. That holds the
    run's feed in memory at once (a stressed dataset's runs are test-sized). Rows of earlier
    runs at the end of run ``run``'s feed (its tail) are skipped when ``applied`` is None: rows
    delivered again (stress mode ``redelivery_share``) were applied with their own run, a
    position at or before the last one applied. With late events (``late_event_share``) the
    tail also holds events the previous run held back: ``applied`` then names the previous
    run's own files, which the target applied, and a tail row is skipped when its position is
    in them (a consumer remembers the positions of its last batch). A target that reached the
    previous run by a bulk load passes None: the export it loaded had those events already.
    With ``commit_ts`` a piece ends with each event's commit time (a type 2 history closes a
    hard-deleted sale's version there, whichever run delivered it).
    """
    check_files(dataset, last, rels)
    columns = ["op", "sale_id", PARTITION_KEY, "after", *(["commit_ts"] if commit_ts else [])]

    def image(frame: pl.DataFrame) -> pl.DataFrame:  # in the order of the table's columns
        return frame.select("op", "sale_id", *_IMAGE, PARTITION_KEY,
                            *([_channel(frame)] if channel else []),
                            *(["commit_ts"] if commit_ts else []))

    if not dataset.model.stress.on:
        for path in committed_paths(dataset, last, rels):
            for frame in _pieces(dataset, path, columns):
                yield image(frame)
        return
    events = pl.concat([image(frame).with_columns(frame[LSN])
                        for path in committed_paths(dataset, last, rels)
                        for frame in _pieces(dataset, path, [*columns, LSN])])
    fresh = pl.col(LSN) >= run << RUN_SHIFT
    if applied:
        check_files(dataset, last, applied)
        seen = pl.concat([frame for path in committed_paths(dataset, last, applied)
                          for frame in _pieces(dataset, path, [LSN])])[LSN]
        fresh = fresh | ~pl.col(LSN).is_in(seen.implode())
    events = events.filter(fresh).sort(LSN).with_columns(
        pl.int_range(pl.len()).over("sale_id").alias("round"))
    for number in range(events["round"].max() + 1 if events.height else 0):
        round_ = events.filter(pl.col("round") == number).drop(LSN, "round")
        for start in range(0, round_.height, PIECE_ROWS):
            yield round_.slice(start, PIECE_ROWS)


def _channel(frame: pl.DataFrame) -> pl.Expr:
    """The channel of feed rows' after images: null in runs before the source had it."""
    if CHANNEL in frame.schema["after"].to_schema():
        return pl.col("after").struct.field(CHANNEL).alias(CHANNEL)
    return pl.lit(None, pl.String).alias(CHANNEL)


def snapshot_pieces(dataset: Dataset, last: dict) -> Iterator[pl.DataFrame]:
    """Every row of the export after the commit of ``last``, piece by piece, with its day."""
    rels = [rel for truth in last["partitions"].values() for rel in truth["files"]]
    check_files(dataset, last, rels)
    return sales_pieces(dataset, last, rels)


def sales_pieces(dataset: Dataset, last: dict, rels: list[str], *, channel: bool = False
                 ) -> Iterator[pl.DataFrame]:
    """The rows of these committed sales files (checked already), piece by piece, each with
    its file's day from ``last`` (never from its path), and with ``channel``, the column a
    schema change added (null from files written before it)."""
    day_of = {rel: day for day, truth in last["partitions"].items() for rel in truth["files"]}
    for rel, path in zip(rels, committed_paths(dataset, last, rels)):
        day = date.fromisoformat(day_of[rel])
        has = channel and has_channel(dataset, path)
        for frame in _pieces(dataset, path, [*SALES_COLUMNS, *([CHANNEL] if has else [])]):
            frame = frame.with_columns(pl.lit(day).alias(PARTITION_KEY))
            if channel:
                frame = frame.select(*TABLE_COLUMNS, pl.col(CHANNEL) if has
                                     else pl.lit(None, pl.String).alias(CHANNEL))
            yield frame


def has_channel(dataset: Dataset, path: str) -> bool:
    """Whether a sales file was written after the schema change (it has the column channel)."""
    if dataset.format == "parquet":
        return CHANNEL in pq.read_schema(path).names
    return CHANNEL in pl.read_csv(path, n_rows=0).columns


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
