"""Fault injection for the crash tests: stop the process dead at a named point of a run.

``FASTGEN_FAULT=point`` or ``point:N`` sends the process a signal the N-th time (default: the
first) it reaches ``point``; ``FASTGEN_FAULT_SIGNAL`` names the signal (default ``SIGKILL``;
``SIGSTOP`` pauses the process there until it gets ``SIGCONT``), or ``raise`` to raise
``InjectedFault`` there instead (a task that fails, as opposed to a worker that dies). The variables are read once
per process, so an unset one costs one comparison per point. Points, in the order a batch
reaches them (see ``fastgen.dataset``):

    write       inside every file write, after the bytes and before the fsync
    partition   after each part task wrote its part's export under its temporary name
    feed        after each feed task wrote its run's feed under temporary names
    run         after the driver assembled each run's manifest
    manifest    after each of a batch's earlier manifests is written under a temporary name
    commit      before the rename of the batch's last manifest, the commit point
    committed   right after that rename
    recover     after each rename a commit owes, done after the commit or at the next start
    recovered   after the renames and the removal of leftovers, before fastgen.json is updated

and, in ``fastgen sink`` and ``fastgen load`` (``fastgen.sinks.commit``):

    sink        in each transaction, after its DML and before its control row and COMMIT
"""

from __future__ import annotations

import os
import signal

_plan: tuple[str, int, int] | None = None
_read = False
_hits: dict[str, int] = {}


class InjectedFault(RuntimeError):
    """Raised at a fault point when FASTGEN_FAULT_SIGNAL is ``raise``."""


def _load() -> tuple[str, int, int] | None:
    spec = os.environ.get("FASTGEN_FAULT")
    if not spec:
        return None
    point, _, nth = spec.partition(":")
    name = os.environ.get("FASTGEN_FAULT_SIGNAL", "SIGKILL")
    return point, int(nth or 1), -1 if name == "raise" else int(getattr(signal, name))


def fault(point: str) -> None:
    """Signal this process if FASTGEN_FAULT names this arrival at ``point``; else do nothing."""
    global _plan, _read
    if not _read:
        _plan, _read = _load(), True
    if _plan is None or _plan[0] != point:
        return
    _hits[point] = _hits.get(point, 0) + 1
    if _hits[point] == _plan[1]:
        if _plan[2] < 0:
            raise InjectedFault(f"injected fault at {point}:{_plan[1]}")
        os.kill(os.getpid(), _plan[2])
