"""``fastgen generate``: make the next runs, and with ``--sink`` apply them to a database."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import date

from fastgen import config
from fastgen.cli.parser import MODEL_OPTIONS
from fastgen.config import ConfigError, Model
from fastgen.dataset import Dataset, check_writable
from fastgen.errors import UsageError


def _model_from(args: argparse.Namespace, base: Model) -> tuple[Model, list[str]]:
    """``base`` with the options given on the command line; also their flags."""
    from dataclasses import replace

    sales, changes, stress, top, given = {}, {}, {}, {}, []
    for flag, section, name, _, _ in MODEL_OPTIONS:
        value = getattr(args, name)
        if value is None:
            continue
        given.append(flag)
        {"sales": sales, "changes": changes, "stress": stress, None: top}[section][name] = value
    stressed = config.STRESS if getattr(args, "stress", False) else base.stress
    if getattr(args, "stress", False):
        given.append("--stress")
    model = replace(base, **top, sales=replace(base.sales, **sales),
                    changes=replace(base.changes, **changes),
                    stress=replace(stressed, **stress))
    return model, given


def _flag_value(model: Model, flag: str):
    if flag == "--stress":
        stress = model.stress
        return "on" if stress == config.STRESS else "on, at other rates" if stress.on else "off"
    for f, section, name, _, _ in MODEL_OPTIONS:
        if f == flag:
            return getattr(getattr(model, section) if section else model, name)


def generate(args: argparse.Namespace) -> int:
    from fastgen.build.executors import executor

    check_writable(args.data)
    url = None
    if args.sink:  # a bad URL before any work; the drivers load only for --sink
        from fastgen.cli.sink import check_url

        url = check_url(args.sink)
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
        _run_batch(ds, args, runner)
    if url is not None:
        from fastgen.cli.sink import apply_to

        return apply_to(url, ds, after="the runs are committed")
    return 0


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
