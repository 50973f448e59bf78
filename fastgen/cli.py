"""Command line: argument parsing and wiring only. Bad input: one line on stderr, exit 2."""

from __future__ import annotations

import argparse
import errno
import os
import re
import signal
import sys
import threading
import time
from datetime import date
from pathlib import Path

from fastgen import config
from fastgen.config import ConfigError, Model
from fastgen.dataset import Dataset, check_writable
from fastgen.errors import DatasetError, UsageError

# (flag, section, field, type, help). Each one changes the model, so it is stored in
# fastgen.json and refused on an existing dataset when it differs.
_FLOATS = lambda text: tuple(float(x) for x in text.split(","))  # noqa: E731
MODEL_OPTIONS = [
    ("--seed", None, "seed", int, "seed of every random number"),
    ("--rows-per-day", "sales", "rows_per_day", int, "new rows per run"),
    ("--rush-hours", "sales", "rush_hours", _FLOATS, "comma-separated peaks of the time of day, in hours"),
    ("--rush-weights", "sales", "rush_weights", _FLOATS, "comma-separated weights of the peaks"),
    ("--rush-sigma", "sales", "rush_sigma", float, "standard deviation of each peak, in hours"),
    ("--stores", "sales", "stores", int, "number of stores"),
    ("--products", "sales", "products", int, "number of products"),
    ("--store-skew", "sales", "store_skew", float, "Zipf exponent of store popularity"),
    ("--product-skew", "sales", "product_skew", float, "Zipf exponent of product popularity"),
    ("--quantity-min", "sales", "quantity_min", int, "smallest quantity"),
    ("--quantity-max", "sales", "quantity_max", int, "largest quantity"),
    ("--price-min-cents", "sales", "price_min_cents", int, "lowest unit price, in cents"),
    ("--price-max-cents", "sales", "price_max_cents", int, "highest unit price, in cents"),
    ("--sigmoid-steepness", "changes", "sigmoid_steepness", float, "steepness of the sigmoid over a day's position in history"),
    ("--sigmoid-switch-days", "changes", "sigmoid_switch_days", int, "history length from which the midpoint is H - recent days (before: H/2)"),
    ("--sigmoid-recent-days", "changes", "sigmoid_recent_days", int, "days before the newest at which the sigmoid's midpoint sits"),
    ("--update-rate", "changes", "update_rate", float, "probability that a live row of a changed day is updated"),
    ("--delete-rate", "changes", "delete_rate", float, "probability that a live row of a changed day is deleted"),
    ("--delete-mode", "changes", "delete_mode", str, "soft, hard or mixed deletes"),
    ("--soft-delete-share", "changes", "soft_delete_share", float, "share of soft deletes in mixed mode"),
    ("--late-share", "changes", "late_share", float, "share of a run's new rows that arrive late"),
    ("--late-max-days", "changes", "late_max_days", int, "largest lateness, in days"),
    ("--late-decay", "changes", "late_decay", float, "P(lateness k) is proportional to decay**(k-1)"),
    ("--rows-per-file", None, "rows_per_file", int, "rows of one day per file"),
]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # one line, exit 2, like every bad input
        raise UsageError(f"{message} (see `{self.prog} --help`).")


