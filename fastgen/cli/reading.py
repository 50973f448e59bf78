"""Commands that read a dataset: ``info``, ``verify`` (files or a warehouse) and ``load``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fastgen.dataset import Dataset, UsageError


def waiting(ds: Dataset):
    return lambda: print(f"waiting for a commit to {ds.root} to finish", file=sys.stderr)


def info(args: argparse.Namespace) -> int:
    ds = Dataset(args.data)
    with ds.reading(waiting(ds)):
        last = ds.committed()
    if last is None:
        print(f"{args.data}: no committed run yet (starts {ds.start})")
        return 0
    parts = last["partitions"]
    rows = sum(p["rows"] for p in parts.values())
    live = sum(p["live_rows"] for p in parts.values())
    size = sum(f["bytes"] for f in last["files"].values())
    print(f"{args.data}: {len(parts)} days {min(parts)} .. {max(parts)}, {last['run'] + 1} runs, "
          f"{rows:,} rows ({live:,} live), {size / 1e6:.1f} MB, format {ds.format}, "
          f"seed {ds.model.seed}")
    return 0


def verify(args: argparse.Namespace) -> int:
    if args.db is not None:
        from fastgen.cli.sink import verify_db
        return verify_db(args)
    if args.warehouse is not None:
        return _verify_warehouse(args)
    if args.history is not None:
        raise UsageError("--history names a table of a DuckDB warehouse; give --warehouse FILE.")
    ds = Dataset(args.data)
    with ds.reading(waiting(ds)):
        return report(ds, ds.verify(), args.data, "")


def report(ds: Dataset, problems: list[str], checked: Path, of: str) -> int:
    """Print each problem (exit 1), or one line saying that all days match (exit 0)."""
    for line in problems:
        print(line)
    if problems:
        print(f"{len(problems)} problem(s) in {checked}", file=sys.stderr)
        return 1
    last = ds.committed()
    if last is None:
        print(f"{checked}: no committed run yet; nothing to verify", file=sys.stderr)
        return 1
    print(f"{checked}: all {len(last['partitions'])} days match run {last['run_date']}{of}")
    return 0


def load(args: argparse.Namespace) -> int:
    from fastgen.loaders import load

    ds = Dataset(args.data)
    s = load(args.strategy, ds, args.warehouse, on_wait=waiting(ds), lookback=args.lookback)
    start = "empty" if s.from_run < 0 else f"at run {s.from_run}"
    groups = "" if s.row_groups is None else f" in {s.row_groups:,} row groups"
    print(f"{args.warehouse}: loaded run {s.to_run} ({s.to_date}) with {s.strategy} ({start} "
          f"before): {s.rows_read:,} rows and {s.bytes_read / 1e6:.1f} MB read{groups}, "
          f"{s.partitions} days, {s.rows_changed:,} rows changed, {s.seconds:.2f} s")
    for note in s.notes:
        print(note, file=sys.stderr)
    return 0


def _verify_warehouse(args: argparse.Namespace) -> int:
    from fastgen.loaders import connect, verify_warehouse
    from fastgen.loaders.verify import verify_table

    ds = Dataset(args.data)
    with ds.reading(waiting(ds)):
        con = connect(args.warehouse, read_only=True)
        try:
            problems = (verify_table(ds, con, args.history) if args.history
                        else verify_warehouse(ds, con))
        finally:
            con.close()
        return report(ds, problems, args.warehouse, f" of {args.data}")
