"""Where tasks run: this process (default), N local processes, or a Dask cluster.

Every executor runs the same task functions on the same task descriptions, and the plan does
not depend on which one (or on its number of workers), so the files are byte-identical. An
executor reports each finished task (for the progress bar), runs every task even when some
fail, and then raises: the OSError of a full disk as it is (the driver names the file), any
other failure as one ``TaskError`` naming the failed partitions. The distributed engine is
Dask's (``pip install fastgen[dask]``): it schedules, and retries a lost worker's tasks.
"""

from __future__ import annotations

import errno
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from fastgen.errors import DatasetError

Done = Callable[[Any, Any], None] | None  # (task, result) of each finished task


class TaskError(DatasetError):
    """Tasks failed; nothing was committed."""


class Executor(Protocol):
    def map(self, fn: Callable, context: Any, tasks: Sequence, on_done: Done = None) -> list:
        """``fn(context, task)`` for every task; results in task order."""

    def close(self, abort: bool = False) -> None:
        """Release the workers; ``abort``: stop running tasks too (Ctrl-C, a failure)."""


class _Closing:
    """``with executor(...) as runner:`` closes it, aborting its tasks on an exception."""

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback) -> None:
        self.close(abort=kind is not None)


def _start_worker() -> None:
    """In a worker process: Ctrl-C is the driver's to handle (it stops the workers itself);
    a worker that took it would print a traceback of its own. Numba and numpy as in the
    command's own process (``fastgen.runtime``)."""
    import signal

    from fastgen import runtime

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    runtime.start()


def _raise(failures: list[tuple[Any, BaseException]]) -> None:
    if not failures:
        return
    for _, exc in failures:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise exc
    names = ", ".join(task.name for task, _ in failures[:3])
    more = f" and {len(failures) - 3} more" if len(failures) > 3 else ""
    task, exc = failures[0]
    raise TaskError(f"{len(failures)} task(s) failed ({names}{more}; the first with "
                    f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
                    "nothing was committed: run again to complete it.") from exc


def _gather(completed, tasks: Sequence, on_done: Done) -> list:
    """Results in task order from (task number, future) pairs in the order they finish."""
    results: list = [None] * len(tasks)
    failures = []
    for n, future in completed:
        try:
            results[n] = future.result()
        except Exception as exc:  # noqa: BLE001 - named with its task below
            failures.append((n, exc))
            continue
        if on_done:
            on_done(tasks[n], results[n])
    _raise([(tasks[n], exc) for n, exc in sorted(failures, key=lambda f: f[0])])
    return results


class Serial(_Closing):
    """Every task in this process, one after the other (the default)."""

    def map(self, fn, context, tasks, on_done=None):
        results, failures = [], []
        for task in tasks:
            try:
                results.append(fn(context, task))
            except Exception as exc:  # noqa: BLE001 - named with its task below
                if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise  # the disk is full: every other task would fail too
                failures.append((task, exc))
                results.append(None)
                continue
            if on_done:
                on_done(task, results[-1])
        _raise(failures)
        return results

    def close(self, abort: bool = False) -> None:
        pass


class Processes(_Closing):
    """Tasks on ``workers`` local processes (started once per call, by forkserver: forking a
    process whose numba and Polars thread pools are running is unsafe)."""

    def __init__(self, workers: int):
        import multiprocessing
        import os
        from concurrent.futures import ProcessPoolExecutor

        # Workers stopped by close(abort=True) leave their queue semaphores to multiprocessing's
        # resource tracker, which cleans them up and warns on stderr: say nothing there (the
        # tracker is a child process and reads its warning filters from the environment).
        filters = os.environ.get("PYTHONWARNINGS", "")
        os.environ["PYTHONWARNINGS"] = ",".join(
            f for f in (filters, "ignore::UserWarning:multiprocessing.resource_tracker") if f)
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("forkserver"),
                                        initializer=_start_worker)
        self.closed = False

    def map(self, fn, context, tasks, on_done=None):
        from concurrent.futures import as_completed

        futures = {self.pool.submit(fn, context, task): n for n, task in enumerate(tasks)}
        return _gather(((futures[f], f) for f in as_completed(futures)), tasks, on_done)

    def close(self, abort: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        if not abort:
            self.pool.shutdown(wait=True)
            return
        # After Ctrl-C, SIGTERM or a failure, queued tasks are cancelled and running ones
        # stopped (their files are journaled temporaries, reused or removed by the next call).
        processes = list((getattr(self.pool, "_processes", None) or {}).values())
        # shutdown(wait=False) forgets the pool's manager thread without joining it; left
        # running, it closes its wake-up pipe while the interpreter's exit hook writes to it
        # (CPython 3.11: "OSError: Bad file descriptor" printed after our one line). Joined
        # here, its pipe is closed before the exit hook looks.
        manager = getattr(self.pool, "_executor_manager_thread", None)
        self.pool.shutdown(wait=False, cancel_futures=True)
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(5)
        if manager is not None:
            manager.join(5)
        self.pool.shutdown(wait=True)  # frees the pool's queues and semaphores


class Dask(_Closing):
    """Tasks on a Dask cluster: ``local`` starts a LocalCluster on this machine (one
    single-threaded worker process per core), else the address of a running scheduler.
    Workers write into the dataset folder, which must be shared storage for them."""

    def __init__(self, address: str, workers: int | None = None):
        try:
            from distributed import Client, LocalCluster
        except ImportError:
            raise DatasetError("--dask needs Dask: pip install 'fastgen[dask]'.") from None
        if address == "local":
            # The dashboard on a free port of the loopback: 8787 may be taken (a warning), and
            # nothing here serves it to other machines.
            self.cluster = LocalCluster(n_workers=workers, threads_per_worker=1,
                                        processes=True, dashboard_address="127.0.0.1:0")
            self.client = Client(self.cluster)
            self.closed = False
        else:
            self.cluster = None
            self.closed = False
            try:
                self.client = Client(address, timeout="5s")
            except (OSError, TimeoutError) as exc:
                raise DatasetError(f"cannot reach the Dask scheduler at {address} ({exc}).") from None

    def map(self, fn, context, tasks, on_done=None):
        from distributed import as_completed

        futures = [self.client.submit(fn, context, task, pure=False) for task in tasks]
        self.futures = futures
        index = {future.key: n for n, future in enumerate(futures)}
        return _gather(((index[f.key], f) for f in as_completed(futures)), tasks, on_done)

    def close(self, abort: bool = False) -> None:
        # A task already running on a remote worker cannot be stopped from here; the files it
        # still writes are journaled temporaries, reused or removed by the next call.
        if getattr(self, "closed", True):
            return
        self.closed = True
        if abort:
            self.client.cancel(getattr(self, "futures", []))
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


def executor(workers: int | None = None, dask: str | None = None) -> Executor:
    """The executor the options name: Dask if ``dask``, else processes if ``workers``, else serial."""
    if dask:
        return Dask(dask, workers)
    if workers:
        return Processes(workers)
    return Serial()