def _date(text: str) -> date:
    # fromisoformat alone also takes 20250101 and 2025-W01-3.
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _folder(text: str) -> Path:
    if not text.strip():
        raise argparse.ArgumentTypeError("is empty; name a dataset folder")
    return Path(text)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fastgen", description="Deterministic daily-changing sales data.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    defaults = Model()

    gen = sub.add_parser("generate", help="make the next days of data")
    gen.add_argument("--data", type=_folder, default=Path("data"),
                     help="dataset folder (default: data)")
    gen.add_argument("--start-date", type=_date, default=None,
                     help="first day of a new dataset; ignored when resuming (default: today)")
    gen.add_argument("--days", type=_positive, default=1, help="runs to make (default: 1)")
    gen.add_argument("--format", choices=["parquet", "csv"], default=None,
                     help="file format of a new dataset (default: parquet)")
    gen.add_argument("--feed", choices=["full", "none"], default=None,
                     help="full: every run writes its change feed; none: exports and manifests "
                          "only, for large datasets (no CDC) (default: full)")
    gen.add_argument("--workers", type=_positive, default=None,
                     help="make the call's partitions on this many local processes "
                          "(default: this process); same bytes")
    gen.add_argument("--dask", metavar="ADDRESS", default=None,
                     help="make them on a Dask cluster instead: 'local' starts one here with "
                          "--workers processes, tcp://HOST:PORT uses a running scheduler whose "
                          "workers share the dataset folder; needs fastgen[dask] (default: none)")
    for flag, section, name, kind, text in MODEL_OPTIONS:
        holder = getattr(defaults, section) if section else defaults
        default = getattr(holder, name)
        shown = ",".join(f"{x:g}" for x in default) if isinstance(default, tuple) else default
        kwargs = {"choices": ["soft", "hard", "mixed"]} if name == "delete_mode" else {}
        gen.add_argument(flag, type=_positive if kind is int and name not in ("seed",) else kind,
                         default=None, help=f"{text} (default: {shown})", **kwargs)

    info = sub.add_parser("info", help="days, rows and size of a dataset")
    info.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")

    verify = sub.add_parser("verify", help="check the files (or a warehouse) against the manifests")
    verify.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")
    verify.add_argument("--warehouse", type=Path, default=None,
                        help="check this DuckDB warehouse's sales table instead of the files")

    load = sub.add_parser("load", help="bring a DuckDB warehouse up to the dataset's last run")
    load.add_argument("--strategy", required=True, choices=["full", "incremental", "cdc"],
                      help="full: rebuild from every file; incremental: reload the days changed "
                           "since the last load; cdc: apply the change feeds since the last load")
    load.add_argument("--warehouse", type=Path, required=True, help="DuckDB database file")
    load.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")
    return parser


def _model_from(args: argparse.Namespace, base: Model) -> tuple[Model, list[str]]:
    """``base`` with the options given on the command line; also their flags."""
    sales, changes, top, given = {}, {}, {}, []
    for flag, section, name, _, _ in MODEL_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        given.append(flag)
        {"sales": sales, "changes": changes, None: top}[section][name] = value
    from dataclasses import replace
    model = replace(base, **top, sales=replace(base.sales, **sales),
                    changes=replace(base.changes, **changes))
    return model, given


def _flag_value(model: Model, flag: str):
    for f, section, name, _, _ in MODEL_OPTIONS:
        if f == flag:
            return getattr(getattr(model, section) if section else model, name)


def _generate(args: argparse.Namespace) -> int:
    from fastgen.build.executors import executor

    check_writable(args.data)
    ds = None
    if Dataset.exists(args.data):
        ds = Dataset(args.data)
        wanted, given = _model_from(args, ds.model)
        for flag in given:
            if _flag_value(wanted, flag) != _flag_value(ds.model, flag):
                raise UsageError(f"{flag} differs from the dataset's ({_flag_value(ds.model, flag)}); "
                                 "it would change the model of an existing dataset.")
        if args.format and args.format != ds.format:
            raise UsageError(f"--format differs from the dataset's ({ds.format}).")
        if args.feed and args.feed != ds.feed:
            raise UsageError(f"--feed differs from the dataset's ({ds.feed}).")
    else:
        model, _ = _model_from(args, Model())
        start = args.start_date or date.today()
        try:
            model.validate()
            config.check_calendar(start, 0, args.days)
        except ConfigError as exc:
            raise UsageError(str(exc)) from None
    # The workers first: a scheduler that cannot be reached leaves no new dataset behind.
    with executor(args.workers, args.dask) as runner:
        if ds is None:
            ds = Dataset.create(args.data, model, start, args.format or "parquet",
                                args.feed or "full")
        return _run_batch(ds, args, runner)


