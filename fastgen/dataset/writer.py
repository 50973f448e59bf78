"""The writer's sequence: lock, recover, check the committed files, make a batch, commit.

Only the process that holds the writer lock runs this; readers never do. The batch itself
(plan, tasks, manifests) is ``fastgen.build``'s; this module owns what happens around it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from fastgen import config
from fastgen.config import ConfigError
from fastgen.dataset import check, commit, identity, layout
from fastgen.errors import DatasetError, UsageError

if TYPE_CHECKING:
    from fastgen.dataset.store import Dataset

Wait = Callable[[], None] | None


class DiskFullError(DatasetError):
    """The disk filled up while a call wrote; its temporary files are gone (exit 1)."""


def write(ds: Dataset, days: int, *, executor=None,
          on_recovered: Callable[[list[str]], None] | None = None,
          on_start: Callable[[int], None] | None = None, on_task=None, on_run=None,
          on_wait: Wait = None) -> list:
    """What a writer does: take the lock, recover, check the committed files, make the runs.

    ``executor`` (``fastgen.build.executors``) runs the tasks, this process by default;
    ``on_start(tasks)`` is called once the plan is made, ``on_task`` after each finished
    task, ``on_run(summary)`` for each run made, ``on_wait`` before waiting for readers.
    """
    check_days(ds, days)
    ds.lock()
    try:
        recovered = recover(ds, on_wait, discard=False)
        last = check_committed_files(ds)
        return generate(ds, days, executor=executor, on_recovered=on_recovered,
                        on_start=on_start, on_task=on_task, on_run=on_run,
                        on_wait=on_wait, recovered=recovered, previous=last)
    except BaseException as exc:
        if executor is not None:
            # Stop the workers while this process still holds the lock: none of them may
            # write a temporary file after a later writer has taken over.
            executor.close(abort=True)
        if isinstance(exc, OSError | DiskFullError) and ds._made is not None \
                and ds.last_run() < 0:
            # A dataset this object created, whose first call could not be written (a full
            # disk, an unwritable folder): leave the folder as it was before. (An interrupted
            # first call keeps its finished tasks for the next one.)
            with contextlib.suppress(OSError):
                commit.discard_staged(ds.root)
                identity.discard(ds.root, ds._made)
        raise
    finally:
        ds.unlock()
        ds._made = None


def recover(ds: Dataset, on_wait: Wait = None, *, discard: bool = True) -> list[str]:
    """Finish a committed batch's renames and (``discard``) drop the files of an unfinished
    one; say what was done."""
    done: list[str] = []
    last = ds.manifest()
    renamed, removed = commit.recover(ds.root, (last or {}).get("renames", []), on_wait,
                                      discard=discard)
    if renamed:
        done.append(f"finished committing run {last['run_date']} ({renamed} file(s) renamed into place)")
    if removed:
        done.append(f"removed {removed} file(s) of an unfinished run, which will be made again")
    last = ds.committed()  # whole, and made with this identity
    recorded = ds.identity.last_date
    if last is not None and (recorded is None or recorded.isoformat() < last["run_date"]):
        identity.set_last_date(ds.root, ds.identity.raw, last["run_date"])
        ds.identity = identity.read(ds.root)
    return done


def check_committed_files(ds: Dataset) -> dict | None:
    """Before writing: manifests complete and unedited, committed files unchanged, nothing foreign.
    Returns the last commit's snapshot it checked (None before the first commit).

    Checksums are recomputed only for files whose stat signature changed since a start last
    checked them (cached in .fastgen.checked), so a start hashes about what the previous run
    wrote, not the whole history: hashing all of 10 days of 1M rows (437 MB) takes 0.36 s
    here, and grows with history. Silent bit rot that keeps the signature is left to verify.
    """
    checked = check.load_checked(ds.root)
    last = None
    problems = check.manifest_problems(ds, checked=checked)
    if not problems:
        last = ds.committed()
        problems = check.file_problems(ds, last, checked=checked)
    if problems:
        raise DatasetError(f"the dataset is corrupt ({problems[0]}"
                           f"{'' if len(problems) == 1 else f', and {len(problems) - 1} more'}); "
                           "run `fastgen verify` and repair or remove it; nothing was written.")
    check.save_checked(ds.root, checked)
    return last


def generate(ds: Dataset, days: int, *, executor=None, on_recovered=None, on_start=None,
             on_task=None, on_run=None, on_wait: Wait = None,
             recovered: list[str] | None = None, previous: dict | None = None) -> list:
    """Make ``days`` more runs in one batch and commit them; the caller holds the lock.

    Finished tasks of an interrupted call of the same runs are reused; any other call's
    staged files are removed first. A batch that is interrupted, or whose tasks fail,
    keeps its finished tasks for the next call (the committed state is untouched); one
    that fills the disk removes its temporary files at once, since the disk needs the space.
    ``previous``: the last commit's snapshot, if the caller has read it already.
    """
    from fastgen.build import Batch

    check_days(ds, days)
    batch = Batch(ds, days, executor, previous=previous)
    done = batch.resumable()
    recovered = list(recovered or [])
    if done is None:
        removed = commit.discard_staged(ds.root)
        if removed:
            recovered.append(f"removed {removed} file(s) of an unfinished call, which "
                             "will be made again")
    else:
        reused = batch.reuse(done)
        recovered.append(f"resuming an interrupted call of the same runs: {reused} of "
                         f"{batch.tasks} task(s) had finished and are reused")
    if recovered and on_recovered:
        on_recovered(recovered)
    if on_start:
        on_start(batch.tasks)
    final = ds.manifest_path(batch.last)
    try:
        summaries, made = batch.make(on_task=on_task)
        for summary in summaries if on_run else ():
            on_run(summary)
        tmp = batch.staging.temporary(final)
        layout.write_json(tmp, made[-1])
        commit.commit(ds.root, tmp, final, made[-1]["renames"], on_wait)
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT) or final.exists():
            # Past the commit point the staged files are committed ones still owed their
            # rename: the next start finishes them. Never discard those.
            raise
        with contextlib.suppress(Exception):
            commit.discard_staged(ds.root)
        raise disk_full(ds, exc, batch) from None
    recover(ds, on_wait)
    return summaries


def check_days(ds: Dataset, days: int) -> None:
    if not isinstance(days, int) or days < 1:
        raise UsageError(f"--days must be a whole number of at least 1, got {days!r}.")
    try:
        config.check_calendar(ds.start, ds.last_run() + 1, days)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None


def disk_full(ds: Dataset, exc: OSError, batch) -> DiskFullError:
    free = shutil.disk_usage(ds.root).free
    name = layout.final_name(Path(exc.filename or ""))  # the name a user will know
    inside = os.path.abspath(name).startswith(os.path.abspath(ds.root) + os.sep)
    where = os.path.relpath(os.path.abspath(name), os.path.abspath(ds.root)) if inside else name
    return DiskFullError(f"No space left on device writing {where}: {free / 1e6:,.1f} MB "
                        f"free, and this call needs about {batch.estimated_bytes() / 1e6:,.0f}"
                        " MB; free some space and run again (the last committed state is "
                        "intact).")
