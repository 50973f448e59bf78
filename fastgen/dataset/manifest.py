"""Manifests: the ground truth of each run, their names, checksums and shape.

A manifest is checked in one place, when it is read: a file that is not valid JSON, lacks a
key, has a value of the wrong type, or whose run does not match its name raises
``DatasetError`` naming the file and what is wrong, so that every command (generate, info,
verify, load) says the same one sentence instead of a KeyError.
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import date
from pathlib import Path

from fastgen.dataset.layout import FORMAT_VERSION, MANIFESTS, final_name
from fastgen.errors import DatasetError
from fastgen.schema import FEED_PARTITION_KEY

NAME = re.compile(rf"{FEED_PARTITION_KEY}=(\d{{4}}-\d{{2}}-\d{{2}})\.json")

# Keys a manifest's checksum leaves out: they depend on how runs were grouped into batches, so
# a run has one checksum whether made alone or in a backfill; "files" is checked against the files.
BATCH_KEYS = ("files", "files_complete", "renames", "bytes_written", "checksum")

# Every manifest's keys and their JSON types; a commit manifest (a call's last run) also has
# BATCH_KEYS. "identity" is the dataset's identity (model, start date, format) the run was
# made with: fastgen.json must match it.
_KEYS = {"format_version": int, "run": int, "run_date": str, "commit_ts": str, "counts": dict,
         "touched": list, "feed": list, "partitions": dict, "identity": dict, "checksum": str}
_COMMIT_KEYS = {"files": dict, "files_complete": bool, "renames": list, "bytes_written": int}
_PARTITION_KEYS = {"files": list, "rows": int, "live_rows": int, "amount": str,
                   "row_hash": str, "versions": int, "history_hash": str, "last_run": int}
_FILE_KEYS = {"bytes": int, "sha256": str}


def checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k not in BATCH_KEYS}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def run_date_of(path: Path) -> date | None:
    """The run date a manifest's file name gives, or None for a name that is not a manifest's."""
    match = NAME.fullmatch(path.name)
    if not match:
        return None
    try:
        return date.fromisoformat(match.group(1))
    except ValueError:
        return None


def is_commit(manifest: dict) -> bool:
    """Whether ``manifest`` is a commit point (the last run of a call), listing every file."""
    return "files" in manifest


def read(path: Path) -> dict:
    """The manifest at ``path``, checked for shape; DatasetError naming what is wrong."""
    rel = f"{MANIFESTS}/{path.name}"
    try:
        manifest = json.loads(path.read_text())
    except UnicodeDecodeError:
        raise DatasetError(f"manifest {rel} is not text; run `fastgen verify`.") from None
    except ValueError:
        raise DatasetError(f"manifest {rel} is not valid JSON; run `fastgen verify`.") from None
    problem = shape_problem(manifest, path)
    if problem:
        raise DatasetError(f"manifest {rel} is damaged ({problem}); run `fastgen verify`.")
    return manifest


def shape_problem(manifest: object, path: Path) -> str | None:
    """What is wrong with the shape of a parsed manifest, or None."""
    if not isinstance(manifest, dict):
        return "not a JSON object"
    problem = _keys(manifest, _KEYS | (_COMMIT_KEYS if is_commit(manifest) else {}))
    if problem:
        return problem
    if manifest["format_version"] != FORMAT_VERSION:
        return f"format version {manifest['format_version']}, expected {FORMAT_VERSION}"
    named = run_date_of(final_name(path))
    if named is None or manifest["run_date"] != named.isoformat():
        return f"run_date {manifest['run_date']!r} does not match its file name"
    for day, truth in manifest["partitions"].items():
        problem = _keys(truth, _PARTITION_KEYS) if isinstance(truth, dict) else "not an object"
        if problem:
            return f"partition {day}: {problem}"
    for rel, info in manifest.get("files", {}).items():
        problem = _keys(info, _FILE_KEYS) if isinstance(info, dict) else "not an object"
        if problem:
            return f"file {rel}: {problem}"
    return None


def _keys(data: dict, wanted: dict[str, type]) -> str | None:
    for key, kind in wanted.items():
        if key not in data:
            return f"no {key!r}"
        value = data[key]
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return f"{key!r} is {type(value).__name__}, not {kind.__name__}"
    return None
