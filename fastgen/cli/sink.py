"""``fastgen sink``, ``fastgen verify --db`` and ``generate --sink``: a database as the source
system, each run executed in it exactly once. Only the redacted URL is ever printed."""

from __future__ import annotations

import argparse
import sys

from fastgen.cli.reading import report, waiting
from fastgen.dataset import Dataset
from fastgen.errors import DatasetError
from fastgen.sinks import Applied, DatabaseUrl, check_url
from fastgen.sinks import sink as apply_runs
from fastgen.sinks import verify as verify_target

__all__ = ["apply_to", "check_url", "sink", "verify_db"]


def sink(args: argparse.Namespace) -> int:
    url = check_url(args.to)
    return apply_to(url, Dataset(args.data))


def apply_to(url: DatabaseUrl, ds: Dataset, *, after: str | None = None) -> int:
    """Apply ``ds``'s runs to ``url``, one line per transaction and one to close.

    ``after`` (from ``generate --sink``) says what already happened if the sink fails.
    """
    def on_applied(a: Applied) -> None:
        what = (f"as a snapshot of the export: {a.changes:,} rows" if a.method == "bulk"
                else f"from its feed: {a.changes:,} changes")
        print(f"{url}: applied run {a.run} ({a.run_date}) {what} in {a.seconds:.2f} s",
              flush=True)

    try:
        s = apply_runs(ds, url, on_wait=waiting(ds), on_applied=on_applied)
    except DatasetError as exc:
        if after is None:
            raise
        raise type(exc)(f"{exc} ({after} in {ds.root}; run `fastgen sink --to URL` once "
                        "the database is fixed)") from None
    if not s.applied:
        print(f"{url}: already at run {s.to_run} ({s.to_date}); nothing to apply")
    else:
        start = "empty" if s.from_run < 0 else f"at run {s.from_run}"
        print(f"{url}: at run {s.to_run} ({s.to_date}) ({start} before): {len(s.applied)} "
              f"transaction(s), {s.changes:,} rows changed")
    return 0


def verify_db(args: argparse.Namespace) -> int:
    url = check_url(args.db)
    ds = Dataset(args.data)
    found = verify_target(ds, url, on_wait=waiting(ds))
    if found.problems:
        return report(ds, found.problems, url, "")
    if found.behind:
        print(f"{url}: behind the dataset ({found.behind}); run `fastgen sink`",
              file=sys.stderr)
    print(f"{url}: all {found.days} days match run {found.run} ({found.run_date}) of "
          f"{args.data}")
    return 0
