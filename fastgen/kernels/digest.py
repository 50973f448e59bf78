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
