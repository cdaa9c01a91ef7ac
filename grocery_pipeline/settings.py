"""Presets and every knob of the simulation, validated, with environment overrides.

A `Settings` value is immutable and fully resolved: preset volumes, then field overrides, then
environment variables (`GROCERY_<FIELD>`), then explicit keyword overrides. Anything malformed
raises `SettingsError` naming the field and what was expected, before a single file is written.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DICTIONARIES_DIR = PROJECT_ROOT / "dictionaries"
DEFAULT_SEED = 20250101
DEFAULT_START_DATE = date(2025, 1, 1)
DEFAULT_PRESET = "small"
ENV_PREFIX = "GROCERY_"


class SettingsError(ValueError):
    """A setting is missing, malformed or out of range."""


# Volumes per preset (SPEC.md, "Scale presets"). Daily volumes are before calendar effects.
PRESETS: dict[str, dict[str, int]] = {
    "tiny": dict(stores=3, distribution_centers=1, products=150, customers=500, drivers=10,
                 trucks_per_dc=4, delivery_orders_per_day=150, receipts_per_day=300),
    "small": dict(stores=10, distribution_centers=1, products=600, customers=5_000, drivers=40,
                  trucks_per_dc=8, delivery_orders_per_day=1_000, receipts_per_day=3_000),
    "medium": dict(stores=100, distribution_centers=5, products=5_000, customers=100_000, drivers=400,
                   trucks_per_dc=12, delivery_orders_per_day=10_000, receipts_per_day=30_000),
    "xl": dict(stores=1_000, distribution_centers=12, products=10_000, customers=1_000_000,
               drivers=4_000, trucks_per_dc=40, delivery_orders_per_day=100_000,
               receipts_per_day=300_000),
}

# Object stores the lake location may name (docs/deployment.md, "Object storage").
OBJECT_STORE_SCHEMES = ("s3", "gs", "gcs", "az", "abfs", "abfss")

# Known fault names for deliberate corruption before audit (demos and tests of the gates).
KNOWN_FAULTS = ("orphan_fk", "bad_total", "negative_stock", "price_above_msrp", "duplicate_key")


@dataclass(frozen=True)
class Settings:
    """Everything that determines the generated data, plus where it goes."""

    preset: str = DEFAULT_PRESET
    seed: int = DEFAULT_SEED
    start_date: date = DEFAULT_START_DATE
    end_date: date | None = None
    data_dir: Path = Path("data")
    dictionaries_dir: Path = DEFAULT_DICTIONARIES_DIR
    lake_url: str = ""  # empty: <data_dir>/lake

    # volumes (filled from the preset unless overridden)
    stores: int = 0
    distribution_centers: int = 0
    products: int = 0
    customers: int = 0
    drivers: int = 0
    trucks_per_dc: int = 0
    delivery_orders_per_day: int = 0
    receipts_per_day: int = 0

    # growth of the dimensions, as expected new rows per day relative to the initial population
    customer_signup_rate: float = 0.0012
    driver_hire_rate: float = 0.002
    store_opening_rate: float = 0.0004
    product_launch_rate: float = 0.0008
    product_discontinue_share: float = 0.08
    store_assortment_share: float = 0.85
    store_price_spread: float = 0.15

    # price ticks
    price_tick_cron: str = "0 * * * *"
    # pricing (docs/pricing.md): per volatility class, expected price changes per store product per
    # hour and the size of a change; hour ranges are [from-to) in 24h, wrapping past midnight
    price_change_rate: str = "HIGH=0.5,MEDIUM=0.15,LOW=0.06,VERY_LOW=0.02"
    price_volatility: str = "HIGH=0.8,MEDIUM=0.3,LOW=0.2,VERY_LOW=0.1"
    price_volatility_scale: float = 0.05
    price_rush_hours: str = "7-9,18-20"
    price_rush_adjustment: float = 0.02
    price_late_night_hours: str = "23-6"
    price_late_night_adjustment: float = -0.01
    price_discount_probability: float = 0.15
    price_discount_depth: str = "0.05-0.15"
    price_surge_probability: float = 0.05
    price_surge_depth: str = "0.03-0.10"
    price_event_hours: float = 3.0
    price_max_change: float = 0.15
    price_mean_reversion: float = 0.3
    price_cost_share: str = "0.50-0.85"
    promotion_product_share: float = 0.06
    promotion_categories_per_department: float = 0.5

    # a day of operations is simulated one region at a time: DCs in id order, grouped while their
    # store products number at most this (a DC with more is a region of its own; docs/operations.md)
    region_store_products: int = 1_000_000

    faults: tuple[str, ...] = field(default_factory=tuple)
    # a run of several days generates the next day while one is written and audited, when that day
    # has at most this many rows (0: never); above it, peak memory stays that of one day
    overlap_max_rows: int = 5_000_000

    @property
    def lake_dir(self) -> Path:
        """The local directory runs write the lake to."""
        if not self.lake_url:
            return self.data_dir / "lake"
        parts = urlsplit(self.lake_url)
        if parts.scheme in OBJECT_STORE_SCHEMES:
            raise SettingsError(
                f"setting 'lake_url': {self.lake_url!r} is an object store; runs write the lake to a "
                "local or mounted path (e.g. a gcsfuse or mountpoint-s3 mount) and it is copied to the "
                "bucket with the layout unchanged; see docs/deployment.md, 'Object storage'"
            )
        return Path(unquote(parts.path)) if parts.scheme == "file" else Path(self.lake_url)

    @property
    def warehouse_path(self) -> Path:
        return self.data_dir / "warehouse.duckdb"

    def fingerprint(self) -> dict[str, Any]:
        """The settings that shape the data (not where it is written), for metadata and versions."""
        skip = {"data_dir", "dictionaries_dir", "end_date", "lake_url", "overlap_max_rows"}
        out = {}
        for f in fields(self):
            if f.name in skip:
                continue
            value = getattr(self, f.name)
            out[f.name] = value.isoformat() if isinstance(value, date) else (
                list(value) if isinstance(value, tuple) else value)
        return out


_VOLUME_FIELDS = tuple(PRESETS["tiny"].keys())
_RATE_FIELDS = ("customer_signup_rate", "driver_hire_rate", "store_opening_rate",
                "product_launch_rate", "product_discontinue_share", "store_assortment_share",
                "store_price_spread")


def _parse_date(name: str, value: Any) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value).strip())
    except ValueError:
        raise SettingsError(
            f"setting '{name}': {value!r} is not a date; expected YYYY-MM-DD, e.g. 2025-01-01"
        ) from None


def _parse_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise SettingsError(f"setting '{name}': {value!r} is not a whole number")
    try:
        return int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise SettingsError(f"setting '{name}': {value!r} is not a whole number") from None


def _parse_float(name: str, value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise SettingsError(f"setting '{name}': {value!r} is not a number") from None


def _parse_faults(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    items = value.split(",") if isinstance(value, str) else list(value)
    faults = tuple(sorted({str(v).strip() for v in items if str(v).strip()}))
    unknown = [f for f in faults if f not in KNOWN_FAULTS]
    if unknown:
        raise SettingsError(
            f"setting 'faults': unknown fault(s) {', '.join(unknown)}; "
            f"allowed values: {', '.join(KNOWN_FAULTS)}"
        )
    return faults


_PRICING_FLOAT_FIELDS = ("price_volatility_scale", "price_rush_adjustment", "price_late_night_adjustment",
                         "price_discount_probability", "price_surge_probability", "price_event_hours",
                         "price_max_change", "price_mean_reversion", "promotion_product_share",
                         "promotion_categories_per_department")
PRICE_CLASSES = ("HIGH", "MEDIUM", "LOW", "VERY_LOW")


def class_figures(name: str, text: str) -> dict[str, float]:
    """`HIGH=0.8,MEDIUM=0.3,...`: one non-negative figure for every volatility class."""
    out: dict[str, float] = {}
    for item in str(text).split(","):
        cls, sep, value = item.partition("=")
        cls = cls.strip().upper()
        if not sep or cls not in PRICE_CLASSES:
            raise SettingsError(
                f"setting '{name}': {item.strip()!r} is not CLASS=number with CLASS one of "
                f"{', '.join(PRICE_CLASSES)}; expected e.g. 'HIGH=0.8,MEDIUM=0.3,LOW=0.2,VERY_LOW=0.1'")
        out[cls] = _parse_float(name, value)
        if out[cls] < 0:
            raise SettingsError(f"setting '{name}': {cls}={out[cls]} is negative; expected >= 0")
    missing = [c for c in PRICE_CLASSES if c not in out]
    if missing:
        raise SettingsError(f"setting '{name}': no figure for {', '.join(missing)}; every class needs one")
    return out


def hour_set(name: str, text: str) -> frozenset[int]:
    """`7-9,18-20` (from-to, the end hour excluded; `23-6` wraps past midnight) as a set of hours."""
    hours: set[int] = set()
    for item in str(text).split(","):
        if not item.strip():
            continue
        start, sep, end = item.partition("-")
        try:
            a, b = int(start), int(end)
        except ValueError:
            a = b = -1
        if not sep or not (0 <= a <= 23 and 0 <= b <= 24) or a == b:
            raise SettingsError(
                f"setting '{name}': {item.strip()!r} is not an hour range; expected from-to in 0..24, "
                "e.g. '7-9,18-20' or '23-6'")
        hours.update(range(a, b) if a < b else [*range(a, 24), *range(0, b)])
    return frozenset(hours)


def fraction_range(name: str, text: str) -> tuple[float, float]:
    """`0.05-0.15`: a range of fractions with 0 <= low <= high <= 1."""
    low, sep, high = str(text).partition("-")
    try:
        lo, hi = float(low), float(high)
    except ValueError:
        sep = ""
    if not sep or not 0 <= lo <= hi <= 1:
        raise SettingsError(f"setting '{name}': {text!r} is not a range of fractions; expected low-high "
                            "with 0 <= low <= high <= 1, e.g. '0.05-0.15'")
    return lo, hi


def tick_grid(cron: str) -> int:
    """Minutes between price ticks of a price-tick cron.

    Ticks must fall on a regular grid from midnight that repeats every day (the day's ticks
    partition it), e.g. `0 * * * *`, `*/15 * * * *`, `0 */2 * * *` or `0,20,40 * * * *`.
    """
    fields_ = str(cron).split()
    expected = "expected a daily-repeating regular grid such as '0 * * * *' (hourly) or '*/15 * * * *'"
    if len(fields_) != 5:
        raise SettingsError(f"setting 'price_tick_cron': {cron!r} is not a 5-field cron expression; {expected}")
    if fields_[2:] != ["*", "*", "*"]:
        raise SettingsError(f"setting 'price_tick_cron': {cron!r} restricts day, month or weekday; {expected}")
    minutes = _cron_field(cron, fields_[0], 60)
    hours = _cron_field(cron, fields_[1], 24)
    times = sorted(h * 60 + m for h in hours for m in minutes)
    gaps = {b - a for a, b in zip(times, times[1:] + [times[0] + 1440])}
    if len(gaps) != 1:
        raise SettingsError(f"setting 'price_tick_cron': {cron!r} ticks at uneven intervals; {expected}")
    if times[0] != 0:
        # A tick straddling midnight would belong to two business dates.
        raise SettingsError(f"setting 'price_tick_cron': {cron!r} has no tick at 00:00; {expected}")
    return gaps.pop()


def _cron_field(cron: str, text: str, size: int) -> list[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step = part.partition("/")
        try:
            stride = int(step) if step else 1
            if base == "*":
                lo, hi = 0, size - 1
            elif "-" in base:
                lo, hi = (int(v) for v in base.split("-"))
            else:
                lo = hi = int(base)
                hi = size - 1 if step else hi
        except ValueError:
            raise SettingsError(f"setting 'price_tick_cron': field {text!r} of {cron!r} is not a number, "
                                "*, a range or a step") from None
        if not (0 <= lo <= hi < size) or stride < 1:
            raise SettingsError(f"setting 'price_tick_cron': field {text!r} of {cron!r} is out of range 0..{size - 1}")
        values.update(range(lo, hi + 1, stride))
    return sorted(values)


def _validate_pricing(settings: Settings) -> None:
    tick_grid(settings.price_tick_cron)
    class_figures("price_change_rate", settings.price_change_rate)
    class_figures("price_volatility", settings.price_volatility)
    hour_set("price_rush_hours", settings.price_rush_hours)
    hour_set("price_late_night_hours", settings.price_late_night_hours)
    fraction_range("price_discount_depth", settings.price_discount_depth)
    fraction_range("price_surge_depth", settings.price_surge_depth)
    low, high = fraction_range("price_cost_share", settings.price_cost_share)
    if low <= 0 or high >= 1:
        raise SettingsError(f"setting 'price_cost_share': {settings.price_cost_share!r}; unit cost must stay a "
                            "share strictly between 0 and 1 of the sale price, e.g. '0.50-0.85'")
    bounded = {"price_discount_probability": (0, 1), "price_surge_probability": (0, 1),
               "price_max_change": (0.001, 0.5), "price_mean_reversion": (0, 1),
               "price_volatility_scale": (0, 0.5), "price_rush_adjustment": (-0.5, 0.5),
               "price_late_night_adjustment": (-0.5, 0.5), "price_event_hours": (0.01, 24 * 14),
               "promotion_product_share": (0, 1), "promotion_categories_per_department": (0, 20)}
    for name, (lo, hi) in bounded.items():
        value = getattr(settings, name)
        if not lo <= value <= hi:
            raise SettingsError(f"setting '{name}': {value} is out of range; expected {lo} <= value <= {hi}")
    if settings.price_discount_probability + settings.price_surge_probability > 1:
        raise SettingsError("settings 'price_discount_probability' + 'price_surge_probability' exceed 1; "
                            "they are shares of the same price changes")


def _coerce(name: str, value: Any) -> Any:
    if name in ("start_date",):
        return _parse_date(name, value)
    if name == "end_date":
        return None if value in (None, "") else _parse_date(name, value)
    if name in ("data_dir", "dictionaries_dir"):
        return Path(value)
    if name in ("seed", "overlap_max_rows", "region_store_products") or name in _VOLUME_FIELDS:
        return _parse_int(name, value)
    if name in _RATE_FIELDS or name in _PRICING_FLOAT_FIELDS:
        return _parse_float(name, value)
    if name == "faults":
        return _parse_faults(value)
    if name in ("preset", "lake_url"):
        return str(value).strip()
    return value


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    names = {f.name for f in fields(Settings)}
    out: dict[str, Any] = {}
    for key, value in env.items():
        if not key.startswith(ENV_PREFIX):
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name in names and value != "":
            out[name] = value
    return out


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Resolve settings: preset volumes < environment (`GROCERY_*`) < keyword overrides."""
    env = os.environ if env is None else env
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SettingsError(
            f"unknown setting(s) {', '.join(unknown)}; known settings: {', '.join(sorted(known))}"
        )
    raw: dict[str, Any] = _from_env(env)
    raw.update({k: v for k, v in overrides.items() if v is not None})

    preset = _coerce("preset", raw.pop("preset", DEFAULT_PRESET))
    if preset not in PRESETS:
        raise SettingsError(
            f"setting 'preset': unknown preset {preset!r}; allowed values: {', '.join(PRESETS)}"
        )
    values: dict[str, Any] = dict(PRESETS[preset])
    values["preset"] = preset
    for name, value in raw.items():
        values[name] = _coerce(name, value)
    settings = Settings(**values)
    validate(settings)
    return settings


