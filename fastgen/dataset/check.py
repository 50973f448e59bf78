"""Checks of a dataset against its manifests: before a writer writes, and ``fastgen verify``.

All functions return problems as sentences (empty when all is well), so that ``verify`` can
name every one and a writer can refuse with the first.
"""

from __future__ import annotations

import contextlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from fastgen import delivered
from fastgen.dataset import manifest as manifests
from fastgen.dataset.identity import differences
from fastgen.dataset.layout import CHANGES, CHECKED, HELD, MANIFESTS, SALES, is_temporary
from fastgen.digest import digest
from fastgen.errors import DatasetError
from fastgen.formats import file_checksum

if TYPE_CHECKING:
    from fastgen.dataset.store import Dataset


def signature(path: Path, expect: str) -> list:
    """What changes when a file is written, replaced or touched: inode, size, mtime and ctime."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns, expect]


def load_checked(root: Path) -> dict:
    """Stat signatures of files whose checksum a writer's start has checked (a cache)."""
    try:
        checked = json.loads((root / CHECKED).read_text())
    except (OSError, ValueError):
        return {}
    return checked if isinstance(checked, dict) else {}


def save_checked(root: Path, checked: dict) -> None:
    tmp = root / f"{CHECKED}.tmp"
    with contextlib.suppress(OSError):  # a cache: losing it only costs hashing again
        tmp.write_text(json.dumps(checked, sort_keys=True))
        os.replace(tmp, root / CHECKED)


@dataclass(frozen=True)
class Mismatch:
    """A committed file that is not what its manifest lists."""

    rel: str
    kind: str  # "unlisted", "missing", "size" or "checksum"
    size: int = 0  # its size on disk, for "size"
    expected: int = 0  # the size the manifest lists, for "size"


def mismatches(ds: Dataset, last: dict | None, rels: list[str], checked: dict,
               *, record: bool) -> list[Mismatch]:
    """Each of these committed files (under its temporary name while a crashed commit still
    owes its rename) that is unlisted in ``last``, missing, of another size or checksum.

    ``checked`` maps files to the stat signature at which they last matched their checksum:
    those are not hashed again; with ``record``, the files that match now are added to it
    (the writer's cache; readers pass it read-only). hashlib releases the GIL on large
    buffers, so files are hashed in threads; a failure or Ctrl-C cancels the queued ones.
    """
    listed = (last or {}).get("files", {})
    owed = ds.owed(last)
    found: dict[int, Mismatch] = {}
    todo = []
    for n, rel in enumerate(rels):
        info, path = listed.get(rel), owed.get(rel, ds.root / rel)
        if info is None:
            found[n] = Mismatch(rel, "unlisted")
            continue
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            found[n] = Mismatch(rel, "missing")
            continue
        if size != info["bytes"]:
            found[n] = Mismatch(rel, "size", size, info["bytes"])
            continue
        sig = signature(path, info["sha256"])
        if checked.get(rel) != sig:
            todo.append((n, rel, path, info["sha256"], sig))
    if todo:
        pool = ThreadPoolExecutor(min(len(todo), os.cpu_count() or 1))
        try:
            for (n, rel, _, expected, sig), actual in zip(
                    todo, pool.map(lambda item: file_checksum(item[2]), todo)):
                if actual != expected:
                    found[n] = Mismatch(rel, "checksum")
                elif record:
                    checked[rel] = sig
        finally:
            pool.shutdown(cancel_futures=True)
    return [found[n] for n in sorted(found)]


def file_problems(ds: Dataset, last: dict | None, *, checked: dict | None = None) -> list[str]:
    """Files that are missing, of the wrong size or checksum, or foreign to the dataset.

    ``checked`` works as in ``mismatches``: files whose signature it holds are not hashed
    again, and the ones that match now are added to it.
    """
    listed = (last or {}).get("files", {})
    wording = {"missing": "{rel} is missing",
               "size": "{rel} has {size} bytes, the manifest says {expected}",
               "checksum": "{rel} does not match its checksum"}
    problems = [wording[m.kind].format(**vars(m)) for m in
                mismatches(ds, last, list(listed), {} if checked is None else checked,
                           record=checked is not None)]
    for folder in (SALES, CHANGES, HELD):
        base = ds.root / folder
        if base.is_dir():
            for path in sorted(base.rglob("*")):
                rel = str(path.relative_to(ds.root))
                if path.is_file() and rel not in listed and not is_temporary(path):
                    problems.append(f"{rel} is not part of the dataset")
    return problems


