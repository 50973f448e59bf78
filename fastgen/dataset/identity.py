"""``fastgen.json``: what a dataset is (format version, start date, file format, feed, model), and
the check that ties it to the data.

Every manifest records the identity its run was made with, so an edited, replaced or deleted
``fastgen.json`` cannot make a later run (or verify, or a load) use another model than the
data was made with: ``differences`` names the keys that differ.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from fastgen.config import ConfigError, Model
from fastgen.dataset.layout import (
    CHANGES,
    CHECKED,
    COMMIT_LOCK,
    JOURNAL,
    LOCK,
    FORMAT_VERSION,
    IDENTITY,
    MANIFESTS,
    SALES,
    check_folder,
    check_writable,
    fsync_dir,
    write_json,
)
from fastgen.errors import UsageError
from fastgen.formats import FORMATS

GENERATOR = "fastgen"
# Whether runs write a change feed: "none" is for people who only want large datasets.
FEEDS = ("full", "none")


@dataclass(frozen=True)
class Identity:
    """The parsed, checked contents of ``fastgen.json``."""

    model: Model
    start: date
    format: str
    feed: str  # "full": a change feed per run; "none": no feed (exports and manifests only)
    last_date: date | None  # the last committed run's date, as the last commit recorded it
    raw: dict

    def recorded(self) -> dict:
        """What every manifest records of the identity: all of it but ``last_date``."""
        # Through JSON, as a manifest holds it (tuples become lists).
        return json.loads(json.dumps({"feed": self.feed, "format": self.format,
                                      "model": self.model.to_json(),
                                      "start_date": self.start.isoformat()}))


def read(root: Path) -> Identity:
    """The identity of the dataset at ``root``; one-sentence UsageError if there is none."""
    check_folder(root)
    path = root / IDENTITY
    if not root.exists():
        raise UsageError(f"{root} does not exist.")
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        hint = " but has dataset folders: fastgen.json was deleted" if has_data(root) else ""
        raise UsageError(f"{root} holds no fastgen dataset (no {IDENTITY}){hint}.") from None
    except (OSError, ValueError):
        raise UsageError(f"{path} is not a fastgen dataset identity file.") from None
    if not isinstance(raw, dict) or raw.get("generator") != GENERATOR:
        raise UsageError(f"{path} is not a fastgen dataset identity file.")
    version = raw.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise UsageError(f"{path} is damaged: format_version {version!r} is not a whole number.")
    if version > FORMAT_VERSION:
        raise UsageError(f"{path} has format version {version}, newer than this fastgen "
                         f"understands ({FORMAT_VERSION}); upgrade fastgen.")
    if version < FORMAT_VERSION:
        raise UsageError(f"{path} has format version {version}, made by an older fastgen; "
                         f"this one writes version {FORMAT_VERSION} (see the README's "
                         "format history): generate the dataset again into a new folder.")
    try:
        model = Model.from_json(raw["model"])
        start = _date(raw["start_date"], "start_date")
        fmt = raw["format"]
        if fmt not in FORMATS:
            raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
        feed = raw["feed"]
        if feed not in FEEDS:
            raise ValueError(f"feed {feed!r} is not one of {', '.join(FEEDS)}")
        last = raw.get("last_date")
        last = None if last is None else _date(last, "last_date")
    except KeyError as exc:
        raise UsageError(f"{path} is damaged: no {exc}.") from None
    except (ConfigError, TypeError, ValueError) as exc:
        raise UsageError(f"{path} is damaged: {str(exc).rstrip('.')}.") from None
    return Identity(model, start, fmt, feed, last, raw)


def _date(value: object, key: str) -> date:
    if not isinstance(value, str):
        raise ValueError(f"{key} {value!r} is not a date")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{key} {value!r} is not a date (YYYY-MM-DD)") from None


def has_data(root: Path) -> bool:
    """Whether ``root`` holds any of a dataset's folders (with or without fastgen.json)."""
    return any((root / name).exists() for name in (SALES, CHANGES, MANIFESTS))


def create(root: Path, model: Model, start: date, fmt: str, feed: str = "full") -> list[Path]:
    """Write the identity of a new dataset; nothing is left behind if that fails.

    Returns the folders it made (innermost first), for ``discard``.
    """
    model.validate()
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}.")
    if feed not in FEEDS:
        raise UsageError(f"--feed must be one of {', '.join(FEEDS)}.")
    check_writable(root)
    if has_data(root):
        raise UsageError(f"{root} holds dataset folders but no {IDENTITY} (deleted?); "
                         "restore it, or use an empty folder.")
    made = [p for p in (root, *root.parents) if not p.exists()]
    raw = {"generator": GENERATOR, "format_version": FORMAT_VERSION,
           "start_date": start.isoformat(), "format": fmt, "feed": feed, "last_date": None,
           "model": model.to_json()}
    tmp = root / f".{IDENTITY}.tmp"
    try:
        root.mkdir(parents=True, exist_ok=True)
        write_json(tmp, raw)
        os.replace(tmp, root / IDENTITY)
        fsync_dir(root)
    except BaseException:
        tmp.unlink(missing_ok=True)
        _remove_empty(made)
        raise
    return made


def discard(root: Path, made: list[Path]) -> None:
    """Undo ``create`` of a dataset that never committed a run: its own files and folders only."""
    for name in (IDENTITY, LOCK, COMMIT_LOCK, CHECKED, JOURNAL):
        (root / name).unlink(missing_ok=True)
    for name in (SALES, CHANGES, MANIFESTS):
        with contextlib.suppress(OSError):  # not empty: not ours alone, keep it
            for sub in sorted((root / name).rglob("*"), key=lambda p: -len(p.parts)):
                sub.rmdir()
            (root / name).rmdir()
    _remove_empty(made)


def _remove_empty(folders: list[Path]) -> None:
    for folder in folders:  # innermost first; only the ones a call made, if still empty
        try:
            folder.rmdir()
        except OSError:
            break


def set_last_date(root: Path, raw: dict, value: str) -> None:
    raw["last_date"] = value
    tmp = root / f".{IDENTITY}.tmp"
    write_json(tmp, raw)
    os.replace(tmp, root / IDENTITY)


def differences(recorded: dict, current: dict) -> list[str]:
    """Dotted keys whose values differ between a manifest's identity and fastgen.json's."""
    mine, theirs = _flatten(recorded), _flatten(current)
    return sorted(k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k))


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat: dict = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = value
    return flat
