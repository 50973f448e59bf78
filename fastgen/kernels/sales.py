"""Fill the columns of new sales rows: time of day, store, product, quantity, price, amount.

Row *i* of run *r* depends only on the keys of run *r* and on *i*, so any range of rows (a
chunk) or any list of rows (late arrivals) can be filled alone, on any number of threads.
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastgen.kernels.random import uniform_at

US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
# Rows per parallel task; results never depend on it, only the scheduling does.
BLOCK = 1 << 16


@nb.njit(cache=True)
def alias_table(weights):
    """Walker/Vose alias table for O(1) sampling of ``weights`` (any positive scale)."""
    n = weights.size
    scaled = weights * (n / weights.sum())
    prob = np.ones(n, dtype=np.float64)
    alias = np.arange(n).astype(np.int32)
    small = np.empty(n, dtype=np.int64)
    large = np.empty(n, dtype=np.int64)
    ns = 0
    nl = 0
    for i in range(n):
        if scaled[i] < 1.0:
            small[ns] = i
            ns += 1
        else:
            large[nl] = i
            nl += 1
    while ns > 0 and nl > 0:
        ns -= 1
        s = small[ns]
        g = large[nl - 1]
        prob[s] = scaled[s]
        alias[s] = g
        scaled[g] = (scaled[g] + scaled[s]) - 1.0
        if scaled[g] < 1.0:
            nl -= 1
            small[ns] = g
            ns += 1
    # Leftovers are 1 up to rounding; they keep prob 1 and alias to themselves.
    return prob, alias


@nb.njit(inline="always", cache=True)
def alias_draw(u, prob, alias):
    """One draw from an alias table with a single uniform: its integer part picks the column."""
    x = u * prob.size
    k = min(np.int64(x), prob.size - 1)
    if x - k < prob[k]:
        return k
    return np.int64(alias[k])


@nb.njit(inline="always", cache=True)
def time_of_day_us(u, hour_cdf):
    """Microsecond of the day: the hour from its CDF (24 + 1 entries), uniform inside the hour."""
    h = 0
    while h < 23 and u >= hour_cdf[h + 1]:
        h += 1
    width = hour_cdf[h + 1] - hour_cdf[h]
    within = (u - hour_cdf[h]) / width if width > 0 else 0.0
    return h * US_PER_HOUR + min(np.int64(within * US_PER_HOUR), US_PER_HOUR - 1)


@nb.njit(inline="always", cache=True)
def _attributes(i, keys, store_prob, store_alias, product_prob, product_alias, prices,
                qmin, qspan, store, product, quantity, unit_price, amount, j):
    s = alias_draw(uniform_at(keys[1], i), store_prob, store_alias)
    p = alias_draw(uniform_at(keys[2], i), product_prob, product_alias)
    q = qmin + min(np.int64(uniform_at(keys[3], i) * qspan), qspan - 1)
    store[j] = s + 1
    product[j] = p + 1
    quantity[j] = q
    unit_price[j] = prices[p]
    amount[j] = q * prices[p]


@nb.njit(parallel=True, cache=True)
def fill_range(start, stop, skip, day_start_us, second_start, keys, store_prob, store_alias,
               product_prob, product_alias, prices, qmin, qmax,
               sold_at, store, product, quantity, unit_price, amount):
    """Fill rows ``start..stop`` of one run's new sales, already ordered by time.

    Rows listed in ``skip`` (sorted; the run's late arrivals) are left out and the others
    written contiguously, so that no later pass has to filter them.

    ``second_start[s]`` is the number of rows in seconds before ``s`` (86_401 entries): the
    seconds are drawn as a multinomial beforehand, so row *i*'s second is known without a
    sort. Inside its second, rank *j* of *c* rows gets microsecond ``(j + u) * 1e6 / c``:
    uniform, and ordered by construction. ``keys``: time, store, product, quantity.
    """
    n = stop - start
    qspan = qmax - qmin + 1
    for b in nb.prange((n + BLOCK - 1) // BLOCK):
        lo = start + b * BLOCK
        hi = min(lo + BLOCK, stop)
        s = np.searchsorted(second_start, lo, side="right") - 1
        k = np.searchsorted(skip, lo)
        k0 = np.searchsorted(skip, start)
        for i in range(lo, hi):
            while second_start[s + 1] <= i:
                s += 1
            if k < skip.size and skip[k] == i:
                k += 1
                continue
            count = second_start[s + 1] - second_start[s]
            rank = i - second_start[s]
            frac = (rank + uniform_at(keys[0], i)) / count
            j = i - start - (k - k0)
            sold_at[j] = day_start_us + s * US_PER_SECOND + min(
                np.int64(frac * US_PER_SECOND), US_PER_SECOND - 1)
            _attributes(i, keys, store_prob, store_alias, product_prob, product_alias, prices,
                        qmin, qspan, store, product, quantity, unit_price, amount, j)


@nb.njit(cache=True)
def fill_rows(rows, day_start_us, second_start, keys, store_prob, store_alias,
              product_prob, product_alias, prices, qmin, qmax,
              sold_at, store, product, quantity, unit_price, amount):
    """Like ``fill_range`` for a sorted list of row indices (the few late arrivals of a run)."""
    qspan = qmax - qmin + 1
    s = 0
    for j in range(rows.size):
        i = rows[j]
        while second_start[s + 1] <= i:
            s += 1
        count = second_start[s + 1] - second_start[s]
        frac = (i - second_start[s] + uniform_at(keys[0], i)) / count
        sold_at[j] = day_start_us + s * US_PER_SECOND + min(
            np.int64(frac * US_PER_SECOND), US_PER_SECOND - 1)
        _attributes(i, keys, store_prob, store_alias, product_prob, product_alias, prices,
                    qmin, qspan, store, product, quantity, unit_price, amount, j)


@nb.njit(cache=True)
def times_of_day(key, rows, hour_cdf, day_start_us, out):
    """Unsorted times inside a day, from the hour CDF, for ``rows`` of stream ``key``."""
    for j in range(rows.size):
        out[j] = day_start_us + time_of_day_us(uniform_at(key, rows[j]), hour_cdf)
