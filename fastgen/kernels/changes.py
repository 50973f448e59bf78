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


US_PER_DAY = 86_400_000_000
# Draws per change of a repeat: whether it happens, its kind, time and quantity.
_REPEAT_DRAWS = 4


@nb.njit(inline="always", cache=True)
def _later(after_us, u, day_end_us):
    """A time after ``after_us`` and before the day's end, uniform; -1 if there is none."""
    room = day_end_us - after_us - 1
    if room <= 0:
        return np.int64(-1)
    return after_us + 1 + min(np.int64(u * room), room - 1)


@nb.njit(inline="always", cache=True)
def _change(p, v, t, q_u, delete_given_change, soft_share, qmin, qspan, alive, quantity,
            unit_price, amount, updated_at, version, is_deleted, deleted_at):
    """Apply one change to position ``p`` (``v`` picks its kind, ``q_u`` its quantity, at
    time ``t``); return its kind."""
    if v < delete_given_change:
        if v < delete_given_change * soft_share:
            is_deleted[p] = True
            deleted_at[p] = t
            updated_at[p] = t
            version[p] += 1
            return SOFT_DELETE
        alive[p] = False
        return HARD_DELETE
    q = qmin + min(np.int64(q_u * qspan), qspan - 1)
    quantity[p] = q
    amount[p] = q * unit_price[p]
    updated_at[p] = t
    version[p] += 1
    return UPDATE


@nb.njit(cache=True)
def replay(run_keys, run_starts_us, existing, rates, same_day, delete_given_change,
           soft_share, repeat_share, max_changes, late_share, late_max_us, hour_cdf, qmin, qmax,
           slots, alive, quantity, unit_price, amount, updated_at, version, is_deleted,
           deleted_at, capture_positions, capture_kinds, before_quantity, before_amount,
           before_updated_at, before_version, before_is_deleted, before_deleted_at):
    """Replay the changes of several runs to one part, in order, in place.

    Run *k* picks slots of ``[0, existing[k])`` with probability ``rates[k]`` each, by
    geometric skips (key ``run_keys[k, 0]``), keeps those the part holds (``slots``,
    ascending), and changes the live ones (a row already soft- or hard-deleted is left
    alone): keys ``run_keys[k, 1:4]`` draw its kind, time and quantity. The time is a time of
    the run's day, or, when ``same_day[k]`` (a run changing its own new rows), a time after
    the row's updated_at. Stress modes (issue 13): with probability ``late_share`` the change
    of a history run is committed late, up to ``late_max_us`` before the run's day (never
    before the row's updated_at; key ``run_keys[k, 5]``); after an update, another change
    follows later the same day with probability ``repeat_share``, up to ``max_changes``
    changes of a row (key ``run_keys[k, 4]``, ``_REPEAT_DRAWS`` draws each).

    For the last run, if ``capture_positions`` is not empty, each change (several of one row
    in time order) is written there: position, kind, and the changing columns before it;
    their count is returned.
    """
    captured = 0
    qspan = qmax - qmin + 1
    last = run_keys.shape[0] - 1
    for k in range(run_keys.shape[0]):
        rate = rates[k]
        if slots.size == 0 or rate <= 0.0:
            continue
        log_q = np.log1p(-rate) if rate < 1.0 else -np.inf
        day_end = run_starts_us[k] + US_PER_DAY
        capture = k == last and capture_positions.size > 0
        pick_key = run_keys[k, 0]
        slot = np.int64(-1)
        p = 0
        draw = 0
        while True:
            u = uniform_at(pick_key, draw)
            draw += 1
            gap = 0.0 if rate >= 1.0 else np.floor(np.log1p(-u) / log_q)
            if gap >= existing[k] - slot - 1:
                break
            slot += np.int64(gap) + 1
            p = _seek(slots, p, slot)
            if p >= slots.size:
                break
            if slots[p] != slot or not alive[p] or is_deleted[p]:
                continue
            u_time = uniform_at(run_keys[k, 2], slot)
            if same_day[k]:
                t = _later(updated_at[p], u_time, day_end)
                if t < 0:
                    continue
            else:
                t = run_starts_us[k] + time_of_day_us(u_time, hour_cdf)
                if late_share > 0.0 and uniform_at(run_keys[k, 5], 2 * slot) < late_share:
                    back = np.int64(uniform_at(run_keys[k, 5], 2 * slot + 1) * late_max_us)
                    t = max(updated_at[p] + 1, run_starts_us[k] - 1 - back)
            v = uniform_at(run_keys[k, 1], slot)
            q_u = uniform_at(run_keys[k, 3], slot)
            step = 0
            while True:
                if capture:
                    before_quantity[captured] = quantity[p]
                    before_amount[captured] = amount[p]
                    before_updated_at[captured] = updated_at[p]
                    before_version[captured] = version[p]
                    before_is_deleted[captured] = is_deleted[p]
                    before_deleted_at[captured] = deleted_at[p]
                kind = _change(p, v, t, q_u, delete_given_change, soft_share, qmin, qspan,
                               alive, quantity, unit_price, amount, updated_at, version,
                               is_deleted, deleted_at)
                if capture:
                    capture_positions[captured] = p
                    capture_kinds[captured] = kind
                    captured += 1
                step += 1
                if kind != UPDATE or step >= max_changes or repeat_share <= 0.0:
                    break
                c = (slot * max_changes + step) * _REPEAT_DRAWS
                if uniform_at(run_keys[k, 4], c) >= repeat_share:
                    break
                t = _later(updated_at[p], uniform_at(run_keys[k, 4], c + 2), day_end)
                if t < 0:
                    break
                v = uniform_at(run_keys[k, 4], c + 1)
                q_u = uniform_at(run_keys[k, 4], c + 3)
    return captured
