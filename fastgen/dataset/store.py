"""The dataset folder as one object: its identity, its manifests, and what reads and writes it.

The phases live in their own modules (layout, identity, manifest, snapshot, lock, commit,
check, writer); the runs themselves are made by ``fastgen.build``. Readers (``reading``,
``committed``, ``scan``) see one committed run; the writer (``write``) locks, recovers,
checks, makes a batch and commits.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

import polars as pl

from fastgen.config import Model
from fastgen.dataset import check, identity, layout, lock, snapshot, writer
from fastgen.dataset import manifest as manifests
from fastgen.dataset.layout import IDENTITY, MANIFESTS, SALES
from fastgen.errors import DatasetError, LockedError, UsageError
from fastgen.formats import FORMATS
from fastgen.model import Simulation
from fastgen.schema import FEED_PARTITION_KEY, PARTITION_KEY

Wait = Callable[[], None] | None


class Dataset:
    """A fastgen dataset folder. Open an existing one with ``Dataset(root)``, make one with ``create``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self.identity = identity.read(self.root)
        self.model: Model = self.identity.model
        self.start: date = self.identity.start
        self.format: str = self.identity.format
        self.feed: str = self.identity.feed
        self.sim = Simulation(self.model, self.start)
        self._writer = lock.WriterLock(self.root)
        self._made: list[Path] | None = None  # folders ``create`` made, while nothing is committed

    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        return (Path(root) / IDENTITY).exists()

    @classmethod
    def create(cls, root: str | os.PathLike, model: Model, start: date,
               fmt: str = "parquet", feed: str = "full") -> Dataset:
        made = identity.create(Path(root), model, start, fmt, feed)
        ds = cls(root)
        ds._made = made
        return ds

    # ---- names -------------------------------------------------------------------------
    @property
    def ext(self) -> str:
        return FORMATS[self.format].EXTENSION

    @property
    def reader(self) -> Callable[[list[str]], pl.DataFrame]:
        return FORMATS[self.format].read

    def rel(self, path: Path) -> str:
        return str(path.relative_to(self.root))

    def part_path(self, day: int, index: int) -> Path:
        folder = layout.day_folder(self.root, self.sim.date_of(day))
        return folder / layout.part_name(index, self.ext)

    def manifest_path(self, run: int) -> Path:
        return self.root / MANIFESTS / f"{FEED_PARTITION_KEY}={self.sim.date_of(run)}.json"

    # ---- manifests ---------------------------------------------------------------------
    def committed_runs(self) -> list[int]:
        """Runs with a manifest in place (names that are not a manifest's are left to verify)."""
        folder = self.root / MANIFESTS
        if not folder.is_dir():
            return []
        days = (manifests.run_date_of(p) for p in folder.iterdir())
        return sorted(self.sim.index_of(d) for d in days if d is not None and d >= self.start)

    def last_run(self) -> int:
        """The last committed run, or -1 for a dataset with none."""
        runs = self.committed_runs()
        return runs[-1] if runs else -1

    def manifest(self, run: int | None = None) -> dict | None:
        """The manifest of ``run`` (default: the last) as written, checked for shape; None if
        it has none. It holds what that run changed (``snapshot`` resolves the whole state).

        While the last commit still owes renames (a crash came between), its earlier runs'
        manifests are read under their temporary names, as its files are.
        """
        return self._reader()(run)

    def manifests(self, first: int, last: int) -> list[dict]:
        """The manifests of runs ``first .. last`` in order, read with one listing of the
        folder; DatasetError naming the first one missing."""
        read = self._reader()
        out = []
        for run in range(first, last + 1):
            manifest = read(run)
            if manifest is None:
                raise DatasetError(f"the manifest of run {run} ({self.sim.date_of(run)}) is "
                                   f"missing from {self.root}; run `fastgen verify`.")
            out.append(manifest)
        return out

    def _reader(self) -> Callable[[int | None], dict | None]:
        """Reads manifests by run, listing the folder and the owed renames once."""
        runs = self.committed_runs()
        if not runs:
            return lambda run: None
        last = manifests.read(self.manifest_path(runs[-1]))
        owed = self.owed(last)

        def read(run: int | None) -> dict | None:
            if run is None or run == runs[-1]:
                return last
            if run > runs[-1] or run < 0:
                return None
            path = owed.get(self.rel(self.manifest_path(run)), self.manifest_path(run))
            return manifests.read(path) if path.exists() else None

        return read

    def snapshot(self, run: int | None = None) -> dict | None:
        """The state after the commit of ``run`` (default: the last): its manifest with
        ``partitions`` holding every day's truth and ``files`` every current file."""
        read = self._reader()
        last = read(run)
        return None if last is None else self._resolved(read, last)

    @staticmethod
    def _resolved(read: Callable[[int | None], dict | None], last: dict) -> dict:
        return {**last, "partitions": snapshot.truth(read, last),
                "files": snapshot.files(read, last)}

    def owed(self, last: dict | None) -> dict[str, Path]:
        """Committed files whose rename the commit still owes (a crash came between), by final name."""
        return {final: self.root / tmp for tmp, final in (last or {}).get("renames", [])
                if (self.root / tmp).exists()}

    def committed(self) -> dict | None:
        """The last commit's ``snapshot``, once it is known to be whole and of this identity.

        Raises DatasetError when a manifest is missing (fastgen.json records a later run, or
        the last manifest is not a commit point) or the data was made with another identity
        than fastgen.json's (edited, replaced), naming the keys; None when no run is committed.
        """
        read = self._reader()  # one listing and one read of the last manifest for the chain
        last = read(None)
        recorded = self.identity.last_date
        if last is None:
            if recorded is not None:
                raise DatasetError(f"the manifests of {self.root} are missing (fastgen.json "
                                   f"records runs up to {recorded}); run `fastgen verify`.")
            return None
        name = f"{MANIFESTS}/{self.manifest_path(last['run']).name}"
        if recorded is not None and last["run_date"] < recorded.isoformat():
            raise DatasetError(f"the manifest of the last run ({recorded}) is missing from "
                               f"{self.root / MANIFESTS}; run `fastgen verify`.")
        if not manifests.is_commit(last):
            raise DatasetError(f"{name} is not the last commit (the manifest of a later run "
                               "is missing); run `fastgen verify`.")
        differ = identity.differences(last["identity"], self.identity.recorded())
        if differ:
            raise DatasetError(f"{self.root / IDENTITY} does not match the data: "
                               f"{', '.join(differ)} differ(s) from what {name} records; "
                               "restore it.")
        return self._resolved(read, last)

    # ---- reading -----------------------------------------------------------------------
    @contextlib.contextmanager
    def reading(self, on_wait: Wait = None) -> Iterator[Dataset]:
        """Hold the dataset at one committed run while the block reads it (a shared lock)."""
        with lock.reading(self.root, on_wait):
            yield self

    def current_files(self, prefix: str = SALES) -> list[Path]:
        """The committed files of the last run; under their temporary names while renames are owed."""
        last = self.committed()
        if last is None:
            return []
        owed = self.owed(last)
        return [owed.get(p, self.root / p) for p in last["files"] if p.startswith(prefix + "/")]

    def scan(self) -> pl.LazyFrame:
        """The committed sales as one LazyFrame, each file's sale_date from the manifest.

        The frame reads the files when collected: collect it inside ``with ds.reading():``
        to be sure a writer's commit does not replace files in between.
        """
        last = self.committed()
        if last is None:
            raise DatasetError(f"{self.root} has no committed run yet.")
        owed = self.owed(last)
        frames = []
        for day, truth in last["partitions"].items():
            paths = [str(owed.get(p, self.root / p)) for p in truth["files"]]
            frame = (pl.scan_parquet(paths, hive_partitioning=False) if self.format == "parquet"
                     else self.reader(paths).lazy())
            frames.append(frame.with_columns(pl.lit(date.fromisoformat(day)).alias(PARTITION_KEY)))
        # Days written before a schema change have no channel (stress mode): union the schemas.
        return pl.concat(frames, how="diagonal")

    # ---- writing (fastgen.dataset.writer) ----------------------------------------------
    def write(self, days: int, *, executor=None,
              on_recovered: Callable[[list[str]], None] | None = None,
              on_start: Callable[[int], None] | None = None, on_task=None, on_run=None,
              on_wait: Wait = None) -> list:
        """What a writer does: lock, recover, check, make the runs (``writer.write``)."""
        return writer.write(self, days, executor=executor, on_recovered=on_recovered,
                            on_start=on_start, on_task=on_task, on_run=on_run, on_wait=on_wait)

    def generate(self, days: int, **options) -> list:
        """Make ``days`` more runs in one batch and commit them; the caller holds the lock."""
        return writer.generate(self, days, **options)

    def recover(self, on_wait: Wait = None, *, discard: bool = True) -> list[str]:
        """Finish a committed batch's renames and (``discard``) drop the files of an unfinished
        one; say what was done."""
        return writer.recover(self, on_wait, discard=discard)

    def check_committed_files(self) -> None:
        """Before writing: manifests complete and unedited, committed files unchanged."""
        writer.check_committed_files(self)

    def lock(self) -> None:
        """Become the one writer of this folder, or fail at once naming the holder's pid."""
        self._writer.acquire()
        # fastgen.json was read before the lock: two first writers on one empty folder may both
        # have created it. Go on only if it is still the identity this object was opened with.
        try:
            on_disk = identity.read(self.root)
        except UsageError:
            on_disk = None
        if on_disk is None or on_disk.recorded() != self.identity.recorded():
            self.unlock()
            raise LockedError(f"{self.root / IDENTITY} changed while this fastgen was starting "
                              "(another one created the dataset); run again.")
        self.identity = on_disk

    def unlock(self) -> None:
        self._writer.release()


    # ---- verification ------------------------------------------------------------------
    def verify(self) -> list[str]:
        """Everything that does not match the manifests, by file and partition; empty when all is well."""
        return check.verify(self)
