"""Days of the chain in memory, without the lake or Dagster: the dimensions grown day by day as
the dimension assets grow them, and the operations state carried from each day to the next.

For tests and measurements of the simulation itself; prices are the list prices (no ticks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Iterator

import polars as pl

from grocery_pipeline.dictionaries import Dictionaries
from grocery_pipeline.settings import Settings
from grocery_pipeline.simulation import calendar, catalog, network, operations, people, promotions, regions
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.simulation.pricing import PriceBook
from grocery_pipeline.simulation.world import World, world_on


@dataclass
class Dimensions:
    """Every dimension row published so far, table by table."""

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)

    def add(self, table: str, frame: pl.DataFrame) -> pl.DataFrame:
        self.tables[table] = pl.concat([self.tables[table], frame], how="vertical_relaxed") \
            if table in self.tables else frame
        return self.tables[table]

    def grow(self, day: Day) -> World:
        """Publish the day's dimension partitions; the world live that day."""
        dcs = self.add("distribution_centers", network.generate_distribution_centers(day))
        self.add("calendar", calendar.generate_calendar(day.business_date))
        self.add("trucks", network.generate_trucks(day, dcs.filter(pl.col("business_date") == day.business_date)))
        stores = self.add("stores", network.generate_stores(day, dcs))
        products = self.add("products", catalog.generate_products(day))
        self.add("store_products", catalog.generate_store_products(day, stores, products))
        self.add("customers", people.generate_customers(day, stores))
        self.add("drivers", people.generate_drivers(day, stores))
        self.add("promotions", promotions.generate_promotions(day, products))
        return world_on(day.business_date, self.tables)


def run_days(settings: Settings, dictionaries: Dictionaries, days: int, start: date | None = None) \
        -> Iterator[tuple[Day, World, dict[str, pl.DataFrame]]]:
    """Simulate `days` business dates from `start` (default: the first date), oldest first."""
    first = start or settings.start_date
    dims = Dimensions()
    yesterday = operations.Yesterday.before_first_day()
    for offset in range((first - settings.start_date).days + days):
        day = Day(settings, dictionaries, settings.start_date + timedelta(days=offset))
        world = dims.grow(day)
        frames = regions.simulate_day(day, world, PriceBook.from_list_prices(day.business_date,
                                                                                world.store_products), yesterday)
        yesterday = operations.Yesterday(frames["store_inventory"], frames["dc_inventory"],
                                         frames["delivery_customers"], frames["shipments"])
        if day.business_date >= first:
            yield day, world, frames
