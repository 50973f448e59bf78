"""What a feed consumer holds after a run when the source holds events back (stress mode
``late_event_share``): the export's truth, less the run's held-back events.

A run's held-back events are all of some sales' events in it (never an insert), delivered at
the end of the next run's feed. A consumer that applied the run's feed therefore holds those
sales as they were before the run: per day, the export's digest with the held events' after
images taken out and their before images put back (the two telescope over a sale's events),
and the history without the versions they add. The manifest of a run carries the sums per day
(``held``), so this truth costs O(days), like the export's.

A consumer that reached the run by a bulk load (its export) holds the export's truth, and
skips the held events when the next run's feed delivers them.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from fastgen.digest import Digest, digest, encoded
from fastgen.history import NONE, History, changed
from fastgen.kernels import changes as ck
from fastgen.schema import PARTITION_KEY


def held(days: dict[str, list[dict]], file) -> dict:
    """A manifest's ``held`` section: the held file (a StagedFile, or None when nothing was
    held) and, per day, the sums of its parts' held facts (``tasks.held_facts``)."""
    out = {}
    for day, facts in sorted(days.items()):
        out[day] = {"events": sum(f["events"] for f in facts),
                    "before": Digest.combine([Digest.from_json(f["before"])
                                              for f in facts]).to_json(),
                    "after": Digest.combine([Digest.from_json(f["after"])
                                             for f in facts]).to_json(),
                    "history": sum((History.from_json(f["history"]) for f in facts),
                                   NONE).to_json()}
    return {"files": [file.final] if file else [], "days": out}


def of_events(frame: pl.DataFrame, commit_ts_us: int) -> dict[str, dict]:
    """The ``days`` of a manifest's ``held`` section, from the held events themselves (a held
    file read back, its run's commit time ``commit_ts_us``): what ``fastgen verify`` checks
    the manifest's against."""
    out = {}
    for (day,), events in sorted(frame.partition_by(PARTITION_KEY, as_dict=True).items()):
        hard = (events["op"] == "delete").to_numpy()
        before, after = events["before"].struct.unnest(), events["after"].struct.unnest()
        arrays = [{c: s.to_numpy() for c, s in encoded(image).to_dict().items()}
                  for image in (before, after)]
        kinds = np.where(hard, ck.HARD_DELETE, ck.UPDATE)
        out[day.isoformat()] = {
            "events": events.height, "before": digest(before).to_json(),
            "after": digest(after.filter(pl.Series(~hard))).to_json(),
            "history": changed(kinds, *arrays, commit_ts_us).to_json()}
    return out


def truth(partitions: dict[str, dict], manifest: dict) -> dict[str, dict]:
    """``partitions`` (the export's truth after ``manifest``'s run, every day) as a consumer
    that applied that run's feed holds them: unchanged without late events."""
    days = manifest.get("held", {}).get("days", {})
    if not days:
        return partitions
    out = dict(partitions)
    for day, held_day in days.items():
        export = out[day]
        digest = Digest.combine([Digest.from_json(export), Digest.from_json(held_day["before"]),
                                 Digest.from_json(held_day["after"])], [1, 1, -1])
        history = History.from_json(export) + -History.from_json(held_day["history"])
        out[day] = {**export, **digest.to_json(), **history.to_json()}
    return out
