"""The command line's arguments: every command, option and type, and one line for bad input."""

from __future__ import annotations

import argparse
import re
from datetime import date, timedelta
from pathlib import Path

from fastgen.config import Model
from fastgen.errors import UsageError

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
    ("--repeat-share", "stress", "repeat_share", float, "stress: probability that a changed row changes again later the same day"),
    ("--same-day-share", "stress", "same_day_share", float, "stress: share of a run's new rows changed on their own day"),
    ("--late-commit-share", "stress", "late_commit_share", float, "stress: share of a run's changes stamped before its day (a long transaction)"),
    ("--late-commit-max-hours", "stress", "late_commit_max_hours", float, "stress: how far before the run's day a late commit is stamped, at most"),
    ("--schema-change-run", "stress", "schema_change_run", int, "stress: from this run on (0: never) the source has a new nullable column, channel"),
    ("--channel-null-share", "stress", "channel_null_share", float, "stress: share of new rows without a channel, once it exists"),
    ("--redelivery-share", "stress", "redelivery_share", float, "stress: share of a run's feed rows delivered again with the next run's feed"),
    ("--late-event-share", "stress", "late_event_share", float, "stress: share of the sales a run changes whose events come only with the next run's feed"),
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


def _at_least(low: int):
    """An argparse type: a whole number >= ``low``."""
    def whole(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value
    return whole


_positive = _at_least(1)
_natural = _at_least(0)  # 0 means "never" for --schema-change-run


def _table(text: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}", text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a table name ([schema.]table)")
    return text


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(text: str) -> timedelta:
    found = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if not found:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration (seconds, or 90s, 15m, "
                                         "6h, 2d)")
    return timedelta(seconds=float(found[1]) * _UNITS[found[2] or "s"])


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
    gen.add_argument("--sink", metavar="URL", default=None,
                     help="after the runs commit, apply them to this database as `fastgen sink "
                          "--to URL` does (default: none)")
    for flag, section, name, kind, text in MODEL_OPTIONS:
        holder = getattr(defaults, section) if section else defaults
        default = getattr(holder, name)
        shown = ",".join(f"{x:g}" for x in default) if isinstance(default, tuple) else default
        kwargs = {"choices": ["soft", "hard", "mixed"]} if name == "delete_mode" else {}
        whole = {"seed": int, "schema_change_run": _natural}.get(name, _positive)
        gen.add_argument(flag, type=whole if kind is int else kind,
                         default=None, help=f"{text} (default: {shown})", **kwargs)

    gen.add_argument("--stress", action="store_true",
                     help="turn every stress mode on at its documented rate (README \"Stress "
                          "modes\"); a stress option given beside it wins (default: off)")

    info = sub.add_parser("info", help="days, rows and size of a dataset")
    info.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")

    verify = sub.add_parser("verify", help="check the files (or a warehouse, or a database) "
                                           "against the manifests")
    verify.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")
    target = verify.add_mutually_exclusive_group()
    target.add_argument("--warehouse", type=Path, default=None,
                        help="check this DuckDB warehouse's sales table (and sales_history, "
                             "if loaded) instead of the files")
    target.add_argument("--db", metavar="URL", default=None,
                        help="check the sales table of this sink database (sqlite:///file.db, "
                             "postgresql://user@host:port/db) against the run it holds")

    verify.add_argument("--history", metavar="TABLE", type=_table, default=None,
                        help="with --warehouse: check only this history table of yours (columns "
                             "sale_id, version, valid_from/valid_to or dbt_valid_from/"
                             "dbt_valid_to, and sale_date to compare day by day), e.g. a dbt "
                             "snapshot, against the last run's history")

    load = sub.add_parser("load", help="bring a DuckDB warehouse up to the dataset's last run")
    load.add_argument("--strategy", required=True,
                      choices=["full", "incremental", "cdc", "watermark", "scd2"],
                      help="full: rebuild from every file; incremental: reload the days changed "
                           "since the last load; cdc: apply the change feeds since the last load; "
                           "watermark: merge the rows with updated_at after the last load's "
                           "(exact only without hard deletes); scd2: build the type 2 history "
                           "sales_history from the change feeds")
    load.add_argument("--lookback", type=_duration, default=None,
                      help="watermark only: also read rows updated this long before the "
                           "watermark: seconds, or a number with s, m, h or d (default: 0)")
    load.add_argument("--warehouse", type=Path, required=True, help="DuckDB database file")
    load.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")

    sink = sub.add_parser("sink", help="apply every committed run a database has not seen, "
                                       "exactly once, as real inserts, updates and deletes")
    sink.add_argument("--to", metavar="URL", required=True,
                      help="sqlite:///relative/file.db, sqlite:////absolute/file.db or "
                           "postgresql://user@host:port/db (password: PGPASSWORD or ~/.pgpass)")
    sink.add_argument("--data", type=_folder, default=Path("data"), help="dataset folder (default: data)")
    return parser


