"""Order-independent digest of rows: the wrapping sum of a 64-bit hash of each row."""

from __future__ import annotations

import numba as nb
import numpy as np

from fastgen.kernels.random import mix64


@nb.njit(cache=True)
def row_hash_sum(columns):
    """Sum mod 2**64 of a per-row hash chained over the int64 ``columns`` (2-D, column-major)."""
    total = np.uint64(0)
    ncols, nrows = columns.shape
    for i in range(nrows):
        h = np.uint64(0x243F6A8885A308D3)  # pi's fractional bits: any fixed start works
        for c in range(ncols):
            h = mix64(h ^ np.uint64(columns[c, i]))
        total += h
    return total


@nb.njit(parallel=True, cache=True)
def to_decimal128(cents, words):
    """Little-endian 128-bit two's complement words of int64 ``cents`` (Arrow's decimal128)."""
    for i in nb.prange(cents.size):
        words[i, 0] = cents[i]
        words[i, 1] = cents[i] >> 63
