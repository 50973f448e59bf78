"""Order-independent digest of rows: the wrapping sum of a 64-bit hash of each row."""

from __future__ import annotations

import numba as nb
import numpy as np

from fastgen.kernels.random import _GOLDEN, mix64


_START = 0x243F6A8885A308D3  # pi's fractional bits: any fixed start works
_BLOCK = 1 << 16


@nb.njit(inline="always", cache=True)
def _chain(h, value):
    return mix64(h ^ np.uint64(value))


@nb.njit(parallel=True, cache=True)
def row_digest(keep, sale_id, sold_at, store_id, product_id, quantity, unit_price, amount,
               created_at, updated_at, version, is_deleted, deleted_at):
    """(rows, live rows, sums of amount per block, sum mod 2**64 of a hash per row) over
    rows in ``keep``.

    The hash chains the columns in schema order, each as an int64 (timestamps in us, money
    in cents, null deleted_at as NOT_DELETED). Sums are exact and order-free, so the blocks
    of the parallel loop can be added in any order. Amounts are summed per block of 2**16
    rows, which fits int64 for any amount decimal(12,2) holds; the caller adds the blocks
    exactly (a whole file of the largest amounts would overflow int64).
    """
    n = sale_id.size
    blocks = (n + _BLOCK - 1) // _BLOCK
    rows = np.zeros(blocks, np.int64)
    live = np.zeros(blocks, np.int64)
    cents = np.zeros(blocks, np.int64)
    hashes = np.zeros(blocks, np.uint64)
    for b in nb.prange(blocks):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if not keep[i]:
                continue
            h = np.uint64(_START)
            h = _chain(h, sale_id[i])
            h = _chain(h, sold_at[i])
            h = _chain(h, store_id[i])
            h = _chain(h, product_id[i])
            h = _chain(h, quantity[i])
            h = _chain(h, unit_price[i])
            h = _chain(h, amount[i])
            h = _chain(h, created_at[i])
            h = _chain(h, updated_at[i])
            h = _chain(h, version[i])
            h = _chain(h, np.int64(is_deleted[i]))
            h = _chain(h, deleted_at[i])
            rows[b] += 1
            live[b] += 0 if is_deleted[i] else 1
            cents[b] += amount[i]
            hashes[b] += h
    total = np.uint64(0)
    for b in range(blocks):
        total += hashes[b]
    return rows.sum(), live.sum(), cents, total


@nb.njit(parallel=True, cache=True)
def to_decimal128(cents, words):
    """Little-endian 128-bit two's complement words of int64 ``cents`` (Arrow's decimal128)."""
    for i in nb.prange(cents.size):
        words[i, 0] = cents[i]
        words[i, 1] = cents[i] >> 63


_HISTORY_START = 0x13198A2E03707344  # pi's next fractional bits: history hashes differ from rows'


@nb.njit(parallel=True, cache=True)
def version_digest(sign, sale_id, version, valid_from, valid_to):
    """Sum mod 2**64 of ``sign[i]`` times a hash of each version row (sale_id, version,
    valid_from, valid_to; microseconds, NOT_DELETED for an open valid_to): the
    order-independent hash of a type 2 history, or of a change to one (signs -1, 0, +1)."""
    n = sale_id.size
    blocks = (n + _BLOCK - 1) // _BLOCK
    hashes = np.zeros(blocks, np.uint64)
    for b in nb.prange(blocks):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            if sign[i] == 0:
                continue
            h = np.uint64(_HISTORY_START)
            h = _chain(h, sale_id[i])
            h = _chain(h, version[i])
            h = _chain(h, valid_from[i])
            h = _chain(h, valid_to[i])
            if sign[i] > 0:
                hashes[b] += h
            else:
                hashes[b] -= h
    total = np.uint64(0)
    for b in range(blocks):
        total += hashes[b]
    return total


@nb.njit(cache=True)
def channel_digest(keep, sale_id, codes):
    """Sum mod 2**64 of a hash of (sale_id, channel code) over the rows in ``keep`` that have
    a channel (code >= 0): what the column a schema change adds puts into ``row_digest``'s
    sum. A row without one adds nothing, so a day's sum does not depend on which of its files
    carry the column."""
    total = np.uint64(0)
    for i in range(sale_id.size):
        if keep[i] and codes[i] >= 0:
            total += mix64(np.uint64(sale_id[i]) ^ (np.uint64(codes[i] + 1) * np.uint64(_GOLDEN)))
    return total