def validate(settings: Settings) -> None:
    for name in _VOLUME_FIELDS:
        value = getattr(settings, name)
        if value < 1:
            raise SettingsError(f"setting '{name}': {value} is not allowed; expected a whole number >= 1")
    for name in _RATE_FIELDS:
        value = getattr(settings, name)
        if not 0 <= value <= 1:
            raise SettingsError(f"setting '{name}': {value} is out of range; expected 0 <= value <= 1")
    if settings.store_assortment_share <= 0:
        raise SettingsError("setting 'store_assortment_share': must be > 0")
    if settings.region_store_products < 1:
        raise SettingsError(f"setting 'region_store_products': {settings.region_store_products} is not allowed; "
                            "expected a whole number >= 1")
    for name in ("seed", "overlap_max_rows"):
        if getattr(settings, name) < 0:
            raise SettingsError(f"setting '{name}': {getattr(settings, name)} is negative; expected a whole number >= 0")
    if settings.end_date is not None and settings.end_date < settings.start_date:
        raise SettingsError(
            f"setting 'end_date': {settings.end_date} is before start_date {settings.start_date}; "
            "expected end_date on or after start_date"
        )
    if settings.lake_url:
        _validate_lake_url(settings.lake_url)
    _validate_pricing(settings)


def _validate_lake_url(url: str) -> None:
    parts = urlsplit(url)
    expected = ("expected a local path, a file:// URL or an object-store URL such as "
                "s3://bucket/prefix, gs://bucket/prefix or az://container/prefix")
    if parts.scheme in OBJECT_STORE_SCHEMES and not parts.netloc:
        raise SettingsError(f"setting 'lake_url': {url!r} names no bucket; {expected}")
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise SettingsError(f"setting 'lake_url': {url!r} names a remote host; {expected}")
    if parts.scheme not in ("", "file", *OBJECT_STORE_SCHEMES):
        raise SettingsError(f"setting 'lake_url': unknown scheme '{parts.scheme}' in {url!r}; {expected}")


def replace(settings: Settings, **changes: Any) -> Settings:
    """A copy with some fields changed, coerced and validated like any other input."""
    coerced = {k: _coerce(k, v) for k, v in changes.items()}
    out = dataclasses.replace(settings, **coerced)
    validate(out)
    return out
