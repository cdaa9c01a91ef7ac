"""Reading the dimensions as of a date from the lake, incrementally within a process so a
backfill that walks the days in order reads each partition once."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import polars as pl

from grocery_pipeline.simulation.world import World, world_on
from grocery_pipeline.storage.lake import Lake, MissingPartitionError, read_files_cached

DIMENSIONS = ("calendar", "distribution_centers", "stores", "trucks", "products", "store_products",
              "customers", "drivers", "promotions")


def read_as_of_cached(lake: Lake, table: str, business_date: date) -> pl.DataFrame:
    """All rows of a daily table published for dates up to `business_date`."""
    days, files, signatures = lake.published_through(table, business_date)
    if not days or days[-1] != business_date:
        raise MissingPartitionError(table, [business_date.isoformat()])
    return read_files_cached(lake, table, files, signatures)


# The last world built, with the dimension frames it was built from: the day's simulation and the
# audits of the same day (prices in effect) ask for the same world; one is kept, so memory is bounded.
_LAST_WORLD: dict[tuple[Path, date], tuple[dict[str, pl.DataFrame], World]] = {}


def load_world(lake: Lake, business_date: date) -> World:
    """The dimensions live on `business_date`; fails naming any dimension partition not yet published."""
    tables = {t: read_as_of_cached(lake, t, business_date) for t in DIMENSIONS}
    key = (lake.root, business_date)
    last = _LAST_WORLD.get(key)
    # the same frame objects mean no partition was published or replaced since
    if last is not None and all(last[0][t] is tables[t] for t in DIMENSIONS):
        return last[1]
    world = world_on(business_date, tables)
    _LAST_WORLD.clear()
    _LAST_WORLD[key] = (tables, world)
    return world
