"""The commit protocol: staging a batch's files, the commit point, and recovery.

A call of ``generate`` makes one *batch* of runs. Every file is first written under a hidden
temporary name, named beforehand in the staging journal (``.fastgen.staging``), and fsynced;
the manifests of the batch's earlier runs likewise; then the manifest of its last run is
renamed into place: that rename is the commit point. It lists every rename the batch still
owes, which are then done with ``os.replace``, so a reader that globs ``sales/`` sees one file
per part at every moment, and under the exclusive commit lock, so a reader that holds it
shared sees one committed run. On start, the renames a commit still owes are finished (roll
forward) and the journal's other files are removed (roll back); only files the journal or a
manifest names are ever removed, never a user's.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from fastgen.dataset.layout import JOURNAL, fsync_dir, tmp_name
from fastgen.dataset.lock import committing
from fastgen.faults import fault


@dataclass
class Staging:
    """Temporary files of one batch and the renames its commit owes."""

    root: Path
    tag: str
    renames: list[tuple[str, str]] = field(default_factory=list)
    files: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Paths come relative (the dataset's) or absolute (the tasks'); abspath makes no syscall.
        self.base = os.path.abspath(self.root)

    def _rel(self, path: Path) -> str:
        return os.path.relpath(os.path.abspath(path), self.base)

    def temporary(self, final: Path) -> Path:
        """The temporary name of ``final``, recorded in the journal before it is created."""
        tmp = tmp_name(final, self.tag)
        self.journal([tmp])
        return tmp

    def journal_header(self, head: dict) -> None:
        """Start the journal of a new call (``fastgen.build.resume`` reads the header)."""
        with open(self.root / JOURNAL, "w") as journal:
            journal.write(json.dumps(head) + "\n")

    def journal(self, paths: list[Path]) -> None:
        """Record temporary paths (or glob patterns of them) before anything creates them."""
        with open(self.root / JOURNAL, "a") as journal:
            journal.writelines(json.dumps(self._rel(p)) + "\n" for p in paths)

    def owe_staged(self, staged) -> None:
        """``owe`` for a file a task staged (``fastgen.build.tasks.StagedFile``)."""
        self.owe(self.root / staged.tmp, self.root / staged.final,
                 {"bytes": staged.bytes, "sha256": staged.sha256})

    def owe(self, tmp: Path, final: Path, facts: dict | None = None) -> None:
        """Record that the commit renames ``tmp`` to ``final``; ``facts``: its size and sha256."""
        self.renames.append((self._rel(tmp), self._rel(final)))
        if facts is not None:
            self.files[self._rel(final)] = facts


def commit(root: Path, manifest_tmp: Path, manifest_final: Path, renames: list[tuple[str, str]],
           on_wait: Callable[[], None] | None = None) -> int:
    """Rename the commit manifest into place (the commit point), then the files it owes."""
    with committing(root, on_wait):
        fault("commit")
        os.replace(manifest_tmp, manifest_final)  # the commit point
        fault("committed")
        fsync_dir(manifest_final.parent)
        return _finish(root, renames)


def recover(root: Path, renames: list[tuple[str, str]],
            on_wait: Callable[[], None] | None = None, *, discard: bool = True) -> tuple[int, int]:
    """Finish the renames the last commit owes, then (``discard``) drop the journal's files.

    Run after every commit, and at every writer's start without ``discard``: the journal may
    hold finished tasks the call can reuse (``fastgen.build.resume``). Returns (files renamed,
    files removed).
    """
    owed = [(tmp, final) for tmp, final in renames if (root / tmp).exists()]
    renamed = 0
    if owed:
        with committing(root, on_wait):
            renamed = _finish(root, owed)
    removed = discard_staged(root) if discard else 0
    fault("recovered")
    return renamed, removed


def _finish(root: Path, renames: list[tuple[str, str]]) -> int:
    done = 0
    for tmp, final in sorted(renames):
        if (root / tmp).exists():
            os.replace(root / tmp, root / final)
            done += 1
            fault("recover")
    if done:
        # Durable before a later commit can rely on them (POSIX orders no two directories).
        for parent in {(root / final).parent for _, final in renames}:
            fsync_dir(parent)
    return done


def discard_staged(root: Path) -> int:
    """Remove the temporary files the journal names (and folders left empty), then the journal."""
    path = root / JOURNAL
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        return 0
    removed = 0
    parents: set[Path] = set()
    for line in lines:
        try:
            rel = json.loads(line)
        except ValueError:  # a line cut short by a crash: its file was never created
            continue
        if not isinstance(rel, str):
            continue
        if Path(rel).is_absolute() or ".." in Path(rel).parts:  # not ours: never outside root
            continue
        pattern = root / rel
        # A pattern names files whose number its writer learns only while writing (feeds).
        targets = pattern.parent.glob(pattern.name) if "*" in pattern.name else [pattern]
        for target in targets:
            if target.is_file():
                target.unlink()
                removed += 1
        parents.add(pattern.parent)
    for folder in sorted(parents, key=lambda p: len(p.parts), reverse=True):
        if folder != root and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
    path.unlink()
    return removed
