"""The on-disk dataset: layout, identity, manifests, commit protocol, lock, recovery, verify.

Layout (DESIGN.md section 4)::

    fastgen.json                                   identity: format version, seed, options
    sales/sale_date=YYYY-MM-DD/part-00000.parquet  current state of that day
    changes/run_date=YYYY-MM-DD/part-00000.parquet everything that run changed
    manifests/run_date=YYYY-MM-DD.json             ground truth of that run

Commit protocol. A call of ``generate`` makes one *batch* of runs T0+1..T. Every file is first
written under a hidden temporary name (``.name.tmp-T``, which Polars, DuckDB, pyarrow and
Spark globs skip) and flushed; manifests of the batch's earlier runs likewise; then the
manifest of run T is written and renamed into place: that rename is the commit point. It lists
every rename the batch still owes, which are then done (``os.replace``, so a reader that globs
``sales/`` sees one file per part at every moment). On start, leftovers of a batch whose
commit manifest exists are rolled forward; any other temporary file is removed, and the runs
are simply made again, since every byte is a function of the seed.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

import numpy as np
import polars as pl

from fastgen.config import Model
from fastgen.digest import Digest, digest, digest_arrays
from fastgen.faults import fault
from fastgen.formats import FORMATS, Written, file_checksum, write_file
from fastgen.formats import feed as feed_format
from fastgen.kernels import changes as ck
from fastgen.model import Part, Simulation
from fastgen.schema import FEED_PARTITION_KEY, PARTITION_KEY, SALES_SCHEMA

FORMAT_VERSION = 1
IDENTITY = "fastgen.json"
LOCK = ".fastgen.lock"
# Stat signatures of files whose checksum a start has checked; only a cache (see check_committed_files).
CHECKED = ".fastgen.checked"
SALES, CHANGES, MANIFESTS = "sales", "changes", "manifests"
# Part states kept in memory between the runs of a batch; evicted parts are recomputed.
DEFAULT_CACHE_BYTES = 2 << 30


class DatasetError(Exception):
    """Something about the dataset folder stops the work; the message is one sentence."""

    exit_code = 1


class UsageError(DatasetError):
    """The user asked for something impossible; nothing was written."""

    exit_code = 2


class LockedError(DatasetError):
    exit_code = 1


@dataclass
class RunSummary:
    run: int
    run_date: date
    counts: dict[str, int]
    seconds: float
    bytes: int


@dataclass
class _Batch:
    """Temporary files of a batch and the renames its commit owes."""

    tag: str
    renames: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)


def _tmp_name(final: Path, tag: str) -> Path:
    return final.with_name(f".{final.name}.tmp-{tag}")


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Keys a manifest's checksum leaves out: they depend on how runs were grouped into batches, so
# a run has one checksum whether made alone or in a backfill; "files" is checked against the files.
_BATCH_KEYS = ("files", "renames", "bytes_written", "checksum")


def _manifest_checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k not in _BATCH_KEYS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def _signature(path: Path, expect: str) -> list:
    """What changes when a file is written, replaced or touched: inode, size, mtime and ctime."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, expect]


def _write_json(path: Path, data: dict) -> None:
    with open(path, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())


