"""Exactly-once targets: databases that execute each run's inserts, updates and deletes.

``sink(data, url)`` brings a database to the dataset's last committed run, one transaction
per run with its position (``commit.apply``); ``verify(data, url)`` checks its ``sales``
against the ground truth of the run it holds. URLs: ``sqlite:///file.db`` (``sqlite``) and
``postgresql://user@host:port/db`` (``postgres``, needs ``fastgen[postgres]``). A driver's
failure becomes one ``DatasetError`` line, with the password scrubbed from it.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator

from fastgen.dataset import Dataset
from fastgen.errors import UsageError
from fastgen.sinks.base import Target
from fastgen.sinks.commit import Applied, SinkStats, apply
from fastgen.sinks.position import STATE_TABLE, Position, fingerprint
from fastgen.sinks.url import DatabaseUrl, parse
from fastgen.sinks.verify import Report, verify as verify_target

__all__ = ["Applied", "DatabaseUrl", "Position", "Report", "STATE_TABLE", "SinkStats",
           "Target", "check_url", "connect", "fingerprint", "parse", "sink", "verify"]

Wait = Callable[[], None] | None


def _postgres():
    try:
        from fastgen.sinks import postgres
    except ImportError as exc:
        if getattr(exc, "name", "") and not exc.name.startswith("psycopg"):
            raise
        raise UsageError("a postgresql:// sink needs psycopg 3: pip install 'fastgen[postgres]'."
                         ) from None
    return postgres


@contextlib.contextmanager
def connect(url: str | DatabaseUrl) -> Iterator[Target]:
    """The target at ``url``, open for the block; driver errors become one DatasetError line.

    A SQLite file this call created is removed again if nothing was committed to it.
    """
    url = url if isinstance(url, DatabaseUrl) else parse(url)
    module = _postgres() if url.kind == "postgres" else None
    driver_error: tuple[type[BaseException], ...] = (sqlite3.Error,)
    if module is not None:
        driver_error += (module.psycopg.Error,)
    target = None
    committed = False
    try:
        if module is not None:
            target = module.PostgresTarget(url)
        else:
            from fastgen.sinks.sqlite import SqliteTarget
            target = SqliteTarget(url)
        yield target
        committed = True
    except driver_error as exc:
        if isinstance(exc, sqlite3.Error):
            from fastgen.sinks.sqlite import as_error
        else:
            as_error = module.as_error
        raise as_error(exc, url) from None
    finally:
        if target is not None:
            with contextlib.suppress(Exception):
                target.close(committed or _has_position(target))


def _has_position(target: Target | None) -> bool:
    """Whether a sink committed anything to ``target`` (then its file must stay)."""
    if target is None:
        return False
    try:
        with target.reading():
            return target.has_tables() and target.position() is not None
    except Exception:
        return True  # when in doubt, keep the file


def sink(data: str | os.PathLike | Dataset, url: str | DatabaseUrl, *, on_wait: Wait = None,
         on_applied: Callable[[Applied], None] | None = None) -> SinkStats:
    """Apply every committed run ``url`` has not seen, in order, exactly once.

    The dataset is held at its last committed run while it is read (``Dataset.reading``).
    """
    dataset = data if isinstance(data, Dataset) else Dataset(data)
    with connect(url) as target, dataset.reading(on_wait):
        return apply(dataset, target, on_applied)


def verify(data: str | os.PathLike | Dataset, url: str | DatabaseUrl, *,
           on_wait: Wait = None) -> Report:
    """Compare ``sales`` at ``url`` with the truth of the run it holds (``verify.Report``)."""
    dataset = data if isinstance(data, Dataset) else Dataset(data)
    url = url if isinstance(url, DatabaseUrl) else parse(url)
    if url.kind == "sqlite" and not url.path.exists():
        raise UsageError(f"{url} does not exist.")
    with connect(url) as target, dataset.reading(on_wait):
        return verify_target(dataset, target)


def check_url(text: str) -> DatabaseUrl:
    """Parse ``text`` and make sure its driver is installed (before a long generate)."""
    url = parse(text)
    if url.kind == "postgres":
        _postgres()
    return url

