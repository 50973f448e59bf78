"""Where a batch gets each part's state from: memory, its committed file, or the keys."""

from __future__ import annotations

from collections.abc import Callable

from fastgen.model import Part, Simulation


class PartCache:
    """Part states of recent days within a memory budget; the oldest days are evicted first."""

    def __init__(self, sim: Simulation, budget: int,
                 committed: Callable[[int, int], Part | None] = lambda day, index: None):
        self.sim = sim
        self.budget = budget
        self.committed = committed
        self.parts: dict[tuple[int, int], Part] = {}
        self.size = 0

    def get(self, day: int, index: int, run: int) -> Part:
        """The part after ``run``: from memory, else from its committed file, else from the keys."""
        part = self._pop((day, index))
        if part is None or part.run > run:
            part = self.committed(day, index)
        if part is None or part.run > run:
            part = self.sim.new_part(day, index)
        self.sim.advance(part, run)
        return part

    def put(self, part: Part) -> None:
        self._pop((part.day, part.index))
        self.parts[(part.day, part.index)] = part
        self.size += _nbytes(part)
        if self.size > self.budget:
            for key in sorted(self.parts):
                if self.size <= self.budget:
                    break
                self._pop(key)

    def _pop(self, key: tuple[int, int]) -> Part | None:
        part = self.parts.pop(key, None)
        if part is not None:
            self.size -= _nbytes(part)
        return part


def _nbytes(part: Part) -> int:
    return part.slots.nbytes + part.alive.nbytes + sum(c.nbytes for c in part.columns.values())