def manifest_problems(ds: Dataset, *, checked: dict | None = None) -> list[str]:
    """Manifests missing (a gap, or short of fastgen.json's last date), unreadable, edited,
    of another identity than fastgen.json's, or files in manifests/ that are not manifests.

    ``checked`` works as in ``file_problems``.
    """
    problems = []
    folder = ds.root / MANIFESTS
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if not is_temporary(path) and manifests.run_date_of(path) is None:
                problems.append(f"{MANIFESTS}/{path.name} is not a manifest's name")
    runs = ds.committed_runs()
    try:
        owed = ds.owed(ds.manifest(runs[-1])) if runs else {}
    except DatasetError:  # named below
        owed = {}
    recorded = ds.identity.last_date
    end = max(runs[-1] + 1 if runs else 0,
              ds.sim.index_of(recorded) + 1 if recorded else 0)
    current = ds.identity.recorded()
    for run in range(end):
        rel = ds.rel(ds.manifest_path(run))
        path = owed.get(rel, ds.root / rel)
        if not path.exists():
            problems.append(f"{rel} is missing")
            continue
        sig = signature(path, "manifest")
        if checked is not None and checked.get(rel) == sig:
            continue
        try:
            manifest = manifests.read(path)
        except DatasetError as exc:
            problems.append(str(exc).removeprefix("manifest ").split("; run")[0])
            continue
        if manifest["checksum"] != manifests.checksum(manifest):
            problems.append(f"{rel} was edited or damaged: its checksum does not match")
            continue
        differ = differences(manifest["identity"], current)
        if differ:
            problems.append(f"{rel} was made with another {', '.join(differ)} than "
                            "fastgen.json says")
        elif checked is not None:
            checked[rel] = sig
    return problems


def verify(ds: Dataset) -> list[str]:
    """Everything that does not match the manifests, by file and partition; empty when all is well."""
    problems = manifest_problems(ds)
    try:
        last = ds.committed()
    except DatasetError as exc:
        return problems or [str(exc).split("; run")[0]]
    if last is None:
        return problems
    problems += file_problems(ds, last)
    owed = ds.owed(last)
    for day, truth in last["partitions"].items():
        paths = [owed.get(p, ds.root / p) for p in truth["files"]]
        if not all(p.exists() for p in paths):
            problems.append(f"partition {day}: files missing")
            continue
        try:
            actual = digest(ds.reader([str(p) for p in paths])).to_json()
        except Exception as exc:  # a damaged file can fail in many ways; name it
            problems.append(f"partition {day}: cannot be read ({type(exc).__name__})")
            continue
        for key in ("rows", "live_rows", "amount", "row_hash"):
            if actual[key] != truth[key]:
                problems.append(f"partition {day}: {key} is {actual[key]}, the manifest says {truth[key]}")
    return problems + held_problems(ds, last)


def held_problems(ds: Dataset, last: dict) -> list[str]:
    """Runs whose held events (stress mode late events) do not give their manifest's held
    truth, the truth a feed consumer is judged by (``fastgen.delivered``)."""
    if not (ds.model.stress.late_event_share and ds.feed == "full"):
        return []
    owed, problems = ds.owed(last), []
    for manifest in ds.manifests(0, last["run"]):
        files = manifest["held"]["files"]
        paths = [owed.get(rel, ds.root / rel) for rel in files]
        if not all(p.exists() for p in paths):
            continue  # file_problems names it
        try:
            got = delivered.of_events(ds.reader([str(p) for p in paths]),
                                      ds.sim.day_start_us(manifest["run"] + 1)) if paths else {}
        except Exception as exc:  # a damaged file can fail in many ways; name it
            problems.append(f"{files[0]}: cannot be read ({type(exc).__name__})")
            continue
        wanted = manifest["held"]["days"]
        for day in sorted(set(got) | set(wanted)):
            if got.get(day) != wanted.get(day):
                problems.append(f"held events of run {manifest['run_date']}, day {day}: they do "
                                "not give the manifest's held truth")
    return problems
