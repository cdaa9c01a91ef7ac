"""Reading the dimensions as of a date from the lake, incrementally within a process so a
backfill that walks the days in order reads each partition once."""

from __future__ import annotations

from datetime import date

import polars as pl

from grocery_pipeline.simulation.world import World, world_on
from grocery_pipeline.storage.lake import Lake, MissingPartitionError, read_files_cached

DIMENSIONS = ("calendar", "distribution_centers", "stores", "trucks", "products", "store_products",
              "customers", "drivers", "promotions")


def read_as_of_cached(lake: Lake, table: str, business_date: date) -> pl.DataFrame:
    """All rows of a daily table published for dates up to `business_date`."""
    files = [lake.partition_path(table, d) for d in lake.partition_dates(table) if d <= business_date]
    files = [f for f in files if f.is_file()]
    if not lake.has_partition(table, business_date):
        raise MissingPartitionError(table, [business_date.isoformat()])
    return read_files_cached(lake, table, files)


def load_world(lake: Lake, business_date: date) -> World:
    """The dimensions live on `business_date`; fails naming any dimension partition not yet published."""
    return world_on(business_date, {t: read_as_of_cached(lake, t, business_date) for t in DIMENSIONS})
