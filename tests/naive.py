"""Obvious, slow reference versions of fastgen's kernels and of the model's exact probabilities.

Everything here is plain Python (ints, floats, loops) or plain numpy, written for clarity, not
speed; the kernels in ``fastgen/kernels`` must agree with it (``tests/test_kernels.py``), and
the goodness-of-fit tests compare samples with the exact distributions computed here.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

MASK64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15
MIX1 = 0xBF58476D1CE4E5B9
MIX2 = 0x94D049BB133111EB
US_PER_SECOND = 1_000_000
US_PER_HOUR = 3_600 * US_PER_SECOND
US_PER_DAY = 86_400 * US_PER_SECOND


# ---- splitmix64 ---------------------------------------------------------------------------
def mix64(z: int) -> int:
    """splitmix64's finaliser, straight from Vigna's C reference, on Python ints."""
    z &= MASK64
    z = ((z ^ (z >> 30)) * MIX1) & MASK64
    z = ((z ^ (z >> 27)) * MIX2) & MASK64
    return z ^ (z >> 31)


def bits_at(key: int, index: int) -> int:
    """The ``index``-th output of a splitmix64 generator whose state starts at ``key``."""
    return mix64((int(key) + int(index) * GOLDEN) & MASK64)


def uniform_at(key: int, index: int) -> float:
    """Top 53 bits as a double in [0, 1)."""
    return (bits_at(key, index) >> 11) / 2.0**53


def uniforms(key: int, start: int, count: int) -> list[float]:
    return [uniform_at(key, start + i) for i in range(count)]


def splitmix64_sequence(state: int, count: int) -> list[int]:
    """splitmix64 as Vigna's sequential generator: ``state += golden; yield mix(state)``.

    Its j-th output (from 0) is ``bits_at(state, j + 1)``: the counter-based form is the same
    generator, addressable at any position.
    """
    out = []
    for _ in range(count):
        state = (state + GOLDEN) & MASK64
        out.append(mix64(state))
    return out


# ---- discrete distributions ---------------------------------------------------------------
def alias_implied_probabilities(prob: np.ndarray, alias: np.ndarray) -> np.ndarray:
    """The exact distribution an alias table samples.

    Column k is chosen with 1/n; it keeps k with prob[k] and gives the rest to alias[k].
    """
    n = len(prob)
    p = np.zeros(n)
    for k in range(n):
        p[k] += prob[k] / n
        p[int(alias[k])] += (1.0 - prob[k]) / n
    return p


def searchsorted_draw(weights: np.ndarray, u: float) -> int:
    """Inverse-CDF sampling: the first k whose cumulative weight exceeds u * total."""
    cum = np.cumsum(np.asarray(weights, dtype=np.float64))
    return int(min(np.searchsorted(cum, u * cum[-1], side="right"), len(cum) - 1))


def alias_draw(u: float, prob: np.ndarray, alias: np.ndarray) -> int:
    """One alias-table draw from one uniform, written out (the kernel's documented rule)."""
    n = len(prob)
    x = u * n
    k = min(int(x), n - 1)
    return k if x - k < prob[k] else int(alias[k])


def zipf_probabilities(n: int, skew: float) -> np.ndarray:
    w = np.array([1.0 / (k ** skew) for k in range(1, n + 1)])
    return w / w.sum()


def hour_probabilities(hours, sigma, weights) -> np.ndarray:
    """P(hour = h) of a mixture of Gaussians wrapped around the 24-hour clock, by scipy.

    Enough copies of each Gaussian (one per 24 h, out to 10 sigma) that the mass left out is
    below 1e-20 whatever sigma is.
    """
    from scipy.stats import norm

    wraps = math.ceil(10 * sigma / 24) + 1
    weights = np.asarray(weights, dtype=np.float64) / np.sum(weights)
    p = np.zeros(24)
    for w, mu in zip(weights, hours):
        for h in range(24):
            for k in range(-wraps, wraps + 1):
                p[h] += w * (norm.cdf(h + 1 + 24 * k, mu, sigma) - norm.cdf(h + 24 * k, mu, sigma))
    return p / p.sum()


def lateness_probabilities(max_days: int, decay: float) -> np.ndarray:
    """P(lateness = k), k = 1..max_days, proportional to decay**(k-1)."""
    w = np.array([decay ** (k - 1) for k in range(1, max_days + 1)])
    return w / w.sum()


def chosen_day_probabilities(history: int, steepness: float, switch_days: int,
                             recent_days: int) -> tuple[np.ndarray, int]:
    """Exact P(day at position p is changed) in a run with ``history`` earlier days, and draws.

    int(midpoint) independent draws with replacement, each picking p with w_p / W, so
    P(p is drawn at least once) = 1 - (1 - w_p / W) ** draws.
    """
    midpoint = history / 2 if history < switch_days else history - recent_days
    draws = int(midpoint)
    w = np.array([1.0 / (1.0 + math.exp(-steepness * (p - midpoint))) for p in range(history)])
    if draws <= 0:
        return np.zeros(history), 0
    return 1.0 - (1.0 - w / w.sum()) ** draws, draws


# ---- time of day and a day's rows ---------------------------------------------------------
def time_of_day_us(u: float, hour_cdf: np.ndarray) -> int:
    """Microsecond of the day: hour by a linear scan of the CDF, uniform inside the hour."""
    h = 0
    while h < 23 and u >= hour_cdf[h + 1]:
        h += 1
    width = hour_cdf[h + 1] - hour_cdf[h]
    within = (u - hour_cdf[h]) / width if width > 0 else 0.0
    return h * US_PER_HOUR + min(int(within * US_PER_HOUR), US_PER_HOUR - 1)


def fill_day(start: int, stop: int, day_start_us: int, second_start: np.ndarray, keys,
             store_prob, store_alias, product_prob, product_alias, prices, qmin: int,
             qmax: int) -> dict[str, list[int]]:
    """Rows ``start..stop`` of a run's new sales, one at a time, with explicit loops.

    Row i sits in the second s with second_start[s] <= i < second_start[s + 1]; its rank j
    among the c rows of that second gives microsecond floor((j + u) / c * 1e6).
    """
    keys = [int(k) for k in keys]
    qspan = qmax - qmin + 1
    cols: dict[str, list[int]] = {c: [] for c in ("sold_at", "store_id", "product_id",
                                                  "quantity", "unit_price", "amount")}
    s = 0
    for i in range(start, stop):
        while not (second_start[s] <= i < second_start[s + 1]):
            s += 1
        count = int(second_start[s + 1] - second_start[s])
        rank = i - int(second_start[s])
        frac = (rank + uniform_at(keys[0], i)) / count
        cols["sold_at"].append(day_start_us + s * US_PER_SECOND
                               + min(int(frac * US_PER_SECOND), US_PER_SECOND - 1))
        store = alias_draw(uniform_at(keys[1], i), store_prob, store_alias)
        product = alias_draw(uniform_at(keys[2], i), product_prob, product_alias)
        q = qmin + min(int(uniform_at(keys[3], i) * qspan), qspan - 1)
        cols["store_id"].append(store + 1)
        cols["product_id"].append(product + 1)
        cols["quantity"].append(q)
        cols["unit_price"].append(int(prices[product]))
        cols["amount"].append(q * int(prices[product]))
    return cols


# ---- history changes ----------------------------------------------------------------------
def geometric_positions(key: int, p: float, limit: int) -> list[int]:
    """Positions in [0, limit) by geometric gaps: gap_k = floor(log(1 - u_k) / log(1 - p)).

    The same formula as the kernel, in Python floats, so the two must agree exactly; whether
    the formula is right (each position kept with probability p, independently) is checked
    statistically in the tests.
    """
    if p <= 0.0 or limit <= 0:
        return []
    out = []
    pos = -1
    k = 0
    log_q = math.log1p(-p) if p < 1.0 else -math.inf
    while True:
        u = uniform_at(key, k)
        k += 1
        gap = 0 if p >= 1.0 else math.floor(math.log1p(-u) / log_q)
        pos += gap + 1
        if pos >= limit:
            return out
        out.append(pos)


def bernoulli_positions(key: int, p: float, limit: int) -> list[int]:
    """The obvious O(limit) way to keep each position with probability p (not the same draws)."""
    return [i for i in range(limit) if uniform_at(key, i) < p]


NO_CHANGE, UPDATE, SOFT_DELETE, HARD_DELETE = 0, 1, 2, 3
# Stress modes (issue 13): at most this many changes of a row in one run, and the draws each
# further change takes from the repeat key (whether it happens, kind, time, quantity).
MAX_CHANGES = 3
REPEAT_DRAWS = 4
CHANGING = ("quantity", "amount", "updated_at", "version", "is_deleted", "deleted_at")


def later(after_us: int, u: float, day_end_us: int) -> int | None:
    """A time after ``after_us`` and before ``day_end_us``, uniform; None if there is none."""
    room = day_end_us - after_us - 1
    if room <= 0:
        return None
    return after_us + 1 + min(int(u * room), room - 1)


def change_row(row: dict, v: float, t: int, q_u: float, delete_given_change: float,
               soft_share: float, qmin: int, qmax: int) -> int:
    """One change of a row dict at time ``t``: ``v`` picks the kind, ``q_u`` the quantity."""
    if v < delete_given_change:
        if v < delete_given_change * soft_share:
            row.update(is_deleted=True, deleted_at=t, updated_at=t, version=row["version"] + 1)
            return SOFT_DELETE
        row["alive"] = False
        return HARD_DELETE
    qspan = qmax - qmin + 1
    q = qmin + min(int(q_u * qspan), qspan - 1)
    row.update(quantity=q, amount=q * row["unit_price"], updated_at=t, version=row["version"] + 1)
    return UPDATE


class Change(NamedTuple):
    """One change ``apply_changes`` made: the row's position, the kind, the row's changing
    columns before it, and its time (that of a hard delete too, though no column keeps it)."""

    position: int
    kind: int
    before: dict
    at: int


def apply_changes(positions, slots, keys, delete_given_change, soft_share, hour_cdf,
                  run_day_start_us, qmin, qmax, rows: list[dict], *, same_day: bool = False,
                  repeat_key: int = 0, repeat_share: float = 0.0, max_changes: int = MAX_CHANGES,
                  late_key: int = 0, late_share: float = 0.0, late_max_us: int = 0,
                  log: list | None = None) -> list[int]:
    """The change rule on row dicts: one uniform picks the kind, two more time and quantity.

    ``keys`` are the kind, time and quantity keys, drawn at the row's slot. The time is
    ``time_of_day_us`` of the run's day; with ``same_day`` (a run changing its own new rows)
    it is ``later`` than the row's updated_at instead, and the row is left alone if there is
    no time left. Stress modes, all off by default: a change (not ``same_day``) is committed
    late when draw ``2 * slot`` of ``late_key`` is below ``late_share``, at
    ``max(updated_at + 1, run start - 1 - int(draw(2 * slot + 1) * late_max_us))``; after an
    update, step s (1, 2, ...) of ``max_changes - 1`` more changes draws at
    ``c = (slot * max_changes + s) * REPEAT_DRAWS`` of ``repeat_key``: it happens if draw c is
    below ``repeat_share``, at ``later(updated_at, draw c + 2)`` (none if no time is left),
    with kind draw c + 1 and quantity draw c + 3.

    Returns each position's first kind (NO_CHANGE if it was not changed). ``log``, if given,
    gets every change in order, as a ``Change``.
    """
    keys = [int(k) for k in keys]
    repeat_key, late_key = int(repeat_key), int(late_key)
    day_end = run_day_start_us + US_PER_DAY
    kinds = []
    for i, slot in zip(positions, slots):
        row = rows[i]
        if not row["alive"] or row["is_deleted"]:
            kinds.append(NO_CHANGE)
            continue
        u_time = uniform_at(keys[1], slot)
        if same_day:
            t = later(row["updated_at"], u_time, day_end)
            if t is None:
                kinds.append(NO_CHANGE)
                continue
        else:
            t = run_day_start_us + time_of_day_us(u_time, hour_cdf)
            if late_share > 0.0 and uniform_at(late_key, 2 * slot) < late_share:
                back = int(uniform_at(late_key, 2 * slot + 1) * late_max_us)
                t = max(row["updated_at"] + 1, run_day_start_us - 1 - back)
        v, q_u = uniform_at(keys[0], slot), uniform_at(keys[2], slot)
        for step in range(max_changes):
            if step > 0:
                c = (slot * max_changes + step) * REPEAT_DRAWS
                if repeat_share <= 0.0 or uniform_at(repeat_key, c) >= repeat_share:
                    break
                t = later(row["updated_at"], uniform_at(repeat_key, c + 2), day_end)
                if t is None:
                    break
                v, q_u = uniform_at(repeat_key, c + 1), uniform_at(repeat_key, c + 3)
            before = {name: row[name] for name in CHANGING}
            kind = change_row(row, v, t, q_u, delete_given_change, soft_share, qmin, qmax)
            if step == 0:
                kinds.append(kind)
            if log is not None:
                log.append(Change(i, kind, before, t))
            if kind != UPDATE:
                break
    return kinds


class Run(NamedTuple):
    """One run's changes to one day, as ``replay_day`` takes them (a plain 6-tuple of the
    first fields is a run with the stress modes off)."""

    pick_key: int
    kind_key: int
    time_key: int
    quantity_key: int
    start_us: int  # the run's day
    existing: int  # slots it picks from
    repeat_key: int = 0
    late_key: int = 0
    rate: float | None = None  # None: replay_day's change_rate
    same_day: bool = False  # the run of the day itself, changing its own new rows


def replay_day(rows: list[dict], slot_of_row: list[int], runs: list[tuple], change_rate: float,
               delete_given_change: float, soft_share: float, hour_cdf, qmin: int,
               qmax: int, *, repeat_share: float = 0.0, max_changes: int = MAX_CHANGES,
               late_share: float = 0.0, late_max_us: int = 0,
               logs: list | None = None) -> list[list[int]]:
    """Replay the changes of several runs to one day's rows (dicts, changed in place).

    ``runs`` holds, per run that changes the day, a ``Run`` (or its first six fields): slots
    of ``[0, existing)`` are picked with probability ``rate`` (default ``change_rate``) each;
    a pick of a slot no row holds is a hole and is skipped; ``apply_changes`` does the rest.
    Returns the kinds of every change each run made (a row changed again after its first);
    ``logs``, if given, gets each run's changes as ``apply_changes`` logs them.
    """
    row_at_slot = {slot: i for i, slot in enumerate(slot_of_row)}
    out = []
    for run in (Run(*r) for r in runs):
        rate = change_rate if run.rate is None else run.rate
        picked = geometric_positions(run.pick_key, rate, run.existing)
        slots = [s for s in picked if s in row_at_slot]
        positions = [row_at_slot[s] for s in slots]
        log: list = []
        apply_changes(positions, slots, (run.kind_key, run.time_key, run.quantity_key),
                      delete_given_change, soft_share, hour_cdf, run.start_us, qmin, qmax, rows,
                      same_day=run.same_day, repeat_key=run.repeat_key,
                      repeat_share=repeat_share, max_changes=max_changes, late_key=run.late_key,
                      late_share=late_share, late_max_us=late_max_us, log=log)
        out.append([change.kind for change in log])
        if logs is not None:
            logs.append(log)
    return out


# ---- frames -------------------------------------------------------------------------------
SALES_COLUMNS = ("sale_id", "sold_at", "store_id", "product_id", "quantity", "unit_price",
                 "amount", "created_at", "updated_at", "version", "is_deleted", "deleted_at")
NOT_DELETED = -(2**63)


def ints(frame):
    """A sales frame's columns as plain int64: microseconds, cents, NOT_DELETED for null.

    Extra columns (sale_date, day, ...) are kept as they are, after the sales columns.
    """
    import polars as pl

    exprs = []
    for name in SALES_COLUMNS:
        dtype = frame.schema[name]
        col = pl.col(name)
        if isinstance(dtype, pl.Decimal):
            col = (col * 100).cast(pl.Int64)
        elif isinstance(dtype, pl.Datetime):
            col = col.dt.epoch("us")
        exprs.append(col.cast(pl.Int64).fill_null(NOT_DELETED).alias(name))
    return frame.select(exprs + [pl.col(c) for c in frame.columns if c not in SALES_COLUMNS])


# ---- type 2 history -------------------------------------------------------------------------
HISTORY_START = 0x13198A2E03707344


def version_hash(sale_id: int, version: int, valid_from: int, valid_to: int | None) -> int:
    """The hash of one history row, chained column by column as the kernel does."""
    h = HISTORY_START
    for value in (sale_id, version, valid_from, NOT_DELETED if valid_to is None else valid_to):
        h = mix64(h ^ (value & MASK64))
    return h


def history_from_feed(feed: list[dict]) -> dict[str, tuple[int, int]]:
    """Per day (sale_date, ISO): (versions, hash) of the type 2 history the feed events make.

    Each insert or update (soft deletes included) opens a version at its ``after.updated_at``
    and closes the sale's previous one there; a delete closes it at the event's commit_ts.
    Events are taken by sale_id, then run, then position (``lsn``, which a feed has when a
    stress mode is on and a run may change a sale several times; without it, a run changes
    a sale at most once).
    """
    by_sale: dict[int, list[dict]] = {}
    for event in feed:
        by_sale.setdefault(event["sale_id"], []).append(event)
    out: dict[str, list[int]] = {}
    for sale_id, events in by_sale.items():
        events.sort(key=lambda e: (e["commit_version"], e.get("lsn", 0)))
        opened = None  # (version, valid_from, day)
        rows = []
        for event in events:
            at = event["commit_ts"] if event["op"] == "delete" else event["after"]["updated_at"]
            if opened is not None:
                rows.append((*opened[:2], at, opened[2]))
                opened = None
            if event["op"] != "delete":
                opened = (event["after"]["version"], at, event["sale_date"])
        if opened is not None:
            rows.append((*opened[:2], None, opened[2]))
        for version, valid_from, valid_to, day in rows:
            count_hash = out.setdefault(day, [0, 0])
            count_hash[0] += 1
            count_hash[1] = (count_hash[1] + version_hash(sale_id, version, valid_from,
                                                          valid_to)) & MASK64
    return {day: (n, h) for day, (n, h) in out.items()}


# ---- change feed ----------------------------------------------------------------------------
def apply_feed(table: dict[int, tuple], seen: set[int], rows: list[dict]
               ) -> tuple[list[dict], list[dict]]:
    """Apply one run's delivered feed rows to ``table`` as a consumer does, one at a time.

    ``rows`` are feed rows as dicts (op, sale_id, sale_date, before, after, lsn); ``table``
    maps sale_id to (sale_date, row image). Rows are taken in ``lsn`` order; a position in
    ``seen`` (delivered before) is skipped, the others are applied and added to it. Returns the
    events applied, in order, and those that did not fit the table: an insert of a sale it
    holds, an update or delete whose ``before`` is not the row it holds.
    """
    applied, misfits = [], []
    for event in sorted(rows, key=lambda e: e["lsn"]):
        if event["lsn"] in seen:
            continue
        seen.add(event["lsn"])
        key = event["sale_id"]
        expected = None if event["op"] == "insert" else (event["sale_date"], event["before"])
        if table.get(key) != expected:
            misfits.append(event)
        if event["op"] == "delete":
            table.pop(key, None)
        else:
            table[key] = (event["sale_date"], event["after"])
        applied.append(event)
    return applied, misfits
