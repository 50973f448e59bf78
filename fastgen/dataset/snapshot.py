"""The state of a dataset after a commit, read from a chain of manifests as Delta reads its log.

Manifests hold what their run changed, not the whole history, so that they do not grow with
it (before format 3, 1,000 days of 1 row a day left 102 MB of manifests beside 12 MB of
sales). Two chains:

- *Truth*: a run's ``partitions`` holds the truth of the days it touched; a run whose number
  is a multiple of ``CHECKPOINT_RUNS`` (a checkpoint) holds every day's. The truth after run
  T is checkpoint C = T - T % CHECKPOINT_RUNS updated with runs C+1..T in order.
- *Files*: a commit manifest (a call's last run) lists the files its call wrote, with sizes
  and sha256; one whose call reached a checkpoint, or that is the first commit, lists every
  current file (``files_complete``). The files after a commit are the last complete listing
  updated with the later commits' (file names never go away: a day keeps its parts, a run
  its feed files).

Both are deterministic in the run numbers, so a run's manifest is the same whether it was
made alone or in a backfill; reading either costs O(CHECKPOINT_RUNS + runs of one call).
"""

from __future__ import annotations

from collections.abc import Callable

from fastgen.dataset import manifest as manifests
from fastgen.errors import DatasetError

# Runs between checkpoints: reading the truth of any run reads at most this many manifests
# (each of a few dozen days at the default model); 1,000 runs keep 20 whole copies.
CHECKPOINT_RUNS = 50


def is_checkpoint(run: int) -> bool:
    return run % CHECKPOINT_RUNS == 0


Reader = Callable[[int], dict | None]


def truth(read: Reader, last: dict) -> dict[str, dict]:
    """Every day's truth after the run of manifest ``last``."""
    run = last["run"]
    out: dict[str, dict] = {}
    for r in range(run - run % CHECKPOINT_RUNS, run + 1):
        manifest = last if r == run else _needed(read, r)
        out.update(manifest["partitions"])
    return dict(sorted(out.items()))


def files(read: Reader, last: dict) -> dict[str, dict]:
    """Every current file (size, sha256) after the commit of manifest ``last``."""
    listings = []
    manifest, run = last, last["run"]
    while True:
        if manifests.is_commit(manifest):
            listings.append(manifest["files"])
            if manifest["files_complete"]:
                break
        run -= 1
        if run < 0:
            raise DatasetError("no manifest lists every file (the first commit's was edited); "
                               "run `fastgen verify`.")
        manifest = _needed(read, run)
    out: dict[str, dict] = {}
    for listing in reversed(listings):
        out.update(listing)
    return dict(sorted(out.items()))


def _needed(read: Reader, run: int) -> dict:
    manifest = read(run)
    if manifest is None:
        raise DatasetError(f"the manifest of run {run} is missing; run `fastgen verify`.")
    return manifest
