"""Finished tasks of an interrupted call, kept for the next call of the same plan.

The driver appends each finished task's result to the staging journal (``.fastgen.staging``,
beside the temporary names it lists), under a header naming the call (first and last run,
temporary tag, dataset identity). A later call with the same header reuses every finished
task whose files are still there with the size and sha256 it recorded, and makes only the
rest; any other call discards the journal's files. So an interrupted 365-day backfill loses
the tasks that were running, not the hours before them.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastgen.build.plan import Context, FeedTask, PartTask
from fastgen.build.tasks import FeedResult, PartResult, RunFacts, StagedFile, piece_path
from fastgen.dataset.layout import JOURNAL
from fastgen.formats import file_checksum


def key(task: PartTask | FeedTask) -> str:
    if isinstance(task, PartTask):
        return f"part:{task.day}:{task.index}"
    return f"feed:{task.run}"


def header(context: Context, identity: dict) -> dict:
    return {"call": {"first": context.first, "last": context.last, "tag": context.tag,
                     "identity": identity}}


def finished(root: Path, head: dict) -> dict[str, dict] | None:
    """Results recorded under ``head`` in the journal, by task key; None if the journal is
    missing or belongs to another call (its files are then to be discarded)."""
    try:
        lines = (root / JOURNAL).read_text().splitlines()
    except FileNotFoundError:
        return None
    records = []
    for line in lines:
        try:
            records.append(json.loads(line))
        except ValueError:  # a line cut short by a crash
            continue
    heads = [r for r in records if isinstance(r, dict) and "call" in r]
    if not heads or heads[0] != head:
        return None
    return {r["done"]: r["result"] for r in records if isinstance(r, dict) and "done" in r}


def record(root: Path, task: PartTask | FeedTask, result: PartResult | FeedResult) -> None:
    if isinstance(result, PartResult):  # by hand: dataclasses.asdict deep-copies, 10x slower
        body = {"runs": {run: vars(facts) for run, facts in result.runs.items()},
                "file": vars(result.file),
                "inserts": vars(result.inserts) if result.inserts else None}
    else:
        body = {"files": [vars(f) for f in result.files], "rows": result.rows,
                "same_day": result.same_day,
                "tails": [[run, vars(f), rows] for run, f, rows in result.tails],
                "held": vars(result.held) if result.held else None,
                "held_rows": result.held_rows}
    with open(root / JOURNAL, "a") as journal:
        journal.write(json.dumps({"done": key(task), "result": body}) + "\n")


def part_result(task: PartTask, body: dict) -> PartResult:
    inserts = StagedFile(**body["inserts"]) if body.get("inserts") else None
    return PartResult(task, {int(run): RunFacts(**facts) for run, facts in body["runs"].items()},
                      StagedFile(**body["file"]), inserts)


def feed_result(task: FeedTask, body: dict) -> FeedResult:
    return FeedResult(task, [StagedFile(**f) for f in body["files"]], body["rows"],
                      body.get("same_day", 0),
                      [(run, StagedFile(**f), rows) for run, f, rows in body.get("tails", [])],
                      StagedFile(**body["held"]) if body.get("held") else None,
                      body.get("held_rows", 0))


def intact(root: Path, staged: StagedFile) -> bool:
    path = root / staged.tmp
    return (path.is_file() and path.stat().st_size == staged.bytes
            and file_checksum(path) == staged.sha256)


def reusable_part(context: Context, result: PartResult, feeds_done: set[int]) -> bool:
    """Its export is intact, and so is each piece a feed still to be made needs."""
    if not intact(context.root, result.file) or (
            result.inserts and not intact(context.root, result.inserts)):
        return False
    for run, facts in result.runs.items():
        if facts.piece_rows and run not in feeds_done:
            path = piece_path(context, run, result.task.day, result.task.index)
            piece = StagedFile(str(path.relative_to(context.root)), "", facts.piece_bytes,
                               facts.piece_sha256)
            if not intact(context.root, piece):
                return False
    return True


def reusable_feed(context: Context, result: FeedResult) -> bool:
    return all(intact(context.root, f) for f in result.files + [t for _, t, _ in result.tails]
               + ([result.held] if result.held else []))
