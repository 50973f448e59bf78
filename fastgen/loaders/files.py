"""What a load reads from the dataset: the last commit's files, checked, with their days.

Loads read the files the last manifest lists, never a glob; while a crashed commit still owes
a file's rename, they read it under its temporary name, as ``Dataset.scan`` does.

A sales file's day (``sale_date``) is taken from the manifest (``partitions[day]["files"]``),
never parsed from its path: DuckDB's hive parsing takes the *first* ``sale_date=`` of a path,
so a dataset under a folder such as ``/x/sale_date=1999-01-01/ds`` gave every row that date.
The files are read with ``hive_partitioning = false`` and each row gets its file's day from a
list indexed by DuckDB's ``file_index`` (the file's position in the list read): one statement
for every file, as fast as the hive read it replaces.
"""

from __future__ import annotations


import polars as pl

from fastgen.dataset import Dataset, DatasetError, UsageError
from fastgen.dataset.check import load_checked, mismatches
from fastgen.loaders.tables import sql_type
from fastgen.schema import FEED_SCHEMA, PARTITION_KEY, SALES_SCHEMA


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


def sales_select(dataset: Dataset, last: dict, rels: list[str]) -> tuple[str, dict]:
    """SELECT of the ``sales`` columns of these committed sales files, with each file's day
    from the manifest, and its parameters."""
    day_of = {rel: day for day, part in last["partitions"].items() for rel in part["files"]}
    columns = ", ".join(SALES_SCHEMA)
    if dataset.format == "parquet":
        source = "read_parquet($paths, hive_partitioning = false)"
    else:
        types = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in SALES_SCHEMA.items())
        source = (f"read_csv($paths, header = true, columns = {{{types}}}, "
                  "hive_partitioning = false)")
    sql = (f"SELECT {columns}, ($days::DATE[])[file_index::BIGINT + 1] AS {PARTITION_KEY} "
           f"FROM {source}")
    return sql, {"paths": committed_paths(dataset, last, rels),
                 "days": [day_of[rel] for rel in rels]}


def feed_select(dataset: Dataset) -> str:
    """SELECT of one run's feed files (parameter ``?``) as op, sale_date and the after-image
    columns. Feeds carry ``sale_date`` as a column, so they are read without hive parsing."""
    if dataset.format == "parquet":
        images = ", ".join(f"after.{c} AS {c}" for c in SALES_SCHEMA if c != "sale_id")
        return (f"SELECT op, sale_id, {PARTITION_KEY}, {images} "
                "FROM read_parquet(?, hive_partitioning = false)")
    flat = {n: t for n, t in FEED_SCHEMA.items() if not isinstance(t, pl.Struct)}
    for side in ("before", "after"):
        flat |= {f"{side}.{c}": t for c, t in SALES_SCHEMA.items()}
    columns = ", ".join(f"'{n}': '{sql_type(t)}'" for n, t in flat.items())
    images = ", ".join(f'"after.{c}" AS {c}' for c in SALES_SCHEMA if c != "sale_id")
    return (f"SELECT op, sale_id, {PARTITION_KEY}, {images} FROM read_csv(?, header = true, "
            f"columns = {{{columns}}}, hive_partitioning = false)")
