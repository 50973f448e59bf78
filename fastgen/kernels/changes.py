"""Pick the rows a run changes in one day, and give them their new values.

Picks are keyed by a row's *slot*: its place in the day's sale_id order, holes included, so
a pick does not depend on which other rows were deleted before (DESIGN.md section 2).
"""

from __future__ import annotations

import numba as nb
import numpy as np

from fastgen.kernels.random import uniform_at
from fastgen.kernels.sales import time_of_day_us

NO_CHANGE = 0
UPDATE = 1
SOFT_DELETE = 2
HARD_DELETE = 3


@nb.njit(cache=True)
def geometric_positions(key, p, limit):
    """Sorted positions in ``[0, limit)``, each present independently with probability ``p``.

    Gaps between positions are geometric, so the cost is O(positions picked), not O(limit).
    """
    if p <= 0.0 or limit <= 0:
        return np.empty(0, dtype=np.int64)
    out = np.empty(max(16, np.int64(limit * p * 1.2) + 64), dtype=np.int64)
    n = 0
    pos = np.int64(-1)
    k = 0
    log_q = np.log1p(-p) if p < 1.0 else -np.inf
    while True:
        u = uniform_at(key, k)
        k += 1
        # Compare as a float first: for tiny p the gap exceeds int64.
        gap = 0.0 if p >= 1.0 else np.floor(np.log1p(-u) / log_q)
        if gap >= limit - pos - 1:
            break
        pos += np.int64(gap) + 1
        if n == out.size:
            grown = np.empty(out.size * 2, dtype=np.int64)
            grown[:n] = out[:n]
            out = grown
        out[n] = pos
        n += 1
    return out[:n].copy()


@nb.njit(inline="always", cache=True)
def _seek(slots, p, target):
    """First index >= p whose slot is >= target (slots ascending): gallop, then bisect."""
    n = slots.size
    step = 1
    lo = p
    hi = p
    while hi < n and slots[hi] < target:
        lo = hi + 1
        hi = p + step
        step *= 2
    hi = min(hi, n)
    while lo < hi:
        mid = (lo + hi) // 2
        if slots[mid] < target:
            lo = mid + 1
        else:
            hi = mid
    return lo


@nb.njit(cache=True)
def replay(run_keys, run_starts_us, existing, change_rate, delete_given_change, soft_share,
           hour_cdf, qmin, qmax, slots, alive, quantity, unit_price, amount, updated_at,
           version, is_deleted, deleted_at, capture_positions, capture_kinds, before_quantity,
           before_amount, before_updated_at, before_version, before_is_deleted,
           before_deleted_at):
    """Replay the changes of several runs to one part, in order, in place.

    Run *k* picks slots of ``[0, existing[k])`` by geometric skips (key ``run_keys[k, 0]``),
    keeps those the part holds (``slots``, ascending), and applies the change rule to the live
    ones (keys ``run_keys[k, 1:]``: kind, time, quantity; a row already soft- or hard-deleted
    is left alone). For the last run, if ``capture_positions`` is not empty,
    the positions and kinds of the rows it changed, and their changing columns before the
    change, are written to the ``capture_*`` and ``before_*`` arrays; their count is returned.
    """
    captured = 0
    if slots.size == 0 or change_rate <= 0.0:
        return captured
    log_q = np.log1p(-change_rate) if change_rate < 1.0 else -np.inf
    last = run_keys.shape[0] - 1
    qspan = qmax - qmin + 1
    for k in range(run_keys.shape[0]):
        pick_key = run_keys[k, 0]
        slot = np.int64(-1)
        p = 0
        draw = 0
        while True:
            u = uniform_at(pick_key, draw)
            draw += 1
            gap = 0.0 if change_rate >= 1.0 else np.floor(np.log1p(-u) / log_q)
            if gap >= existing[k] - slot - 1:
                break
            slot += np.int64(gap) + 1
            p = _seek(slots, p, slot)
            if p >= slots.size:
                break
            if slots[p] != slot or not alive[p] or is_deleted[p]:
                continue
            if k == last and capture_positions.size:
                before_quantity[captured] = quantity[p]
                before_amount[captured] = amount[p]
                before_updated_at[captured] = updated_at[p]
                before_version[captured] = version[p]
                before_is_deleted[captured] = is_deleted[p]
                before_deleted_at[captured] = deleted_at[p]
            v = uniform_at(run_keys[k, 1], slot)
            t = run_starts_us[k] + time_of_day_us(uniform_at(run_keys[k, 2], slot), hour_cdf)
            if v < delete_given_change:
                if v < delete_given_change * soft_share:
                    kind = SOFT_DELETE
                    is_deleted[p] = True
                    deleted_at[p] = t
                    updated_at[p] = t
                    version[p] += 1
                else:
                    kind = HARD_DELETE
                    alive[p] = False
            else:
                kind = UPDATE
                q = qmin + min(np.int64(uniform_at(run_keys[k, 3], slot) * qspan), qspan - 1)
                quantity[p] = q
                amount[p] = q * unit_price[p]
                updated_at[p] = t
                version[p] += 1
            if k == last and capture_positions.size:
                capture_positions[captured] = p
                capture_kinds[captured] = kind
                captured += 1
    return captured
