"""Frozen, typed options of the model and of the output, validated once at the edge.

Every number of the simulation lives here with its default and where the default comes from.
A ``Model`` is stored in ``fastgen.json``; two datasets with equal ``Model`` values contain the
same bytes (DESIGN.md section 2).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Literal

DeleteMode = Literal["soft", "hard", "mixed"]
OutputFormat = Literal["parquet", "csv"]


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
        _positive("rows-per-day", self.rows_per_day)
        if self.rows_per_day >= 2**31:
            raise ConfigError("--rows-per-day must be below 2147483648.")
        if not self.rush_hours or len(self.rush_hours) != len(self.rush_weights):
            raise ConfigError("--rush-hours and --rush-weights must have the same, non-zero length.")
        if any(not 0 <= h < 24 for h in self.rush_hours):
            raise ConfigError("--rush-hours must lie in [0, 24).")
        if any(w <= 0 for w in self.rush_weights):
            raise ConfigError("--rush-weights must be positive.")
        if not self.rush_sigma > 0:
            raise ConfigError("--rush-sigma must be positive.")
        _positive("stores", self.stores)
        _positive("products", self.products)
        if self.store_skew < 0 or self.product_skew < 0:
            raise ConfigError("--store-skew and --product-skew must be >= 0.")
        if not 1 <= self.quantity_min <= self.quantity_max <= 1_000_000:
            raise ConfigError("--quantity-min and --quantity-max must satisfy 1 <= min <= max <= 1000000.")
        if not 1 <= self.price_min_cents <= self.price_max_cents <= 10**8:
            raise ConfigError("--price-min-cents and --price-max-cents must satisfy "
                              "1 <= min <= max <= 100000000.")


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
        if not self.sigmoid_steepness > 0:
            raise ConfigError("--sigmoid-steepness must be positive.")
        if self.sigmoid_switch_days < 0 or self.sigmoid_recent_days < 0:
            raise ConfigError("--sigmoid-switch-days and --sigmoid-recent-days must be >= 0.")
        for name, value in (("update-rate", self.update_rate), ("delete-rate", self.delete_rate),
                            ("soft-delete-share", self.soft_delete_share),
                            ("late-share", self.late_share)):
            if not 0 <= value <= 1:
                raise ConfigError(f"--{name} must lie in [0, 1].")
        if self.update_rate + self.delete_rate > 1:
            raise ConfigError("--update-rate plus --delete-rate must not exceed 1.")
        if self.delete_mode not in ("soft", "hard", "mixed"):
            raise ConfigError("--delete-mode must be soft, hard or mixed.")
        if not 1 <= self.late_max_days <= 365:
            raise ConfigError("--late-max-days must lie in [1, 365].")
        if not 0 < self.late_decay <= 1:
            raise ConfigError("--late-decay must lie in (0, 1].")

    @property
    def soft_share(self) -> float:
        """Share of deletes that are soft, after the delete mode."""
        return {"soft": 1.0, "hard": 0.0, "mixed": self.soft_delete_share}[self.delete_mode]


@dataclass(frozen=True, kw_only=True)
class Model:
    """Everything the bytes of a dataset depend on, apart from the start date."""

    seed: int = 0
    sales: SalesModel = field(default_factory=SalesModel)
    changes: ChangeModel = field(default_factory=ChangeModel)
    # Rows of one day per file (two 2**20-row groups); also the unit held in memory while
    # writing, at about 90 B a row, which keeps a 50M-row day under 1 GB of RSS.
    rows_per_file: int = 2_097_152

    def validate(self) -> Model:
        if not 0 <= self.seed < 2**63:
            raise ConfigError("--seed must be an integer in [0, 2**63).")
        _positive("rows-per-file", self.rows_per_file)
        self.sales.validate()
        self.changes.validate()
        return self

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def differences(self, other: Model) -> list[str]:
        """Dotted names of the options whose values differ, e.g. ``sales.rows_per_day``."""
        mine, theirs = _flatten(self.to_json()), _flatten(other.to_json())
        return [name for name in mine if mine[name] != theirs.get(name)]

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Model:
        sales = dict(data["sales"])
        for key in ("rush_hours", "rush_weights"):
            sales[key] = tuple(sales[key])
        return cls(seed=data["seed"], sales=SalesModel(**sales),
                   changes=ChangeModel(**data["changes"]),
                   rows_per_file=data["rows_per_file"]).validate()


def _flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _flatten(value, f"{prefix}{key}.")
        else:
            flat[prefix + key] = tuple(value) if isinstance(value, list) else value
    return flat


def _positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"--{name} must be a positive integer, got {value!r}.")
