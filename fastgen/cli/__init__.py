"""Command line: argument parsing and wiring only. Bad input: one line on stderr, exit 2.

``parser`` holds the arguments; ``generate``, ``reading`` and ``sink`` the commands.
"""

from __future__ import annotations

import errno
import os
import signal
import sys
import threading

from fastgen.cli.generate import generate
from fastgen.cli.parser import MODEL_OPTIONS, build_parser
from fastgen.cli.reading import info, load, verify
from fastgen.config import ConfigError
from fastgen.errors import DatasetError
from fastgen import runtime

__all__ = ["MODEL_OPTIONS", "build_parser", "main"]


def _sink(args) -> int:
    """``fastgen sink`` (named apart from the module ``fastgen.cli.sink``, which replaces a
    package attribute of its name when imported); the module loads the database drivers (and DuckDB), which
    ``generate`` without ``--sink`` does not need at start-up."""
    from fastgen.cli.sink import sink as apply

    return apply(args)


def _terminated(signum: int, frame) -> None:
    raise KeyboardInterrupt(signum)  # unwinds like Ctrl-C: workers stopped, nothing committed


def main(argv: list[str] | None = None) -> int:
    runtime.start()
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
        return {"generate": generate, "info": info, "verify": verify, "load": load,
                "sink": _sink}[args.command](args)
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
