"""Goodness of fit, with fixed seeds, of every statistical claim of the model.

Tolerances come from the sampling error, never from a past run: chi-square tests must not
reject at ALPHA, and counts must lie within SIGMAS binomial standard errors of their
expectation (5 sigma, a two-sided level of about 6e-7 per check). The seeds are fixed, so a
test either always passes or always fails; a failure means the model, not bad luck.
"""

from __future__ import annotations

import math
from datetime import date

import numpy as np
import pytest
from scipy import stats

from fastgen import ChangeModel, Model, SalesModel, Simulation
from fastgen.kernels import changes as ck
from fastgen.model import hour_probabilities

try:
    from tests import naive
except ImportError:  # tests/ is not a package: pytest puts it on sys.path itself
    import naive

START = date(2025, 9, 1)
ALPHA = 1e-6
SIGMAS = 5.0
US_PER_MINUTE = 60 * naive.US_PER_SECOND


def chisquare_pooled(observed, expected, min_expected: float = 5.0) -> float:
    """Chi-square p-value after pooling, in order, cells expected to hold < min_expected."""
    observed = np.asarray(observed, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert abs(observed.sum() - expected.sum()) < 1e-6 * expected.sum()
    obs, exp, o, e = [], [], 0.0, 0.0
    for oi, ei in zip(observed, expected):
        o, e = o + oi, e + ei
        if e >= min_expected:
            obs.append(o)
            exp.append(e)
            o, e = 0.0, 0.0
    if e > 0:  # the leftover tail joins the last cell
        obs[-1] += o
        exp[-1] += e
    return float(stats.chisquare(obs, exp).pvalue)


def assert_binomial(count: int, trials: int, p: float, what: str) -> None:
    sigma = math.sqrt(trials * p * (1 - p))
    assert abs(count - trials * p) <= SIGMAS * max(sigma, 1.0), (
        f"{what}: {count} of {trials} ({count / max(trials, 1):.5f}), expected p={p} "
        f"+- {SIGMAS} sigma = {SIGMAS * sigma / max(trials, 1):.5f}")


# ---- one large day ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def big_day() -> tuple[Simulation, dict[str, np.ndarray]]:
    sim = Simulation(Model(seed=20250901, sales=SalesModel(rows_per_day=1_000_000)), START)
    frame = sim.day(0)
    cols = {
        "us": frame["sold_at"].dt.epoch("us").to_numpy() - sim.day_start_us(0),
        "store": frame["store_id"].to_numpy(),
        "product": frame["product_id"].to_numpy(),
        "quantity": frame["quantity"].to_numpy(),
    }
    return sim, cols


def test_big_day_has_its_rows(big_day):
    sim, cols = big_day
    assert cols["us"].size == 1_000_000
    assert cols["us"].min() >= 0 and cols["us"].max() < naive.US_PER_DAY


def test_hour_of_day_follows_rush_hour_mixture(big_day):
    sim, cols = big_day
    observed = np.bincount(cols["us"] // naive.US_PER_HOUR, minlength=24)
    p = hour_probabilities(sim.model)
    np.testing.assert_allclose(p, naive.hour_probabilities((9.0, 17.0), 2.0, (0.5, 0.5)),
                               rtol=1e-9, atol=1e-15)
    n = cols["us"].size
    assert chisquare_pooled(observed, n * p) > ALPHA
    # and the test has power: a single peak, or peaks an hour off, are rejected outright
    assert chisquare_pooled(observed, n * naive.hour_probabilities((13.0,), 4.0, (1.0,))) < 1e-30
    assert chisquare_pooled(observed, n * naive.hour_probabilities((10.0, 18.0), 2.0,
                                                                   (0.5, 0.5))) < 1e-30
    # the two rush hours are the two modes
    assert set(np.argsort(observed)[-2:]) <= {8, 9, 16, 17}


@pytest.mark.parametrize("unit,period,name", [
    (US_PER_MINUTE, 60, "minute of the hour"),
    (naive.US_PER_SECOND, 60, "second of the minute"),
    (10_000, 100, "hundredth of the second"),
])
def test_time_uniform_below_the_hour(big_day, unit, period, name):
    sim, cols = big_day
    observed = np.bincount((cols["us"] // unit) % period, minlength=period)
    assert chisquare_pooled(observed, np.full(period, cols["us"].size / period)) > ALPHA, name


def test_minutes_uniform_inside_each_busy_hour(big_day):
    """Joint (hour, minute) cells against P(hour) / 60, for hours busy enough to test."""
    sim, cols = big_day
    p = hour_probabilities(sim.model)
    n = cols["us"].size
    cells = np.bincount(cols["us"] // US_PER_MINUTE, minlength=24 * 60).reshape(24, 60)
    busy = n * p / 60 >= 20
    assert busy.sum() >= 12
    observed = cells[busy].ravel()
    expected = np.repeat(n * p[busy] / 60, 60)
    expected *= observed.sum() / expected.sum()  # condition on the busy hours' total
    assert stats.chisquare(observed, expected).pvalue > ALPHA


@pytest.mark.parametrize("column,size,skew,wrong_skew", [
    ("store", 100, 0.8, 1.0),
    ("product", 1_000, 1.1, 1.0),
])
def test_store_and_product_follow_zipf(big_day, column, size, skew, wrong_skew):
    sim, cols = big_day
    values = cols[column]
    assert values.min() >= 1 and values.max() <= size
    observed = np.bincount(values - 1, minlength=size)
    n = values.size
    assert chisquare_pooled(observed, n * naive.zipf_probabilities(size, skew)) > ALPHA
    # power: a neighbouring exponent is rejected
    assert chisquare_pooled(observed, n * naive.zipf_probabilities(size, wrong_skew)) < 1e-30
    # the most popular is rank 1 and its share is within 5 sigma of p_1
    p1 = naive.zipf_probabilities(size, skew)[0]
    assert_binomial(int(observed[0]), n, p1, f"share of {column} 1")


def test_quantity_uniform(big_day):
    sim, cols = big_day
    observed = np.bincount(cols["quantity"], minlength=101)
    assert observed[0] == 0
    assert chisquare_pooled(observed[1:], np.full(100, cols["quantity"].size / 100)) > ALPHA


def test_unit_prices_log_uniform_between_bounds():
    sim = Simulation(Model(seed=3, sales=SalesModel(rows_per_day=10, products=4_000)), START)
    s = sim.model.sales
    assert sim.prices.min() >= s.price_min_cents and sim.prices.max() <= s.price_max_cents
    lo, hi = math.log(s.price_min_cents), math.log(s.price_max_cents)
    x = (np.log(sim.prices) - lo) / (hi - lo)
    assert stats.kstest(x, "uniform").pvalue > ALPHA


# ---- which days change ---------------------------------------------------------------------
CHOICE_CASES = {
    # name: (change model, history H)
    "defaults-H20": (ChangeModel(), 20),
    "defaults-H45": (ChangeModel(), 45),
    "defaults-H90": (ChangeModel(), 90),
    "custom-H30": (ChangeModel(sigmoid_steepness=0.5, sigmoid_switch_days=10,
                               sigmoid_recent_days=4), 30),
}
SEEDS = 3_000


@pytest.fixture(scope="module")
def choice_counts() -> dict[str, np.ndarray]:
    """How often each day position is changed, over SEEDS seeds, per case."""
    counts = {name: np.zeros(h, np.int64) for name, (_, h) in CHOICE_CASES.items()}
    models = {}
    for name, (changes, h) in CHOICE_CASES.items():
        models.setdefault(changes, []).append((name, h))
    for changes, cases in models.items():
        for seed in range(SEEDS):
            sim = Simulation(Model(seed=seed, sales=SalesModel(rows_per_day=10, products=10,
                                                               stores=10), changes=changes), START)
            for name, h in cases:
                days = sim.chosen_days(h)
                assert (np.diff(days) > 0).all(), "chosen days are not distinct and sorted"
                assert days.size == 0 or (days[0] >= 0 and days[-1] < h)
                counts[name][days] += 1
    return counts


@pytest.mark.parametrize("name", CHOICE_CASES)
def test_chosen_days_follow_sigmoid(choice_counts, name):
    """P(day at position p is changed in run H) = 1 - (1 - w_p / W) ** int(midpoint)."""
    changes, h = CHOICE_CASES[name]
    expected, draws = naive.chosen_day_probabilities(h, changes.sigmoid_steepness,
                                                     changes.sigmoid_switch_days,
                                                     changes.sigmoid_recent_days)
    assert draws > 0
    observed = choice_counts[name]
    for p in range(h):
        assert_binomial(int(observed[p]), SEEDS, float(expected[p]), f"{name}: day {p} chosen")
    # newer days change more: the newest quarter is chosen far more often than the oldest
    q = max(h // 4, 1)
    assert observed[-q:].mean() > 2 * observed[:q].mean()
    # and the number of distinct days changed per run has the exact mean sum_p P_p
    total = observed.sum()
    mean = expected.sum()
    assert abs(total / SEEDS - mean) < SIGMAS * math.sqrt(draws / SEEDS) + 1e-9


def test_no_days_change_without_history():
    sim = Simulation(Model(seed=1, sales=SalesModel(rows_per_day=10)), START)
    assert sim.chosen_days(0).size == 0
    assert sim.chosen_days(1).size == 0  # one earlier day: midpoint 0.5, int(0.5) = 0 draws
    assert sim.chosen_days(2).size == 1
    off = Simulation(Model(seed=1, sales=SalesModel(rows_per_day=10),
                           changes=ChangeModel(update_rate=0.0, delete_rate=0.0)), START)
    assert all(off.chosen_days(r).size == 0 for r in range(40))


# ---- what a changed day undergoes ----------------------------------------------------------
def _walk_changes(sim: Simulation, runs: int) -> dict[str, int]:
    """Advance every day run by run; tally live rows of chosen days and what each run did.

    Also asserts that a run changes no row of a day it did not choose.
    """
    tally = dict(live=0, updates=0, soft=0, hard=0)
    parts = {}
    for run in range(runs):
        chosen = set(sim.chosen_days(run).tolist())
        for day, day_parts in parts.items():
            for part in day_parts:
                live = int((part.alive & ~part.columns["is_deleted"]).sum())
                n = part.alive.size
                before = (part.alive.copy(), part.columns["version"].copy())
                captured = part.advance(sim, run, capture=True).get(run)
                if day not in chosen:
                    assert captured is None or captured.kinds.size == 0, (run, day)
                    # late rows may join at the end; no row already there may change
                    assert (part.alive[:n] == before[0]).all(), (run, day)
                    assert (part.columns["version"][:n] == before[1]).all(), (run, day)
                    continue
                tally["live"] += live
                if captured is not None:
                    kinds = captured.kinds
                    tally["updates"] += int((kinds == ck.UPDATE).sum())
                    tally["soft"] += int((kinds == ck.SOFT_DELETE).sum())
                    tally["hard"] += int((kinds == ck.HARD_DELETE).sum())
        parts[run] = [sim.new_part(run, k) for k in range(sim.parts())]
    return tally


CHANGE_CASES = {
    # name: (change model, rows per day, runs)
    "defaults": (ChangeModel(), 20_000, 24),
    "busy-mixed": (ChangeModel(update_rate=0.3, delete_rate=0.05, soft_delete_share=0.3,
                               late_share=0.05), 4_000, 20),
    "soft-only": (ChangeModel(update_rate=0.05, delete_rate=0.1, delete_mode="soft"), 4_000, 16),
    "hard-only": (ChangeModel(update_rate=0.05, delete_rate=0.1, delete_mode="hard"), 4_000, 16),
}


@pytest.mark.parametrize("name", CHANGE_CASES)
def test_update_and_delete_rates_among_live_rows(name):
    """Each live row of a changed day: updated with update_rate, deleted with delete_rate.

    Deletes split into soft and hard by the delete mode (mixed: soft_delete_share soft).
    """
    changes, rows, runs = CHANGE_CASES[name]
    sim = Simulation(Model(seed=77, sales=SalesModel(rows_per_day=rows), changes=changes), START)
    tally = _walk_changes(sim, runs)
    live = tally["live"]
    assert live > 20 * rows, "too few changed days to test anything"
    assert_binomial(tally["updates"], live, changes.update_rate, f"{name}: updates per live row")
    deletes = tally["soft"] + tally["hard"]
    assert_binomial(deletes, live, changes.delete_rate, f"{name}: deletes per live row")
    assert_binomial(tally["soft"], deletes, changes.soft_share, f"{name}: soft share of deletes")
    if changes.delete_mode == "soft":
        assert tally["hard"] == 0
    if changes.delete_mode == "hard":
        assert tally["soft"] == 0


# ---- late-arriving rows --------------------------------------------------------------------
LATE_CASES = {
    "defaults": ChangeModel(),
    "three-days-flat": ChangeModel(late_share=0.03, late_max_days=3, late_decay=0.8),
}


@pytest.mark.parametrize("name", LATE_CASES)
def test_late_share_and_lateness(name):
    """A share late_share of each run's new rows is late, k days with P(k) ~ decay**(k-1).

    Early runs cannot go back further than day 0, so run r has at most min(max, r) days.
    """
    changes = LATE_CASES[name]
    rows, runs = 100_000, 16
    sim = Simulation(Model(seed=5, sales=SalesModel(rows_per_day=rows), changes=changes), START)
    assert sim.late(0)[0].size == 0, "run 0 has no earlier day to be late for"
    late_total = 0
    observed = np.zeros(changes.late_max_days, np.int64)
    expected = np.zeros(changes.late_max_days)
    for run in range(1, runs):
        late_rows, days = sim.late(run)
        assert (np.diff(late_rows) > 0).all() and late_rows.min() >= 0 and late_rows.max() < rows
        top = min(changes.late_max_days, run)
        assert days.min() >= 1 and days.max() <= top
        late_total += late_rows.size
        observed += np.bincount(days - 1, minlength=changes.late_max_days)
        expected[:top] += late_rows.size * naive.lateness_probabilities(top, changes.late_decay)
    assert_binomial(late_total, rows * (runs - 1), changes.late_share, f"{name}: late share")
    assert chisquare_pooled(observed, expected) > ALPHA, (observed, expected.round())
    if name == "defaults":  # "mostly 1-3 days": 8/9.. of the mass
        assert observed[:3].sum() > 0.85 * observed.sum()


def test_late_rows_are_uniform_among_the_runs_rows():
    """Any row of a run is as likely to be late: late rows spread evenly over the run's rows."""
    rows = 100_000
    sim = Simulation(Model(seed=8, sales=SalesModel(rows_per_day=rows),
                           changes=ChangeModel(late_share=0.02)), START)
    picked = np.concatenate([sim.late(r)[0] for r in range(1, 11)])
    observed = np.bincount(picked * 20 // rows, minlength=20)
    assert chisquare_pooled(observed, np.full(20, picked.size / 20)) > ALPHA
