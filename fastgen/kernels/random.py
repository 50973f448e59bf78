"""Counter-based random numbers: a value is splitmix64(key + golden * index).

A key is derived from ``(seed, stream, run, day)`` by chaining the same mixer, so every random
number of the dataset is addressable: row *i* of any stream can be drawn alone, in any order,
on any thread, and comes out the same (DESIGN.md section 2).
"""

from __future__ import annotations

import enum

import numba as nb
import numpy as np

_MASK = (1 << 64) - 1
# splitmix64 constants (Steele, Lea & Flood 2014; Vigna's reference implementation).
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53: the top 53 bits make a double in [0, 1)


class Stream(enum.IntEnum):
    """One independent stream per random quantity; values are part of the on-disk format."""

    SECOND_COUNTS = 1
    TIME_IN_SECOND = 2
    STORE = 3
    PRODUCT = 4
    QUANTITY = 5
    PRICE = 6
    LATE_PICK = 7
    LATENESS = 8
    LATE_TIME = 9
    DAY_DRAWS = 10
    CHANGE_PICK = 11
    CHANGE_KIND = 12
    CHANGE_TIME = 13
    CHANGE_QUANTITY = 14
    CHANGE_REPEAT = 15  # stress: a row's further changes in the same run
    LATE_COMMIT = 16  # stress: changes committed late
    CHANNEL = 17  # stress: the column a schema change adds
    REDELIVERY = 18  # stress: feed rows delivered again
    LATE_EVENT = 19  # stress: sales whose events of a run are held back to the next run


def mix64_py(z: int) -> int:
    """splitmix64's finaliser on Python ints (for key derivation outside kernels)."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK
    return z ^ (z >> 31)


def derive_key(seed: int, stream: Stream, *parts: int) -> int:
    """A 64-bit key for one stream of one (run, day); chained so that no two tuples collide by design."""
    key = mix64_py(seed ^ (int(stream) * _GOLDEN))
    for part in parts:
        key = mix64_py(key ^ ((part + 1) * _GOLDEN))
    return key


@nb.njit(inline="always", cache=True)
def mix64(z):
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_MIX1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_MIX2)
    return z ^ (z >> np.uint64(31))


@nb.njit(inline="always", cache=True)
def bits_at(key, index):
    """64 random bits for position ``index`` of the stream ``key``."""
    return mix64(np.uint64(key) + np.uint64(index) * np.uint64(_GOLDEN))


@nb.njit(inline="always", cache=True)
def uniform_at(key, index):
    """A double in [0, 1) for position ``index`` of the stream ``key``."""
    return np.float64(bits_at(key, index) >> np.uint64(11)) * _TO_UNIT


@nb.njit(cache=True)
def uniforms(key, start, count):
    """``count`` uniforms of stream ``key`` from position ``start``; for tests and small tables."""
    out = np.empty(count, dtype=np.float64)
    for i in range(count):
        out[i] = uniform_at(np.uint64(key), start + i)
    return out


@nb.njit(cache=True)
def uniforms_at(key, indices):
    """The uniforms of stream ``key`` at the given positions."""
    out = np.empty(indices.size, dtype=np.float64)
    for j in range(indices.size):
        out[j] = uniform_at(np.uint64(key), indices[j])
    return out
