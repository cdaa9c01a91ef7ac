"""How the dimensions grow: the number of rows born each day is a pure function of
(seed, table, date), so the id range of any day is known without reading earlier partitions."""

from __future__ import annotations

from datetime import date, timedelta
from functools import lru_cache

from grocery_pipeline.settings import Settings
from grocery_pipeline.simulation import calendar
from grocery_pipeline.simulation.rng import rng_for

# table -> (settings field with the initial population, settings field with the daily rate)
GROWTH = {
    "customers": ("customers", "customer_signup_rate"),
    "drivers": ("drivers", "driver_hire_rate"),
    "stores": ("stores", "store_opening_rate"),
    "products": ("products", "product_launch_rate"),
}


def rows_born(settings: Settings, table: str, day: date) -> int:
    """Rows of `table` that come into being on `day` (the initial population on the first day)."""
    initial_field, rate_field = GROWTH[table]
    initial = getattr(settings, initial_field)
    if day <= settings.start_date:
        return initial if day == settings.start_date else 0
    expected = initial * getattr(settings, rate_field) * calendar.traffic_multiplier(day)
    return int(rng_for(settings.seed, f"{table}.born", day).poisson(expected))


@lru_cache(maxsize=64)
def _offsets(settings: Settings, table: str, through: date) -> tuple[int, ...]:
    """First id of each day from the start date through `through` (ids start at 1)."""
    out, next_id = [], 1
    day = settings.start_date
    while day <= through:
        out.append(next_id)
        next_id += rows_born(settings, table, day)
        day += timedelta(days=1)
    return tuple(out)


def first_id(settings: Settings, table: str, day: date) -> int:
    """The id of the first row born on `day`; ids are continuous across days."""
    # Computed in yearly blocks so a long history reuses cached prefixes.
    index = (day - settings.start_date).days
    if index < 0:
        raise ValueError(f"{day} is before the start date {settings.start_date}")
    year_end = date(day.year, 12, 31)
    return _offsets(settings, table, max(year_end, day))[index]
