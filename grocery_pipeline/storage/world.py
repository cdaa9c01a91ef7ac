"""Reading the dimensions as of a date from the lake, incrementally within a process so a
backfill that walks the days in order reads each partition once."""

from __future__ import annotations

from datetime import date

import polars as pl

from grocery_pipeline.simulation.world import World, world_on
from grocery_pipeline.storage.lake import (Lake, MissingPartitionError, RecentDays, read_files_cached,
                                           read_files_lazily)

DIMENSIONS = ("calendar", "distribution_centers", "stores", "trucks", "products", "store_products",
              "customers", "drivers", "promotions")


def _through(lake: Lake, table: str, business_date: date) -> tuple[list[str], list[tuple]]:
    """The files of a daily table up to `business_date` and their signatures; fails unless that
    day itself is published."""
    days, files, signatures = lake.published_through(table, business_date)
    if not days or days[-1] != business_date:
        raise MissingPartitionError(table, [business_date.isoformat()])
    return files, signatures


def read_as_of_cached(lake: Lake, table: str, business_date: date) -> pl.DataFrame:
    """All rows of a daily table published for dates up to `business_date`."""
    files, signatures = _through(lake, table, business_date)
    return read_files_cached(lake, table, files, signatures)


def scan_as_of_cached(lake: Lake, table: str, business_date: date) -> pl.LazyFrame:
    """`read_as_of_cached` for a reader of a few columns or rows (`read_files_lazily`)."""
    files, signatures = _through(lake, table, business_date)
    return read_files_lazily(lake, table, files, signatures)


# The last worlds built, with the signatures of the dimension files they were built from: the day's
# simulation and the audits of the same day (prices in effect) ask for the same world, and the
# price book is shared while the world is the very same object.
_WORLDS = RecentDays(kept=2)


def release_day(lake: Lake, business_date: date) -> None:
    """Drop the cached world of a day that is published (nothing of the run reads it again)."""
    _WORLDS.release(lake, business_date)


def load_world(lake: Lake, business_date: date) -> World:
    """The dimensions live on `business_date`; fails naming any dimension partition not yet published."""
    through = {t: _through(lake, t, business_date) for t in DIMENSIONS}
    signatures = {t: sigs for t, (_, sigs) in through.items()}
    key = (lake.root, business_date)
    last = _WORLDS.get(key)
    # by file signatures, not frame identity: the as-of reader hands out a fresh slice when it has
    # read past `business_date` (a range run publishes every dimension day before the facts)
    if last is not None and last[0] == signatures:
        return last[1]
    tables = {t: read_files_cached(lake, t, files, sigs) for t, (files, sigs) in through.items()}
    world = world_on(business_date, tables)
    _WORLDS.put(key, (signatures, world))
    return world