def _run_batch(ds: Dataset, args: argparse.Namespace, runner) -> int:
    from tqdm import tqdm

    def on_recovered(done: list[str]) -> None:
        print(f"recovered: {'; '.join(done)}", file=sys.stderr)

    bar = tqdm(total=0, unit="task", disable=not sys.stderr.isatty(), file=sys.stderr,
               leave=False)

    def on_start(tasks: int) -> None:
        bar.reset(total=tasks)

    def on_run(s) -> None:
        c = s.counts
        bar.clear()
        if not made and s.run > 0 and args.start_date is not None:
            print(f"resuming at {s.run_date}, after the last day in {ds.root}; "
                  f"--start-date {args.start_date} was ignored", file=sys.stderr)
        print(f"{s.run_date}  run {s.run:>4}  {c['inserts']:>11,} rows  {c['late_rows']:>8,} late  "
              f"{c['updates']:>10,} upd  {c['soft_deletes'] + c['hard_deletes']:>8,} del  "
              f"{c['partitions_rewritten']:>4} days  {s.bytes / 1e6:8.1f} MB feed", flush=True)
        made.append(s.run)

    made: list[int] = []

    def on_wait() -> None:
        bar.clear()
        print(f"waiting for readers of {ds.root} to finish before committing", file=sys.stderr)

    t0 = time.perf_counter()
    try:
        summaries = ds.write(args.days, executor=runner, on_recovered=on_recovered,
                             on_start=on_start, on_task=lambda task: bar.update(1),
                             on_run=on_run, on_wait=on_wait)
    finally:
        bar.close()
    last = ds.manifest()
    print(f"committed {len(summaries)} run(s) to {ds.root}: {last['bytes_written'] / 1e6:.1f} MB "
          f"written in {time.perf_counter() - t0:.1f} s")
    return 0


def _waiting(ds: Dataset):
    return lambda: print(f"waiting for a commit to {ds.root} to finish", file=sys.stderr)


def _info(args: argparse.Namespace) -> int:
    ds = Dataset(args.data)
    with ds.reading(_waiting(ds)):
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


def _verify(args: argparse.Namespace) -> int:
    if args.warehouse is not None:
        return _verify_warehouse(args)
    ds = Dataset(args.data)
    with ds.reading(_waiting(ds)):
        return _report(ds, ds.verify(), args.data, "")


def _report(ds: Dataset, problems: list[str], checked: Path, of: str) -> int:
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


def _load(args: argparse.Namespace) -> int:
    from fastgen.loaders import load

    ds = Dataset(args.data)
    s = load(args.strategy, ds, args.warehouse, on_wait=_waiting(ds))
    start = "empty" if s.from_run < 0 else f"at run {s.from_run}"
    print(f"{args.warehouse}: loaded run {s.to_run} ({s.to_date}) with {s.strategy} ({start} "
          f"before): {s.rows_read:,} rows and {s.bytes_read / 1e6:.1f} MB read, {s.partitions} "
          f"days, {s.rows_changed:,} rows changed, {s.seconds:.2f} s")
    return 0


def _verify_warehouse(args: argparse.Namespace) -> int:
    from fastgen.loaders import connect, verify_warehouse

    ds = Dataset(args.data)
    with ds.reading(_waiting(ds)):
        con = connect(args.warehouse, read_only=True)
        try:
            problems = verify_warehouse(ds, con)
        finally:
            con.close()
        return _report(ds, problems, args.warehouse, f" of {args.data}")


def _terminated(signum: int, frame) -> None:
    raise KeyboardInterrupt(signum)  # unwinds like Ctrl-C: workers stopped, nothing committed


def main(argv: list[str] | None = None) -> int:
    handler = None
    if threading.current_thread() is threading.main_thread():
        handler = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _main(argv)
    finally:
        if handler is not None:
            signal.signal(signal.SIGTERM, handler)


def _main(argv: list[str] | None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        return {"generate": _generate, "info": _info, "verify": _verify,
                "load": _load}[args.command](args)
    except (DatasetError, ConfigError) as exc:
        print(f"fastgen: {exc}", file=sys.stderr)
        return getattr(exc, "exit_code", 2)
    except KeyboardInterrupt as exc:
        signum = exc.args[0] if exc.args and isinstance(exc.args[0], int) else signal.SIGINT
        kept = (" (run the same command again: it reuses the tasks this one finished)"
                if args is not None and args.command == "generate" else "")
        print(f"{chr(10) if sys.stderr.isatty() else ''}fastgen: interrupted by "
              f"{signal.Signals(signum).name}; the last committed state is intact{kept}.",
              file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:
        # The reader of our output went away (`fastgen verify | head -1`): stop quietly, as
        # a process killed by SIGPIPE would, without a second error when stdout is flushed.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 128 + 13
    except OSError as exc:
        what = exc.strerror or str(exc)
        where = exc.filename or "the dataset folder"
        if exc.errno == errno.EPIPE:
            return 128 + 13
        print(f"fastgen: {what} ({where}); the last committed state is intact.", file=sys.stderr)
        return 1
