"""Every numba kernel against its obvious slow version in ``tests/naive.py``."""

from __future__ import annotations

import dataclasses
import math
from datetime import date

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgen import ChangeModel, Model, SalesModel, Simulation
from fastgen.config import STRESS, StressModel
from fastgen.kernels import changes as ck
from fastgen.kernels import sales as sk
from fastgen.kernels.random import Stream, derive_key, mix64, mix64_py, uniforms
from fastgen.model import hour_probabilities, zipf_weights

try:
    from tests import naive
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    import naive

START = date(2025, 9, 1)
ROWS = 3_000
KEYS = [0, 1, 2**63, 2**64 - 1, 0x243F6A8885A308D3, derive_key(7, Stream.STORE, 3)]
HYPOTHESIS = settings(max_examples=40, deadline=None,
                      suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def sim() -> Simulation:
    return Simulation(Model(seed=11, sales=SalesModel(rows_per_day=ROWS)), START)


def _tables(sim: Simulation, run: int) -> tuple:
    """The inputs fill_range/fill_rows get for ``run``, as the model builds them."""
    keys = np.array([derive_key(sim.model.seed, stream, run) for stream in
                     (Stream.TIME_IN_SECOND, Stream.STORE, Stream.PRODUCT, Stream.QUANTITY)],
                    dtype=np.uint64)
    s = sim.model.sales
    return (sim.day_start_us(run), sim.second_start(run), keys, sim.store_prob,
            sim.store_alias, sim.product_prob, sim.product_alias, sim.prices,
            s.quantity_min, s.quantity_max)


_COLUMNS = (("sold_at", np.int64), ("store_id", np.int32), ("product_id", np.int32),
            ("quantity", np.int32), ("unit_price", np.int64), ("amount", np.int64))


def _fill_range(sim: Simulation, run: int, start: int, stop: int,
                skip: np.ndarray | None = None) -> dict[str, np.ndarray]:
    skip = np.empty(0, np.int64) if skip is None else skip
    out = {name: np.empty(stop - start - skip.size, dtype) for name, dtype in _COLUMNS}
    sk.fill_range(start, stop, skip, *_tables(sim, run), *out.values())
    return out


def _fill_rows(sim: Simulation, run: int, rows: np.ndarray) -> dict[str, np.ndarray]:
    out = {name: np.empty(rows.size, dtype) for name, dtype in _COLUMNS}
    sk.fill_rows(rows, *_tables(sim, run), *out.values())
    return out


# ---- random --------------------------------------------------------------------------------
@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("start", [0, 1, 12_345, 2**40 + 3])
def test_uniforms_equal_python_splitmix64(key, start):
    got = uniforms(np.uint64(key), start, 50)
    assert got.tolist() == naive.uniforms(key, start, 50)
    assert ((got >= 0.0) & (got < 1.0)).all()


@settings(max_examples=60, deadline=None)
@given(key=st.integers(0, 2**64 - 1), start=st.integers(0, 2**50), count=st.integers(0, 20))
def test_uniforms_equal_python_splitmix64_any_key(key, start, count):
    assert uniforms(np.uint64(key), start, count).tolist() == naive.uniforms(key, start, count)


@pytest.mark.parametrize("key", KEYS)
def test_counter_form_is_vigna_sequence(key):
    """bits_at(key, i) is output i - 1 of the sequential splitmix64 seeded with key."""
    assert naive.splitmix64_sequence(key, 8) == [naive.bits_at(key, i) for i in range(1, 9)]
    # and the kernel's uniforms are the top 53 bits of those outputs
    got = uniforms(np.uint64(key), 1, 8)
    assert got.tolist() == [(b >> 11) / 2.0**53 for b in naive.splitmix64_sequence(key, 8)]


@settings(max_examples=100, deadline=None)
@given(z=st.integers(0, 2**64 - 1))
def test_mix64_python_and_kernel_agree(z):
    assert mix64_py(z) == naive.mix64(z) == int(mix64(np.uint64(z)))


def test_derive_key_separates_streams_runs_and_days():
    keys = {derive_key(seed, stream, run, day)
            for seed in (0, 1) for stream in Stream for run in range(12) for day in range(12)}
    assert len(keys) == 2 * len(Stream) * 12 * 12, "two (seed, stream, run, day) share a key"
    # the tuple structure matters: (run=1, day=2) is not (run=2, day=1) nor (run=12,)
    assert len({derive_key(0, Stream.CHANGE_PICK, 1, 2), derive_key(0, Stream.CHANGE_PICK, 2, 1),
                derive_key(0, Stream.CHANGE_PICK, 12), derive_key(0, Stream.CHANGE_PICK, 1)}) == 4
    assert all(0 <= k < 2**64 for k in keys)


# ---- alias tables --------------------------------------------------------------------------
WEIGHTS = {
    "one": np.array([3.0]),
    "two": np.array([1.0, 3.0]),
    "equal": np.ones(17),
    "zipf-stores": zipf_weights(100, 0.8),
    "zipf-products": zipf_weights(1_000, 1.1),
    "zipf-steep": zipf_weights(5_000, 2.5),
    "one-heavy": np.r_[1e6, np.ones(999)],
    "wide-range": np.logspace(-8, 8, 257),
    "integers": np.arange(1, 65, dtype=np.float64),
}


def _check_alias(weights: np.ndarray) -> None:
    prob, alias = sk.alias_table(weights)
    n = weights.size
    assert prob.shape == (n,) and alias.shape == (n,)
    assert ((alias >= 0) & (alias < n)).all()
    assert ((prob >= 0.0) & (prob <= 1.0 + 1e-12)).all(), prob.min()
    implied = naive.alias_implied_probabilities(prob, alias)
    target = weights / weights.sum()
    # Each column's share is a sum of a few doubles; rounding of the running excess in the
    # Vose loop stays within a few ulps of 1/n per step, hence the n-scaled tolerance.
    np.testing.assert_allclose(implied, target, rtol=0, atol=1e-13 * max(n, 10))


@pytest.mark.parametrize("name", WEIGHTS)
def test_alias_table_implies_exact_probabilities(name):
    _check_alias(WEIGHTS[name])


@HYPOTHESIS
@given(st.lists(st.floats(1e-6, 1e6), min_size=1, max_size=300))
def test_alias_table_implies_exact_probabilities_any_weights(weights):
    _check_alias(np.array(weights))


@pytest.mark.parametrize("name", ["two", "zipf-stores", "integers", "one-heavy"])
def test_alias_draw_on_a_grid_matches_inverse_cdf(name):
    """Feed the same evenly spaced uniforms to alias_draw and to a searchsorted inverse CDF.

    Both map [0, 1) onto the categories by a union of intervals of the exact lengths P(k), so on
    a grid of M points each category's count is M * P(k) up to one point per interval end.
    """
    weights = WEIGHTS[name]
    prob, alias = sk.alias_table(weights)
    m = 200_003
    grid = (np.arange(m) + 0.5) / m
    drawn = np.array([sk.alias_draw(u, prob, alias) for u in grid[::97]])
    assert drawn.tolist() == [naive.alias_draw(u, prob, alias) for u in grid[::97]]
    # the full grid through the vectorised rule (checked equal to the kernel just above)
    x = grid * prob.size
    k = np.minimum(x.astype(np.int64), prob.size - 1)
    alias_counts = np.bincount(np.where(x - k < prob[k], k, alias[k]), minlength=weights.size)
    cum = np.cumsum(weights)
    inverse_counts = np.bincount(np.minimum(np.searchsorted(cum, grid * cum[-1], side="right"),
                                            weights.size - 1), minlength=weights.size)
    intervals = 1 + np.bincount(alias[prob < 1.0], minlength=weights.size)
    exact = m * weights / weights.sum()
    assert (np.abs(alias_counts - exact) <= intervals + 1).all()
    assert (np.abs(inverse_counts - exact) <= 2).all()
    assert naive.searchsorted_draw(weights, 0.0) == 0
    assert naive.searchsorted_draw(weights, 1.0 - 2**-53) == weights.size - 1


# ---- time of day ---------------------------------------------------------------------------
@pytest.mark.parametrize("hours,sigma,weights", [
    ((9.0, 17.0), 2.0, (0.5, 0.5)),
    ((0.5,), 3.0, (1.0,)),
    ((23.0, 6.0, 12.0), 1.0, (1.0, 2.0, 3.0)),
    ((12.0,), 8.0, (1.0,)),
    # A wide sigma (validation accepts any sigma > 0): fastgen wraps only 2 days each way, so
    # for sigma >~ 15 h the mass beyond is dropped unevenly. Known bug, see the report.
    ((12.0,), 30.0, (1.0,)),
])
def test_hour_probabilities_are_the_wrapped_mixture(hours, sigma, weights):
    model = Model(sales=SalesModel(rush_hours=hours, rush_sigma=sigma, rush_weights=weights))
    expected = naive.hour_probabilities(hours, sigma, weights)
    np.testing.assert_allclose(
        hour_probabilities(model), expected, rtol=1e-6, atol=1e-12,
        err_msg=f"hour_probabilities is not the mixture wrapped around 24h (sigma={sigma}): "
                "fastgen/model.py sums only the copies k in -2..2 of each Gaussian")


def test_times_of_day_equal_naive(sim):
    key = np.uint64(derive_key(3, Stream.LATE_TIME, 5))
    rows = np.array([0, 1, 2, 17, 999, 2**20, 2**31 - 1], dtype=np.int64)
    rows = np.r_[rows, np.arange(5_000, 6_000)]
    out = np.empty(rows.size, np.int64)
    day_start = sim.day_start_us(4)
    sk.times_of_day(key, rows, sim.hour_cdf, day_start, out)
    expected = [day_start + naive.time_of_day_us(naive.uniform_at(int(key), int(i)), sim.hour_cdf)
                for i in rows]
    assert out.tolist() == expected
    assert ((out >= day_start) & (out < day_start + naive.US_PER_DAY)).all()


@pytest.mark.parametrize("u", [0.0, 1e-300, 0.5, 1.0 - 2**-53])
def test_time_of_day_edges_stay_inside_the_day(sim, u):
    t = sk.time_of_day_us(u, sim.hour_cdf)
    assert t == naive.time_of_day_us(u, sim.hour_cdf)
    assert 0 <= t < naive.US_PER_DAY


# ---- filling a day -------------------------------------------------------------------------
@pytest.mark.parametrize("run", [0, 1, 9])
def test_fill_range_equals_naive_loops(sim, run):
    got = _fill_range(sim, run, 0, ROWS)
    expected = naive.fill_day(0, ROWS, *_tables(sim, run))
    for name, _ in _COLUMNS:
        assert got[name].tolist() == expected[name], name


def test_fill_range_across_blocks_equals_naive():
    """More rows than one parallel task holds (sk.BLOCK), compared on both sides of a boundary."""
    rows = sk.BLOCK * 2 + 123
    big = Simulation(Model(seed=5, sales=SalesModel(rows_per_day=rows)), START)
    full = _fill_range(big, 2, 0, rows)
    for lo, hi in ((0, 50), (sk.BLOCK - 40, sk.BLOCK + 40), (rows - 60, rows)):
        expected = naive.fill_day(lo, hi, *_tables(big, 2))
        for name, _ in _COLUMNS:
            assert full[name][lo:hi].tolist() == expected[name], (name, lo)


@pytest.fixture(scope="module")
def full_day(sim) -> dict[str, np.ndarray]:
    return _fill_range(sim, 3, 0, ROWS)


@HYPOTHESIS
@given(bounds=st.tuples(st.integers(0, ROWS), st.integers(0, ROWS)))
def test_fill_range_chunk_independence(sim, full_day, bounds):
    start, stop = min(bounds), max(bounds)
    got = _fill_range(sim, 3, start, stop)
    for name, _ in _COLUMNS:
        np.testing.assert_array_equal(got[name], full_day[name][start:stop], err_msg=name)


@HYPOTHESIS
@given(bounds=st.tuples(st.integers(0, ROWS), st.integers(0, ROWS)),
       skip=st.lists(st.integers(0, ROWS - 1), max_size=80, unique=True))
def test_fill_range_skips_listed_rows(sim, full_day, bounds, skip):
    """Rows in ``skip`` (a run's late arrivals) are left out, the others packed in order."""
    start, stop = min(bounds), max(bounds)
    skip = np.array(sorted(i for i in skip if start <= i < stop), dtype=np.int64)
    got = _fill_range(sim, 3, start, stop, skip)
    keep = np.setdiff1d(np.arange(start, stop), skip)
    for name, _ in _COLUMNS:
        np.testing.assert_array_equal(got[name], full_day[name][keep], err_msg=name)


def test_fill_range_skips_across_blocks():
    rows = sk.BLOCK * 2 + 50
    big = Simulation(Model(seed=5, sales=SalesModel(rows_per_day=rows)), START)
    full = _fill_range(big, 1, 0, rows)
    skip = np.array([0, 5, sk.BLOCK - 1, sk.BLOCK, sk.BLOCK + 7, 2 * sk.BLOCK, rows - 1])
    start, stop = 3, rows
    got = _fill_range(big, 1, start, stop, skip[skip >= start])
    keep = np.setdiff1d(np.arange(start, stop), skip)
    for name, _ in _COLUMNS:
        np.testing.assert_array_equal(got[name], full[name][keep], err_msg=name)


@HYPOTHESIS
@given(rows=st.lists(st.integers(0, ROWS - 1), min_size=0, max_size=60, unique=True))
def test_fill_rows_equals_same_rows_of_a_full_fill(sim, full_day, rows):
    rows = np.array(sorted(rows), dtype=np.int64)
    got = _fill_rows(sim, 3, rows)
    for name, _ in _COLUMNS:
        np.testing.assert_array_equal(got[name], full_day[name][rows], err_msg=name)


@pytest.mark.parametrize("run", [0, 1, 30])
def test_sold_at_sorted_and_inside_its_day(sim, run):
    sold = _fill_range(sim, run, 0, ROWS)["sold_at"]
    start = sim.day_start_us(run)
    assert (np.diff(sold) >= 0).all(), "rows of a day are not ordered by sold_at"
    assert sold[0] >= start and sold[-1] < start + naive.US_PER_DAY, "sold_at outside its day"


def test_sold_at_distinct_inside_a_crowded_second():
    """Rank-stratified microseconds: many rows in one second stay ordered and inside it."""
    model = Model(seed=2, sales=SalesModel(rows_per_day=2_000_000, rush_hours=(12.0,),
                                           rush_weights=(1.0,), rush_sigma=0.05))
    crowded = Simulation(model, START)
    counts = np.diff(crowded.second_start(0))
    s = int(counts.argmax())
    assert counts[s] > 100
    lo, hi = crowded.second_start(0)[s], crowded.second_start(0)[s + 1]
    sold = _fill_range(crowded, 0, lo, hi)["sold_at"] - crowded.day_start_us(0)
    assert (np.diff(sold) >= 0).all()
    assert (sold // naive.US_PER_SECOND == s).all()


@pytest.mark.parametrize("run", [0, 4])
def test_amount_is_quantity_times_unit_price(sim, run):
    cols = _fill_range(sim, run, 0, ROWS)
    assert (cols["amount"] == cols["quantity"].astype(np.int64) * cols["unit_price"]).all()
    q = cols["quantity"]
    assert q.min() >= sim.model.sales.quantity_min and q.max() <= sim.model.sales.quantity_max


def test_unit_price_is_a_function_of_product(sim):
    prices: dict[int, int] = {}
    for run in range(4):
        cols = _fill_range(sim, run, 0, ROWS)
        for product, price in zip(cols["product_id"].tolist(), cols["unit_price"].tolist()):
            assert prices.setdefault(product, price) == price, f"product {product} has two prices"
    s = sim.model.sales
    assert all(s.price_min_cents <= p <= s.price_max_cents for p in prices.values())
    # and the same seed gives the same price list, another seed another one
    again = Simulation(Model(seed=11, sales=SalesModel(rows_per_day=10)), START)
    other = Simulation(Model(seed=12, sales=SalesModel(rows_per_day=10)), START)
    np.testing.assert_array_equal(again.prices, sim.prices)
    assert (other.prices != sim.prices).any()


def test_store_and_product_ids_in_catalogue(sim, full_day):
    s = sim.model.sales
    assert full_day["store_id"].min() >= 1 and full_day["store_id"].max() <= s.stores
    assert full_day["product_id"].min() >= 1 and full_day["product_id"].max() <= s.products


# ---- picking rows to change ----------------------------------------------------------------
@pytest.mark.parametrize("p", [1e-4, 0.005, 0.105, 0.5, 0.97, 1.0])
@pytest.mark.parametrize("limit", [0, 1, 10, 5_000])
@pytest.mark.parametrize("key", KEYS[:4])
def test_geometric_positions_equal_python_gap_formula(key, p, limit):
    got = ck.geometric_positions(np.uint64(key), p, limit)
    assert got.dtype == np.int64
    assert got.tolist() == naive.geometric_positions(key, p, limit)


@pytest.mark.parametrize("limit", [0, 7, 1_000])
def test_geometric_positions_edges(limit):
    key = np.uint64(99)
    assert ck.geometric_positions(key, 0.0, limit).size == 0
    assert ck.geometric_positions(key, 1.0, limit).tolist() == list(range(limit))


@pytest.mark.parametrize("p", [1e-12, 1e-17, 1e-19, 1e-25])
def test_geometric_positions_tiny_probability_stay_in_range(p):
    """A tiny rate (e.g. --late-share 1e-20, which validation accepts) must pick nothing here.

    Known bug: the gap floor(log1p(-u) / log1p(-p)) exceeds int64 for p below ~1e-18 and is
    cast to INT64_MIN, so positions come out negative (see the report of tests/test_kernels.py).
    """
    got = ck.geometric_positions(np.uint64(12345), p, 10**6)
    assert ((got >= 0) & (got < 10**6)).all(), (
        f"geometric_positions(p={p}) returned positions outside [0, limit): {got[:4]} "
        "(float gap overflows int64 in fastgen/kernels/changes.py)")
    assert got.size <= 1


@pytest.mark.parametrize("p", [0.01, 0.105, 0.6])
def test_geometric_positions_are_bernoulli(p):
    """Each slot is kept with probability p independently: counts, per-slot rate, gaps."""
    from scipy import stats

    limit, reps = 2_000, 400
    hits = np.zeros(limit)
    total = 0
    gaps = []
    for r in range(reps):
        pos = ck.geometric_positions(np.uint64(derive_key(1, Stream.CHANGE_PICK, r, 0)), p, limit)
        assert (np.diff(pos) > 0).all() and (pos.size == 0 or (pos[0] >= 0 and pos[-1] < limit))
        hits[pos] += 1
        total += pos.size
        # The first few gaps only: a gap still open at ``limit`` is never seen, which would
        # bias a pooled sample of all gaps towards short ones; the first five end far before.
        assert pos.size >= 5
        gaps.append(np.diff(np.r_[-1, pos[:5]]) - 1)
    n = limit * reps
    assert abs(total - n * p) < 5 * math.sqrt(n * p * (1 - p)), (total, n * p)
    # per-slot hit counts in 20 bands of 100 slots: each band ~ Binomial(100 * reps, p)
    bands = hits.reshape(20, -1).sum(axis=1)
    m = (limit // 20) * reps
    chi2 = (((bands - m * p) ** 2) / (m * p * (1 - p))).sum()
    assert stats.chi2.sf(chi2, 20) > 1e-5, "picks are not uniform over slots"
    # failures before a pick are geometric: P(g) = (1-p)^g p, pooled into 12 bins + tail
    g = np.concatenate(gaps)
    top = math.ceil(math.log(0.002) / math.log1p(-p))
    edges = np.unique(np.round(np.linspace(0, top, 13)).astype(np.int64))
    observed = np.bincount(np.searchsorted(edges, g, side="right") - 1, minlength=edges.size)
    cdf = 1 - (1 - p) ** edges  # P(gap < e)
    expected = g.size * np.diff(np.r_[cdf, 1.0])
    assert stats.chisquare(observed, expected).pvalue > 1e-5, "gaps between picks are not geometric"


def test_bernoulli_reference_agrees_in_rate():
    """The obvious O(limit) Bernoulli picker keeps about p of the slots too (sanity of the idea)."""
    p, limit = 0.1, 20_000
    fast = ck.geometric_positions(np.uint64(5), p, limit).size
    slow = len(naive.bernoulli_positions(5, p, limit))
    sigma = math.sqrt(limit * p * (1 - p))
    assert abs(fast - limit * p) < 5 * sigma and abs(slow - limit * p) < 5 * sigma


@pytest.mark.parametrize("delete_given_change,soft_share", [(0.3, 0.5), (0.0, 0.5), (1.0, 0.0),
                                                            (1.0, 1.0)])
def test_replay_of_one_run_equals_naive(sim, full_day, delete_given_change, soft_share):
    """One run of ``replay`` picks like geometric_positions and applies the naive change rule."""
    n, rate = 400, 0.4
    keys = np.array([[derive_key(4, st_, 9, 3) for st_ in
                      (Stream.CHANGE_PICK, Stream.CHANGE_KIND, Stream.CHANGE_TIME,
                       Stream.CHANGE_QUANTITY, Stream.CHANGE_REPEAT, Stream.LATE_COMMIT)]],
                    np.uint64)
    picks = ck.geometric_positions(keys[0, 0], rate, n)
    alive = np.ones(n, np.bool_)
    alive[::37] = False
    is_deleted = np.zeros(n, np.bool_)
    is_deleted[5::41] = True
    cols = {
        "quantity": full_day["quantity"][:n].copy(),
        "unit_price": full_day["unit_price"][:n].copy(),
        "amount": full_day["amount"][:n].copy(), "updated_at": full_day["sold_at"][:n].copy(),
        "version": np.ones(n, np.int32), "is_deleted": is_deleted,
        "deleted_at": np.full(n, np.iinfo(np.int64).min, np.int64),
    }
    rows = [dict(alive=bool(alive[i]), **{k: v[i].item() for k, v in cols.items()})
            for i in range(n)]
    run_start = sim.day_start_us(9)
    positions, kinds = np.empty(n, np.int64), np.empty(n, np.int8)
    before = [np.empty(n, cols[c].dtype) for c in
              ("quantity", "amount", "updated_at", "version", "is_deleted", "deleted_at")]
    count = ck.replay(keys, np.array([run_start]), np.array([n]), np.array([rate]),
                      np.zeros(1, np.bool_), delete_given_change, soft_share, 0.0, 3, 0.0, 0,
                      sim.hour_cdf, 1, 100, np.arange(n, dtype=np.int64), alive,
                      cols["quantity"], cols["unit_price"], cols["amount"], cols["updated_at"],
                      cols["version"], cols["is_deleted"], cols["deleted_at"], positions, kinds,
                      *before)
    expected_kinds = naive.apply_changes(picks.tolist(), picks.tolist(), keys[0, 1:4],
                                         delete_given_change, soft_share, sim.hour_cdf,
                                         run_start, 1, 100, rows)
    changed = [k for k in expected_kinds if k != ck.NO_CHANGE]
    assert kinds[:count].tolist() == changed
    assert positions[:count].tolist() == [p for p, k in zip(picks.tolist(), expected_kinds)
                                          if k != ck.NO_CHANGE]
    assert alive.tolist() == [r["alive"] for r in rows]
    for name, col in cols.items():
        assert col.tolist() == [r[name] for r in rows], name
    assert (cols["amount"] == cols["quantity"].astype(np.int64) * cols["unit_price"]).all()


_RUN_STREAMS = (Stream.CHANGE_PICK, Stream.CHANGE_KIND, Stream.CHANGE_TIME,
                Stream.CHANGE_QUANTITY, Stream.CHANGE_REPEAT, Stream.LATE_COMMIT)


@pytest.mark.parametrize("same_day", [False, True], ids=["history", "same-day"])
@pytest.mark.parametrize("delete_given_change,soft_share,max_changes",
                         [(0.3, 0.5, 3), (0.1, 1.0, 2), (0.0, 0.5, 3)])
def test_replay_of_one_stressed_run_equals_naive(sim, full_day, same_day, delete_given_change,
                                                 soft_share, max_changes):
    """Stress modes in one run of ``replay``: repeats after an update, late commits (a run
    changing history) or times after the row's own (a run changing its new day), as the
    naive rule says, with every change captured in time order (several per row)."""
    n, rate, repeat_share, late_share = 600, 0.5, 0.7, 0.5
    late_max_us = 6 * naive.US_PER_HOUR
    run = 3 if same_day else 4  # the rows are day 3's; run 4 starts right after them
    keys = np.array([[derive_key(4, st_, run, 3) for st_ in _RUN_STREAMS]], np.uint64)
    run_start = sim.day_start_us(run)
    day_end = run_start + naive.US_PER_DAY
    alive = np.ones(n, np.bool_)
    alive[::37] = False
    is_deleted = np.zeros(n, np.bool_)
    is_deleted[5::41] = True
    updated_at = full_day["sold_at"][:n].copy()
    # Rows whose time leaves little or no room: the day's last microseconds (same-day
    # changes and repeats skip them), just before the run's day (late commits clamp).
    updated_at[-60:] = day_end - 1 - np.arange(60) % 3 if same_day else \
        run_start - 1 - np.arange(60) * 1000
    cols = {
        "quantity": full_day["quantity"][:n].copy(),
        "unit_price": full_day["unit_price"][:n].copy(),
        "amount": full_day["amount"][:n].copy(), "updated_at": updated_at,
        "version": np.ones(n, np.int32), "is_deleted": is_deleted,
        "deleted_at": np.where(is_deleted, updated_at, np.iinfo(np.int64).min),
    }
    rows = [dict(alive=bool(alive[i]), **{k: v[i].item() for k, v in cols.items()})
            for i in range(n)]
    size = n * max_changes
    positions, kinds = np.empty(size, np.int64), np.empty(size, np.int8)
    before = [np.empty(size, cols[c].dtype) for c in naive.CHANGING]
    count = ck.replay(keys, np.array([run_start]), np.array([n]), np.array([rate]),
                      np.array([same_day]), delete_given_change, soft_share, repeat_share,
                      max_changes, late_share, late_max_us, sim.hour_cdf, 1, 100,
                      np.arange(n, dtype=np.int64), alive, cols["quantity"], cols["unit_price"],
                      cols["amount"], cols["updated_at"], cols["version"], cols["is_deleted"],
                      cols["deleted_at"], positions, kinds, *before)

    picks = naive.geometric_positions(int(keys[0, 0]), rate, n)
    log: list[naive.Change] = []
    naive.apply_changes(picks, picks, keys[0, 1:4], delete_given_change, soft_share,
                        sim.hour_cdf, run_start, 1, 100, rows, same_day=same_day,
                        repeat_key=keys[0, 4], repeat_share=repeat_share,
                        max_changes=max_changes, late_key=keys[0, 5], late_share=late_share,
                        late_max_us=late_max_us, log=log)
    assert positions[:count].tolist() == [c.position for c in log]
    assert kinds[:count].tolist() == [c.kind for c in log]
    for name, got in zip(naive.CHANGING, before):
        assert got[:count].tolist() == [c.before[name] for c in log], name
    assert alive.tolist() == [r["alive"] for r in rows]
    for name, col in cols.items():
        assert col.tolist() == [r[name] for r in rows], name

    # The case is not vacuous: rows changed max_changes times, times kept in order inside
    # the run's day, rows skipped for want of time, late commits (some clamped).
    per_row: dict[int, list[naive.Change]] = {}
    for change in log:
        per_row.setdefault(change.position, []).append(change)
    assert max(len(c) for c in per_row.values()) == max_changes
    for changes in per_row.values():
        times = [c.before["updated_at"] for c in changes] + [changes[-1].at]
        assert times == sorted(set(times)), "a row's changes in one run are not in time order"
        assert all(k == ck.UPDATE for k in [c.kind for c in changes][:-1])
    assert all(c.at < day_end for c in log)
    if same_day:
        assert all(c.at >= run_start for c in log)
        skipped = [p for p in picks if p >= n - 60 and rows[p]["alive"]
                   and not rows[p]["is_deleted"] and p not in per_row]
        assert skipped, "no picked row was left alone for want of time"
    else:
        firsts = [c[0] for c in per_row.values()]
        late = [c for c in firsts if c.at < run_start]
        assert late and any(c.at == c.before["updated_at"] + 1 for c in late)
        assert len(late) < len(firsts)


# ---- replaying a day's history -------------------------------------------------------------
# Stress modes in the partition test: --stress's rates, and heavier ones whose late commits
# reach back past the day before (clamped at the row's updated_at).
_STRESSED = {"plain": StressModel(), "stress": STRESS,
             "heavy": StressModel(repeat_share=0.5, same_day_share=0.2, late_commit_share=0.4,
                                  late_commit_max_hours=30.0)}


@pytest.mark.parametrize("stress", list(_STRESSED.values()), ids=list(_STRESSED))
@pytest.mark.parametrize("day,run", [(0, 9), (3, 14), (8, 12), (11, 14)])
def test_partition_changes_equal_naive_replay(day, run, stress):
    """The state of a day after a run, from fastgen, equals a row-by-row replay in Python.

    The unchanged rows (on-time and late) come from the same model with changes (and the
    stress modes that change rows) switched off; then every run that changes the day picks
    slots by geometric gaps over the rows that existed before it (the day's own rows, holes
    included, then late rows in sale_id order) and applies the change rule to each live row
    picked. With same_day_share, the day's own run comes first: it picks its on-time rows at
    that rate.
    """
    changes = ChangeModel(update_rate=0.2, delete_rate=0.05, soft_delete_share=0.4,
                          late_share=0.05)
    rows = 2_000
    model = Model(seed=21, sales=SalesModel(rows_per_day=rows), changes=changes, stress=stress)
    sim = Simulation(model, START)
    # Schema evolution (channel) stays: it is not a change, and the rows must carry it.
    frozen = Simulation(dataclasses.replace(
        model, stress=dataclasses.replace(stress, repeat_share=0.0, same_day_share=0.0,
                                          late_commit_share=0.0),
        changes=dataclasses.replace(changes, update_rate=0.0, delete_rate=0.0)), START)
    base = naive.ints(frozen.partition(day, run)).sort("sale_id")
    records = [dict(row, alive=True) for row in base.to_dicts()]
    first_id = day * rows + 1
    late_ids = [r["sale_id"] for r in records if r["sale_id"] >= first_id + rows]
    slot_of_row = [r["sale_id"] - first_id if r["sale_id"] < first_id + rows
                   else rows + late_ids.index(r["sale_id"]) for r in records]
    born = [(i - 1) // rows for i in late_ids]
    runs = []
    for r in range(day, run + 1):
        same_day = r == day
        if same_day and stress.same_day_share == 0 or \
                not same_day and day not in sim.chosen_days(r).tolist():
            continue
        keys = [derive_key(model.seed, stream, r, day) for stream in _RUN_STREAMS]
        runs.append(naive.Run(*keys[:4], sim.day_start_us(r), rows + sum(b < r for b in born),
                              *keys[4:], stress.same_day_share if same_day else None, same_day))
    assert any(not r.same_day for r in runs), "the day was never changed; pick another (day, run)"
    rate = changes.update_rate + changes.delete_rate
    logs: list[list[naive.Change]] = []
    kinds = naive.replay_day(records, slot_of_row, runs, rate, changes.delete_rate / rate,
                             changes.soft_share, sim.hour_cdf, 1, 100,
                             repeat_share=stress.repeat_share, late_share=stress.late_commit_share,
                             late_max_us=round(stress.late_commit_max_hours * naive.US_PER_HOUR),
                             logs=logs)
    assert sum(len(k) for k in kinds) > 0
    if stress.repeat_share and stress.same_day_share and stress.late_commit_share:
        # each mode did something here
        assert runs[0].same_day and kinds[0], "no same-day change"
        assert any(a.position == b.position for log in logs for a, b in zip(log, log[1:])), \
            "no row changed twice in a run"
        late = [c for run_, log in zip(runs, logs) for c in log if c.at < run_.start_us]
        assert late, "no late commit"
        if stress.late_commit_max_hours > 24:
            assert any(c.at == c.before["updated_at"] + 1 for c in late), "none clamped"
    expected = [{k: v for k, v in r.items() if k != "alive"} for r in records if r["alive"]]
    got = naive.ints(sim.partition(day, run)).sort("sale_id").to_dicts()
    assert len(got) == len(expected)
    assert got == expected, f"partition({day}, {run}) differs from the naive replay"
