"""Frozen, typed options of the model and of the output, validated once at the edge.

Every number of the simulation lives here with its default and where the default comes from;
the limit each value must keep lives in ``fastgen.limits`` (issue 8). A
``Model`` is stored in ``fastgen.json``; two datasets with equal ``Model`` values contain the
same bytes (DESIGN.md section 2).
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from dataclasses import dataclass, field
from typing import Any, Literal

DeleteMode = Literal["soft", "hard", "mixed"]
OutputFormat = Literal["parquet", "csv"]

from fastgen.limits import (
    INT32_MAX,
    MAX_ROWS_PER_DAY,
    MAX_ROWS_IN_MEMORY,
    MAX_STORES,
    MAX_PRODUCTS,
    MAX_SKEW,
    MAX_RUSH_PEAKS,
    MAX_RUSH_SIGMA_HOURS,
    MAX_QUANTITY,
    PRICE_MAX_CENTS,
    AMOUNT_MAX_CENTS,
    MAX_STEEPNESS,
    SEED_LIMIT,
    MAX_LATE_DAYS,
    FIRST_START,
    LAST_DAY,
    MAX_HISTORY_DAYS,
    MAX_LATE_COMMIT_HOURS,
)


class ConfigError(ValueError):
    """An option a user gave is invalid; the message is one sentence naming it."""


@dataclass(frozen=True, kw_only=True)
class SalesModel:
    """How one day of new sales is drawn (DESIGN.md section 1)."""

    rows_per_day: int = 1_000_000
    # Rush hours: the original generator's peaks at 9h and 17h with sigma 2h, equal weights.
    rush_hours: tuple[float, ...] = (9.0, 17.0)
    rush_sigma: float = 2.0
    rush_weights: tuple[float, ...] = (0.5, 0.5)
    stores: int = 100
    products: int = 1_000
    # Zipf exponents: rank k has weight k**-skew. 1.0 is classic Zipf; stores are flatter.
    store_skew: float = 0.8
    product_skew: float = 1.1
    quantity_min: int = 1
    quantity_max: int = 100
    # Unit prices are log-uniform between these bounds, in cents, fixed per product.
    price_min_cents: int = 100
    price_max_cents: int = 50_000

    def validate(self) -> None:
        """Raise ConfigError naming the first option out of its range."""
        _integer("rows-per-day", self.rows_per_day, 1, MAX_ROWS_PER_DAY)
        for flag, values in (("rush-hours", self.rush_hours), ("rush-weights", self.rush_weights)):
            if not isinstance(values, tuple) or not 1 <= len(values) <= MAX_RUSH_PEAKS:
                raise ConfigError(f"--{flag} must be a tuple of 1 to {MAX_RUSH_PEAKS} numbers, "
                                  f"got {values!r}.")
        if len(self.rush_hours) != len(self.rush_weights):
            raise ConfigError("--rush-hours and --rush-weights must have the same length.")
        for hour in self.rush_hours:
            _number("rush-hours", hour, 0.0, 24.0, high_open=True)
        for weight in self.rush_weights:
            _number("rush-weights", weight, 0.0, math.inf, low_open=True, high_open=True)
        if not math.isfinite(sum(map(float, self.rush_weights))):  # the model divides by it
            raise ConfigError(f"--rush-weights must have a finite sum, got {self.rush_weights!r}.")
        _number("rush-sigma", self.rush_sigma, 0.0, MAX_RUSH_SIGMA_HOURS, low_open=True)
        _integer("stores", self.stores, 1, MAX_STORES)
        _integer("products", self.products, 1, MAX_PRODUCTS)
        _number("store-skew", self.store_skew, 0.0, MAX_SKEW)
        _number("product-skew", self.product_skew, 0.0, MAX_SKEW)
        for low, high, largest in (("quantity-min", "quantity-max", MAX_QUANTITY),
                                   ("price-min-cents", "price-max-cents", PRICE_MAX_CENTS)):
            lo, hi = (getattr(self, flag.replace("-", "_")) for flag in (low, high))
            _integer(low, lo, 1, largest)
            _integer(high, hi, 1, largest)
            if lo > hi:
                raise ConfigError(f"--{low} {lo} exceeds --{high} {hi}.")
        if self.quantity_max * self.price_max_cents > AMOUNT_MAX_CENTS:
            raise ConfigError(f"--quantity-max {self.quantity_max} times --price-max-cents "
                              f"{self.price_max_cents} exceeds {AMOUNT_MAX_CENTS} cents, the "
                              "largest amount its decimal(12, 2) column holds.")


@dataclass(frozen=True, kw_only=True)
class ChangeModel:
    """How each run changes history (DESIGN.md section 1, issue 3)."""

    # The original generator: midpoint H/2 while H < 60, else H - 30; steepness 0.2.
    sigmoid_steepness: float = 0.2
    sigmoid_switch_days: int = 60
    sigmoid_recent_days: int = 30
    update_rate: float = 0.10
    delete_rate: float = 0.005
    delete_mode: DeleteMode = "mixed"
    soft_delete_share: float = 0.5
    late_share: float = 0.01
    late_max_days: int = 7
    # P(lateness = k) is proportional to late_decay**(k-1): 1-3 days hold 88% at 0.5.
    late_decay: float = 0.5

    def validate(self) -> None:
        """Raise ConfigError naming the first option out of its range."""
        _number("sigmoid-steepness", self.sigmoid_steepness, 0.0, MAX_STEEPNESS, low_open=True)
        _integer("sigmoid-switch-days", self.sigmoid_switch_days, 0, MAX_HISTORY_DAYS)
        _integer("sigmoid-recent-days", self.sigmoid_recent_days, 0, MAX_HISTORY_DAYS)
        for flag, value in (("update-rate", self.update_rate), ("delete-rate", self.delete_rate),
                            ("soft-delete-share", self.soft_delete_share),
                            ("late-share", self.late_share)):
            _number(flag, value, 0.0, 1.0)
        if self.update_rate + self.delete_rate > 1:
            raise ConfigError("--update-rate plus --delete-rate must not exceed 1.")
        mode = self.delete_mode
        if not isinstance(mode, str) or mode not in ("soft", "hard", "mixed"):
            raise ConfigError(f"--delete-mode must be soft, hard or mixed, got {mode!r}.")
        _integer("late-max-days", self.late_max_days, 1, MAX_LATE_DAYS)
        _number("late-decay", self.late_decay, 0.0, 1.0, low_open=True)

    @property
    def soft_share(self) -> float:
        """Share of deletes that are soft, after the delete mode."""
        return {"soft": 1.0, "hard": 0.0, "mixed": self.soft_delete_share}[self.delete_mode]


@dataclass(frozen=True, kw_only=True)
class StressModel:
    """Source behaviours that break real loaders (issue 13, README "Stress modes"); each is
    off at 0, and a model with all of them off makes the bytes it made before they existed."""

    # After a change, another one to the same row later the same day, with this probability
    # (up to MAX_CHANGES_PER_RUN changes of a row in one run; none after a delete).
    repeat_share: float = 0.0
    # Share of a run's new (on-time) rows changed again on the day they were made.
    same_day_share: float = 0.0
    # Share of a run's changes to history committed late: their updated_at lies up to
    # late_commit_max_hours before the run's day (a long transaction), never before the
    # row's previous updated_at.
    late_commit_share: float = 0.0
    late_commit_max_hours: float = 6.0
    # Schema evolution: from this run on (0: never) the source has a nullable column
    # ``channel`` (fastgen.schema.CHANNELS); rows made before it, and this share of the rows
    # made after, have none.
    schema_change_run: int = 0
    channel_null_share: float = 0.2
    # At-least-once delivery: this share of a run's feed rows is delivered again, unchanged
    # (same lsn), at the end of the next run's feed.
    redelivery_share: float = 0.0
    # Late events: the events of this share of the sales a run changes (all of a sale's
    # changes in the run, kept in order) are held back and delivered at the end of the next
    # run's feed, after newer changes (fastgen.json omits it at 0: it came after the others).
    late_event_share: float = 0.0

    def validate(self) -> None:
        for flag, value in (("repeat-share", self.repeat_share),
                            ("same-day-share", self.same_day_share),
                            ("late-commit-share", self.late_commit_share),
                            ("redelivery-share", self.redelivery_share),
                            ("late-event-share", self.late_event_share)):
            _number(flag, value, 0.0, 1.0)
        _number("late-commit-max-hours", self.late_commit_max_hours, 0.0,
                MAX_LATE_COMMIT_HOURS, low_open=True)
        _integer("schema-change-run", self.schema_change_run, 0, MAX_HISTORY_DAYS)
        _number("channel-null-share", self.channel_null_share, 0.0, 1.0)

    @property
    def on(self) -> bool:
        """Whether any mode is on (then the feed carries its position, ``lsn``)."""
        return self != StressModel(late_commit_max_hours=self.late_commit_max_hours,
                                   channel_null_share=self.channel_null_share)

    def has_channel(self, run: int) -> bool:
        """Whether the source has the column ``channel`` in run ``run`` (schema evolution)."""
        return 0 < self.schema_change_run <= run


# What ``--stress`` turns on (README "Stress modes").
STRESS = StressModel(repeat_share=0.2, same_day_share=0.05, late_commit_share=0.05,
                     late_commit_max_hours=6.0, schema_change_run=3, channel_null_share=0.2,
                     redelivery_share=0.05, late_event_share=0.05)


@dataclass(frozen=True, kw_only=True)
class Model:
    """Everything the bytes of a dataset depend on, apart from the start date."""

    seed: int = 0
    sales: SalesModel = field(default_factory=SalesModel)
    changes: ChangeModel = field(default_factory=ChangeModel)
    stress: StressModel = field(default_factory=StressModel)
    # Rows of one day per file (two 2**20-row groups); also the unit held in memory while
    # writing, at about 90 B a row, which keeps a 50M-row day under 1 GB of RSS.
    rows_per_file: int = 2_097_152

    def validate(self) -> Model:
        """Check every option (ConfigError naming the first bad one); return self."""
        _integer("seed", self.seed, 0, SEED_LIMIT - 1)
        for name, kind in (("sales", SalesModel), ("changes", ChangeModel),
                           ("stress", StressModel)):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(f"Model.{name} must be a {kind.__name__}, "
                                  f"got {type(getattr(self, name)).__name__}.")
        self.sales.validate()
        self.changes.validate()
        self.stress.validate()
        _integer("rows-per-file", self.rows_per_file, 1, INT32_MAX)
        if min(self.rows_per_file, self.sales.rows_per_day) > MAX_ROWS_IN_MEMORY:
            raise ConfigError(f"--rows-per-file (or --rows-per-day, if smaller) must be at most "
                              f"{MAX_ROWS_IN_MEMORY}: a file's rows are held in memory at once.")
        return self

    def to_json(self) -> dict[str, Any]:
        """As fastgen.json stores it: without ``stress`` when every mode is off, as before
        the modes existed, and without ``late_event_share`` at 0, as before it existed."""
        out = dataclasses.asdict(self)
        if self.stress == StressModel():
            del out["stress"]
        elif not self.stress.late_event_share:
            del out["stress"]["late_event_share"]
        return out

    def differences(self, other: Model) -> list[str]:
        """Dotted names of the options whose values differ, e.g. ``sales.rows_per_day``."""
        mine, theirs = _flatten(self.to_json()), _flatten(other.to_json())
        return [name for name in mine if mine[name] != theirs.get(name)]

    @classmethod
    def from_json(cls, data: Any) -> Model:
        """The stored model of ``fastgen.json``, validated; every key must be there, no other."""
        return _from_json(cls, data, "").validate()


def check_calendar(start: datetime.date, first_run: int, days: int) -> None:
    """Raise ConfigError unless runs ``first_run .. first_run + days - 1`` from ``start`` fit.

    Run *r* makes the day ``start + r``; every day must lie in FIRST_START .. LAST_DAY.
    """
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        raise ConfigError(f"--days must be at least 1, got {days!r}.")
    if not isinstance(first_run, int) or isinstance(first_run, bool) or first_run < 0:
        raise ConfigError(f"the first run must be a whole number >= 0, got {first_run!r}.")
    if start < FIRST_START:
        raise ConfigError(f"--start-date {start} is before {FIRST_START}, the earliest start "
                          "fastgen supports (older dates read differently in some targets).")
    if start.toordinal() + first_run + days - 1 > LAST_DAY.toordinal():
        after = f" after {first_run} runs" if first_run else ""
        raise ConfigError(f"--days {days}{after} from {start} runs past {LAST_DAY}, the last "
                          "day a timestamp column can hold.")


# Keys fastgen.json may lack, as files written before them do: every stress mode off, and
# late events off in a stressed dataset made before they existed.
_OPTIONAL = {(Model, "stress"), (StressModel, "late_event_share")}


def _from_json(cls: type, data: Any, prefix: str) -> Any:
    """``cls`` from a JSON object with exactly its fields; nested dataclasses and tuples too."""
    where = prefix.rstrip(".") or "model"
    if not isinstance(data, dict):
        raise ConfigError(f"fastgen.json's {where} must be an object, got {type(data).__name__}.")
    names = [f.name for f in dataclasses.fields(cls)]
    for key in names:
        if key not in data and (cls, key) not in _OPTIONAL:
            raise ConfigError(f"fastgen.json's model lacks {prefix}{key}; it was edited or "
                              "written by another fastgen.")
    for key in data:
        if key not in names:
            raise ConfigError(f"fastgen.json's model has an unknown key {prefix}{key}; it was "
                              "edited or written by another fastgen.")
    values = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        value = data[f.name]
        sections = {"sales": SalesModel, "changes": ChangeModel, "stress": StressModel}
        if f.name in sections:
            value = _from_json(sections[f.name], value, f"{prefix}{f.name}.")
        elif isinstance(value, list):
            value = tuple(value)  # JSON has no tuples; validate checks the type of each element
        values[f.name] = value
    return cls(**values)


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = tuple(value) if isinstance(value, list) else value
    return flat


def _integer(flag: str, value: object, low: int, high: int) -> None:
    """A real int (not a bool, not a float) in [low, high]."""
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ConfigError(f"--{flag} must be a whole number in [{low}, {high}], got {value!r}.")


def _number(flag: str, value: object, low: float, high: float, *, low_open: bool = False,
            high_open: bool = False) -> None:
    """A finite int or float (not a bool) in the interval from low to high."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok:  # an int beyond float's range is as useless to the model as inf
        try:
            ok = math.isfinite(float(value))
        except OverflowError:
            ok = False
    if ok:
        ok = (low < value if low_open else low <= value) and \
             (value < high if high_open else value <= high)
    if not ok:
        interval = f"{'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ConfigError(f"--{flag} must be a finite number in {interval}, got {value!r}.")