class Dataset:
    """A fastgen dataset folder. Open an existing one with ``Dataset(root)``, make one with ``create``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        path = self.root / IDENTITY
        try:
            identity = json.loads(path.read_text())
        except FileNotFoundError:
            raise UsageError(f"{self.root} holds no fastgen dataset (no {IDENTITY}).") from None
        except (OSError, ValueError):
            raise UsageError(f"{path} is not a fastgen dataset identity file.") from None
        if not isinstance(identity, dict) or identity.get("generator") != "fastgen":
            raise UsageError(f"{path} is not a fastgen dataset identity file.")
        version = identity.get("format_version")
        if not isinstance(version, int) or version > FORMAT_VERSION:
            raise UsageError(f"{path} has format version {version}, newer than this fastgen "
                             f"understands ({FORMAT_VERSION}); upgrade fastgen.")
        try:
            self.model = Model.from_json(identity["model"])
            self.start = date.fromisoformat(identity["start_date"])
            self.format = identity["format"]
            if self.format not in FORMATS:
                raise ValueError(self.format)
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{path} is damaged: {exc}.") from None
        self.identity = identity
        self.sim = Simulation(self.model, self.start)
        self._lock_fd: int | None = None

    # ---- creation and identity -----------------------------------------------------------
    @staticmethod
    def exists(root: str | os.PathLike) -> bool:
        return (Path(root) / IDENTITY).exists()

    @classmethod
    def create(cls, root: str | os.PathLike, model: Model, start: date,
               fmt: str = "parquet") -> Dataset:
        root = Path(root)
        model.validate()
        if fmt not in FORMATS:
            raise UsageError(f"--format must be one of {', '.join(FORMATS)}.")
        check_writable(root)
        root.mkdir(parents=True, exist_ok=True)
        identity = {"generator": "fastgen", "format_version": FORMAT_VERSION,
                    "start_date": start.isoformat(), "format": fmt, "last_date": None,
                    "model": model.to_json()}
        tmp = root / f".{IDENTITY}.tmp"
        _write_json(tmp, identity)
        os.replace(tmp, root / IDENTITY)
        _fsync_dir(root)
        return cls(root)

    @property
    def ext(self) -> str:
        return FORMATS[self.format].EXTENSION

    # ---- manifests ---------------------------------------------------------------------
    def manifest_path(self, run: int) -> Path:
        return self.root / MANIFESTS / f"{FEED_PARTITION_KEY}={self.sim.date_of(run)}.json"

    def committed_runs(self) -> list[int]:
        folder = self.root / MANIFESTS
        if not folder.is_dir():
            return []
        runs = []
        prefix = f"{FEED_PARTITION_KEY}="
        for p in folder.iterdir():
            if p.name.startswith(prefix) and p.name.endswith(".json"):
                runs.append(self.sim.index_of(date.fromisoformat(p.name[len(prefix):-5])))
        return sorted(runs)

    def last_run(self) -> int:
        """The last committed run, or -1 for a dataset with none."""
        runs = self.committed_runs()
        return runs[-1] if runs else -1

    def manifest(self, run: int | None = None) -> dict | None:
        run = self.last_run() if run is None else run
        if run < 0:
            return None
        path = self.manifest_path(run)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except ValueError:
            raise DatasetError(f"manifest {path} is not valid JSON; run `fastgen verify`.") from None

    # ---- lock --------------------------------------------------------------------------
    def lock(self) -> None:
        """Become the one writer of this folder, or fail at once naming the holder's pid."""
        fd = os.open(self.root / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise LockedError(f"{self.root} is being written by another fastgen "
                              f"(pid {holder}); wait for it or stop it.") from None
        # The kernel drops an flock when its holder dies, so a stale lock is simply taken over.
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        # fastgen.json was read before the lock: two first writers on one empty folder may both
        # have created it. Go on only if it is still the identity this object was opened with.
        try:
            on_disk = json.loads((self.root / IDENTITY).read_text())
        except (OSError, ValueError):
            on_disk = None
        mine = {k: v for k, v in self.identity.items() if k != "last_date"}
        if not isinstance(on_disk, dict) or {k: v for k, v in on_disk.items()
                                             if k != "last_date"} != mine:
            self.unlock()
            raise LockedError(f"{self.root / IDENTITY} changed while this fastgen was starting "
                              "(another one created the dataset); run again.")
        self.identity["last_date"] = on_disk.get("last_date")

    def unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    # ---- recovery ----------------------------------------------------------------------
    def recover(self) -> list[str]:
        """Finish a committed batch's renames and drop any other temporary file; say what was done."""
        done: list[str] = []
        last = self.manifest()
        owed = {(self.root / a, self.root / b) for a, b in (last or {}).get("renames", [])}
        renamed = 0
        for tmp, final in sorted(owed):
            if tmp.exists():
                os.replace(tmp, final)
                renamed += 1
                fault("recover")
        if renamed:
            # Durable before a later commit can rely on them (POSIX orders no two directories).
            for parent in {final.parent for _, final in owed}:
                _fsync_dir(parent)
            done.append(f"finished committing run {last['run_date']} ({renamed} file(s) renamed into place)")
        removed = 0
        for folder in (SALES, CHANGES, MANIFESTS):
            base = self.root / folder
            if not base.is_dir():
                continue
            for path in sorted(base.rglob(".*.tmp-*")):
                path.unlink()
                removed += 1
            for sub in sorted(base.iterdir()):
                if sub.is_dir() and not any(sub.iterdir()):
                    sub.rmdir()
        if removed:
            done.append(f"removed {removed} file(s) of an unfinished run, which will be made again")
        fault("recovered")
        # Only forward: a last_date past the last manifest is how a deleted manifest shows.
        if last is not None and (self.identity.get("last_date") or "") < last["run_date"]:
            self._set_last_date(last["run_date"])
        return done

    def _set_last_date(self, value: str) -> None:
        self.identity["last_date"] = value
        tmp = self.root / f".{IDENTITY}.tmp"
        _write_json(tmp, self.identity)
        os.replace(tmp, self.root / IDENTITY)

    def check_committed_files(self) -> None:
        """Before writing: manifests complete and unedited, committed files unchanged, nothing foreign.

        Checksums are recomputed only for files whose stat signature changed since a start last
        checked them (cached in .fastgen.checked), so a start hashes about what the previous run
        wrote, not the whole history: hashing all of 10 days of 1M rows (437 MB) takes 0.36 s
        here, and grows with history. Silent bit rot that keeps the signature is left to verify.
        """
        checked = self._load_checked()
        problems = self.manifest_problems(checked=checked)
        if not problems:
            problems = self.file_problems(checksums=True, checked=checked)
        if not problems:
            self._save_checked(checked)
        if problems:
            raise DatasetError(f"the dataset is corrupt ({problems[0]}"
                               f"{'' if len(problems) == 1 else f', and {len(problems) - 1} more'}); "
                               "run `fastgen verify` and repair or remove it; nothing was written.")

    def _load_checked(self) -> dict:
        try:
            checked = json.loads((self.root / CHECKED).read_text())
        except (OSError, ValueError):
            return {}
        return checked if isinstance(checked, dict) else {}

    def _save_checked(self, checked: dict) -> None:
        tmp = self.root / f"{CHECKED}.tmp"
        with contextlib.suppress(OSError):  # a cache: losing it only costs hashing again
            tmp.write_text(json.dumps(checked, sort_keys=True))
            os.replace(tmp, self.root / CHECKED)

    # ---- generation --------------------------------------------------------------------
    def write(self, days: int, *, on_recovered: Callable[[list[str]], None] | None = None,
              on_run: Callable[[RunSummary], None] | None = None,
              on_write: Callable[[int, int], None] | None = None) -> list[RunSummary]:
        """What a writer does: take the lock, recover, check the committed files, make the runs."""
        self.lock()
        try:
            recovered = self.recover()
            if recovered and on_recovered:
                on_recovered(recovered)
            self.check_committed_files()
            return self.generate(days, on_run=on_run, on_write=on_write)
        finally:
            self.unlock()

    def generate(self, days: int, *, cache_bytes: int = DEFAULT_CACHE_BYTES,
                 on_run: Callable[[RunSummary], None] | None = None,
                 on_write: Callable[[int, int], None] | None = None) -> list[RunSummary]:
        """Make ``days`` more runs in one batch and commit them; the caller holds the lock.

        A run that fails (a full disk, say) leaves the last committed state: its temporary files
        are removed at once rather than at the next start, since a full disk needs the space.
        """
        try:
            return self._generate(days, cache_bytes=cache_bytes, on_run=on_run, on_write=on_write)
        except BaseException:
            with contextlib.suppress(Exception):
                self.recover()
            raise

    def _generate(self, days: int, *, cache_bytes: int,
                  on_run: Callable[[RunSummary], None] | None,
                  on_write: Callable[[int, int], None] | None) -> list[RunSummary]:
        if days < 1:
            raise UsageError("--days must be at least 1.")
        first = self.last_run() + 1
        last = first + days - 1
        batch = _Batch(tag=str(last))
        previous = self.manifest(first - 1)
        partitions = dict(previous["partitions"]) if previous else {}
        files = dict(previous["files"]) if previous else {}
        cache = _PartCache(self.sim, cache_bytes,
                           lambda day, index: self._committed_part(previous, day, index))
        summaries: list[RunSummary] = []
        touched_in_batch: set[int] = set()
        manifests: list[dict] = []
        for run in range(first, last + 1):
            t0 = time.perf_counter()
            summary, manifest = self._make_run(run, cache, partitions, batch,
                                               write_now=run == last)
            touched_in_batch.update(int(d) for d in self.sim.touched(run))
            manifests.append(manifest)
            summary.seconds = time.perf_counter() - t0
            summaries.append(summary)
            if on_run:
                on_run(summary)
            fault("run")
        # Each touched day is written once, in its state after the batch's last run; the last
        # run wrote its own days already, without holding them in memory.
        remaining = sorted(touched_in_batch - set(self.sim.touched(last).tolist()))
        for n, day in enumerate(remaining):
            self._write_partition(day, last, cache, batch)
            fault("partition")
            if on_write:
                on_write(n + 1, len(remaining))
        files.update(batch.files)
        self._commit(manifests, partitions, files, batch)
        return summaries

    def _make_run(self, run: int, cache: _PartCache, partitions: dict, batch: _Batch,
                  write_now: bool) -> tuple[RunSummary, dict]:
        """Make one run: its feed, and the ground truth of every day it touches.

        With ``write_now`` (the batch's last run) each touched part is written as soon as it
        is made, so memory holds one part at a time; else parts stay in the cache.
        """
        sim = self.sim
        commit_ts = datetime.combine(sim.date_of(run) + timedelta(days=1), datetime.min.time())
        feed = _FeedFiles(self, run, batch)
        counts = {"inserts": sim.rows, "late_rows": int(sim.late(run)[0].size),
                  "updates": 0, "soft_deletes": 0, "hard_deletes": 0}
        touched = [int(d) for d in sim.touched(run)]
        chosen = set(int(d) for d in sim.chosen_days(run))
        for day in touched:
            # A new day is digested whole; an earlier one follows its changes: its digest after
            # the previous run, plus the late rows it gains, minus each changed row's before
            # image, plus its after image (gone for a hard delete). O(changes), not O(rows).
            before = partitions.get(sim.date_of(day).isoformat()) if day < run else None
            digests, signs = ([Digest.from_json(before)], [1]) if before else ([], [])
            for index in range(sim.parts()):
                part = cache.get(day, index, run - 1) if day < run else sim.new_part(day, index)
                held = part.slots.size
                captured = sim.advance(part, run, capture=day in chosen).get(run)
                if captured is not None and captured.kinds.size:
                    feed.add(feed_format.changes(run, commit_ts, sim.date_of(day), captured.kinds,
                                                 captured.before, captured.after))
                    for name, kind in (("updates", ck.UPDATE), ("soft_deletes", ck.SOFT_DELETE),
                                       ("hard_deletes", ck.HARD_DELETE)):
                        counts[name] += int((captured.kinds == kind).sum())
                if not before:
                    digests.append(digest_arrays([part.columns], [part.alive]))
                    signs.append(1)
                else:
                    digests.append(digest_arrays([{k: v[held:] for k, v in part.columns.items()}]))
                    signs.append(1)
                    if captured is not None and captured.kinds.size:
                        digests += [digest_arrays([captured.before]),
                                    digest_arrays([captured.after],
                                                  [captured.kinds != ck.HARD_DELETE])]
                        signs += [-1, 1]
                if write_now:
                    self._write_temp(part.frame(), self._part_path(day, index), batch)
                else:
                    cache.put(part)
            if write_now:
                fault("partition")
            truth = Digest.combine(digests, signs).to_json()
            truth["last_run"] = run
            truth["files"] = [str(self._part_path(day, k).relative_to(self.root))
                              for k in range(sim.parts())]
            partitions[sim.date_of(day).isoformat()] = truth
        # Inserts go to the feed a file's worth of rows at a time, so memory stays bounded.
        for lo in range(0, sim.rows, self.model.rows_per_file):
            rows, landing = sim.inserts(run, lo, min(lo + self.model.rows_per_file, sim.rows))
            days = np.unique(landing)
            dates = np.array([np.datetime64(sim.date_of(int(d)), "D") for d in days])
            feed.add(feed_format.inserts(run, commit_ts, rows, dates[np.searchsorted(days, landing)]))
        feed.flush()
        fault("feed")
        counts["partitions_rewritten"] = len(touched)
        counts["feed_rows"] = feed.rows
        manifest = {
            "format_version": FORMAT_VERSION, "run": run, "run_date": sim.date_of(run).isoformat(),
            "commit_ts": commit_ts.isoformat(), "counts": counts,
            "touched": [sim.date_of(d).isoformat() for d in touched],
            "feed": feed.paths,
            "partitions": dict(sorted(partitions.items())),
        }
        return RunSummary(run, sim.date_of(run), counts, 0.0, feed.bytes), manifest

    def _committed_part(self, manifest: dict | None, day: int, index: int) -> Part | None:
        """Part ``index`` of ``day`` read back from the last commit, or None if it has none.

        Reading a day's file (checked against its checksum at start) costs O(rows); replaying
        its history from the keys costs O(changes it has seen), several times more for days a
        month old. Both give the same arrays; the tests pin daily runs to backfills byte for byte.
        """
        truth = manifest and manifest["partitions"].get(self.sim.date_of(day).isoformat())
        if not truth:
            return None
        path = self._part_path(day, index)
        frame = FORMATS[self.format].read([str(path)])
        return self.sim.part_from_frame(day, index, manifest["run"], frame)

    def _part_path(self, day: int, index: int) -> Path:
        return (self.root / SALES / f"{PARTITION_KEY}={self.sim.date_of(day)}"
                / f"part-{index:05d}{self.ext}")

    def _write_temp(self, frame: pl.DataFrame, final: Path, batch: _Batch) -> Written:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(final, batch.tag)
        written = write_file(frame, tmp, self.format)
        batch.renames.append((str(tmp.relative_to(self.root)), str(final.relative_to(self.root))))
        batch.files[str(final.relative_to(self.root))] = {"bytes": written.bytes,
                                                          "sha256": written.sha256}
        return written

    def _write_partition(self, day: int, run: int, cache: _PartCache, batch: _Batch) -> None:
        for index in range(self.sim.parts()):
            part = cache.get(day, index, run)  # taken out of the cache, so freed once written
            self._write_temp(part.frame(), self._part_path(day, index), batch)

    def _commit(self, manifests: list[dict], partitions: dict, files: dict, batch: _Batch) -> None:
        folder = self.root / MANIFESTS
        folder.mkdir(exist_ok=True)
        for manifest in manifests[:-1]:
            final = self.manifest_path(manifest["run"])
            tmp = _tmp_name(final, batch.tag)
            manifest["checksum"] = _manifest_checksum(manifest)
            _write_json(tmp, manifest)
            batch.renames.append((str(tmp.relative_to(self.root)), str(final.relative_to(self.root))))
            fault("manifest")
        for parent in {(self.root / a).parent for a, _ in batch.renames}:
            _fsync_dir(parent)
        last = manifests[-1]
        last["files"] = dict(sorted(files.items()))
        last["renames"] = batch.renames
        last["bytes_written"] = sum(batch.files[p]["bytes"] for p in batch.files)
        last["checksum"] = _manifest_checksum(last)
        final = self.manifest_path(last["run"])
        tmp = _tmp_name(final, batch.tag)
        _write_json(tmp, last)
        fault("commit")
        os.replace(tmp, final)  # the commit point
        fault("committed")
        _fsync_dir(folder)
        self.recover()

    # ---- reading -----------------------------------------------------------------------
    def _owed(self, last: dict | None) -> dict[str, Path]:
        """Committed files whose rename the commit still owes (a crash came between), by final name."""
        return {final: self.root / tmp for tmp, final in (last or {}).get("renames", [])
                if (self.root / tmp).exists()}

    def current_files(self, prefix: str = SALES) -> list[Path]:
        """The committed files of the last run; under their temporary names while renames are owed."""
        last = self.manifest()
        if last is None:
            return []
        owed = self._owed(last)
        return [owed.get(p, self.root / p) for p in last["files"] if p.startswith(prefix + "/")]

    def scan(self) -> pl.LazyFrame:
        """The committed sales as one LazyFrame, with sale_date from the hive folders."""
        paths = [str(p) for p in self.current_files(SALES)]
        if not paths:
            raise DatasetError(f"{self.root} has no committed run yet.")
        if self.format == "parquet":
            return pl.scan_parquet(paths, hive_partitioning=True)
        return pl.concat([
            FORMATS["csv"].read([p]).lazy().with_columns(
                pl.lit(date.fromisoformat(Path(p).parent.name.split("=", 1)[1])).alias(PARTITION_KEY))
            for p in paths])

    # ---- verification ------------------------------------------------------------------
    def file_problems(self, *, checksums: bool, checked: dict | None = None) -> list[str]:
        """Files that are missing, of the wrong size or checksum, or foreign to the dataset.

        ``checked`` maps files to the stat signature at which they last matched their checksum;
        those are not hashed again, and the ones hashed now are added to it.
        """
        last = self.manifest() or {}
        problems = []
        listed = last.get("files", {})
        owed = self._owed(last)
        for rel, info in listed.items():
            path = owed.get(rel, self.root / rel)
            if not path.exists():
                problems.append(f"{rel} is missing")
            elif path.stat().st_size != info["bytes"]:
                problems.append(f"{rel} has {path.stat().st_size} bytes, the manifest says {info['bytes']}")
            elif checksums:
                signature = _signature(path, info["sha256"])
                if checked is not None and checked.get(rel) == signature:
                    continue
                if file_checksum(path) != info["sha256"]:
                    problems.append(f"{rel} does not match its checksum")
                elif checked is not None:
                    checked[rel] = signature
        for folder in (SALES, CHANGES):
            base = self.root / folder
            if base.is_dir():
                for path in sorted(base.rglob("*")):
                    rel = str(path.relative_to(self.root))
                    temporary = path.name.startswith(".") and ".tmp-" in path.name
                    if path.is_file() and rel not in listed and not temporary:
                        problems.append(f"{rel} is not part of the dataset")
        return problems

    def manifest_problems(self, *, checked: dict | None = None) -> list[str]:
        """Manifests missing (a gap, or short of fastgen.json's last date), unreadable or edited.

        ``checked`` works as in ``file_problems``.
        """
        runs = self.committed_runs()
        last = self.manifest_path(runs[-1]) if runs else None
        try:
            owed = self._owed(json.loads(last.read_text())) if last else {}
        except (ValueError, AttributeError):  # named below
            owed = {}
        recorded = self.identity.get("last_date")
        end = max(runs[-1] + 1 if runs else 0,
                  self.sim.index_of(date.fromisoformat(recorded)) + 1 if recorded else 0)
        problems = []
        for run in range(end):
            rel = str(self.manifest_path(run).relative_to(self.root))
            path = owed.get(rel, self.root / rel)
            if not path.exists():
                problems.append(f"{rel} is missing")
                continue
            signature = _signature(path, "manifest")
            if checked is not None and checked.get(rel) == signature:
                continue
            try:
                manifest = json.loads(path.read_text())
                whole = isinstance(manifest, dict) and manifest.get("checksum") == _manifest_checksum(manifest)
            except ValueError:
                whole = False
            if not whole:
                problems.append(f"{rel} was edited or damaged: its checksum does not match")
            elif checked is not None:
                checked[rel] = signature
        return problems

    def verify(self) -> list[str]:
        """Everything that does not match the manifests, by file and partition; empty when all is well."""
        problems = self.manifest_problems()
        try:
            last = self.manifest()
        except DatasetError:  # not valid JSON: already named above
            return problems
        problems += self.file_problems(checksums=True)
        if last is None:
            return problems
        reader = FORMATS[self.format].read
        owed = self._owed(last)
        for day, truth in last["partitions"].items():
            paths = [owed.get(p, self.root / p) for p in truth["files"]]
            if not all(p.exists() for p in paths):
                problems.append(f"partition {day}: files missing")
                continue
            try:
                actual = digest(reader([str(p) for p in paths])).to_json()
            except Exception as exc:  # a damaged file can fail in many ways; name it
                problems.append(f"partition {day}: cannot be read ({type(exc).__name__})")
                continue
            for key in ("rows", "live_rows", "amount", "row_hash"):
                if actual[key] != truth[key]:
                    problems.append(f"partition {day}: {key} is {actual[key]}, the manifest says {truth[key]}")
        return problems


class _FeedFiles:
    """A run's feed, cut into files of about ``rows_per_file`` rows as pieces arrive.

    Pieces and their sizes are a function of the seed, so the cut is too.
    """

    def __init__(self, dataset: Dataset, run: int, batch: _Batch):
        self.dataset, self.batch = dataset, batch
        self.folder = dataset.root / CHANGES / f"{FEED_PARTITION_KEY}={dataset.sim.date_of(run)}"
        self.pieces: list[pl.DataFrame] = []
        self.pending = self.rows = self.bytes = 0
        self.paths: list[str] = []

    def add(self, piece: pl.DataFrame) -> None:
        self.pieces.append(piece)
        self.pending += piece.height
        if self.pending >= self.dataset.model.rows_per_file:
            self.flush()

    def flush(self) -> None:
        if not self.pieces and self.paths:
            return
        frame = pl.concat(self.pieces) if self.pieces else feed_format.inserts(
            0, datetime(1970, 1, 1), pl.DataFrame(schema=SALES_SCHEMA), np.empty(0, "M8[D]"))
        path = self.folder / f"part-{len(self.paths):05d}{self.dataset.ext}"
        written = self.dataset._write_temp(frame, path, self.batch)
        self.paths.append(str(path.relative_to(self.dataset.root)))
        self.rows += frame.height
        self.bytes += written.bytes
        self.pieces, self.pending = [], 0


class _PartCache:
    """Part states of recent days within a memory budget; the oldest days are evicted first."""

    def __init__(self, sim: Simulation, budget: int,
                 committed: Callable[[int, int], Part | None] = lambda day, index: None):
        self.sim = sim
        self.budget = budget
        self.committed = committed
        self.parts: dict[tuple[int, int], Part] = {}
        self.size = 0

    def get(self, day: int, index: int, run: int) -> Part:
        """The part after ``run``: from memory, else from its committed file, else from the keys."""
        part = self._pop((day, index))
        if part is None or part.run > run:
            part = self.committed(day, index)
        if part is None or part.run > run:
            part = self.sim.new_part(day, index)
        self.sim.advance(part, run)
        return part

    def put(self, part: Part) -> None:
        self._pop((part.day, part.index))
        self.parts[(part.day, part.index)] = part
        self.size += _nbytes(part)
        if self.size > self.budget:
            for key in sorted(self.parts):
                if self.size <= self.budget:
                    break
                self._pop(key)

    def _pop(self, key: tuple[int, int]) -> Part | None:
        part = self.parts.pop(key, None)
        if part is not None:
            self.size -= _nbytes(part)
        return part


def _nbytes(part: Part) -> int:
    return part.slots.nbytes + part.alive.nbytes + sum(c.nbytes for c in part.columns.values())


def check_writable(root: Path) -> None:
    """Refuse, with one sentence, a --data that is a file or cannot be written."""
    if root.exists() and not root.is_dir():
        raise UsageError(f"--data {root} is a file, not a folder.")
    probe = root
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise UsageError(f"--data {root} cannot be written.")
