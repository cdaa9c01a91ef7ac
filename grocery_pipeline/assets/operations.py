"""Daily operations: in-store sales, home delivery, inventory and the supply chain of each day.

One multi-asset publishes every fact and state table of a business date together, because they
are one simulation: sales need the stock left at the end of the previous day, and the stock at
the end of the day needs the day's sales. It is a state chain (each partition depends on the
previous one), so backfills run as one run that walks the days oldest first; each day reads only
the previous day's state partitions and the day's dimensions and prices.
"""

from __future__ import annotations

from datetime import timedelta

import dagster as dg
import polars as pl

from grocery_pipeline.assets.dictionaries import dictionary_key
from grocery_pipeline.assets.factory import asset_key, daily_tables_asset, finished_early
from grocery_pipeline.assets.pricing import PRICING_ASSETS
from grocery_pipeline.partitions import DAILY
from grocery_pipeline.simulation import regions
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.simulation.operations import STORE_STOCK_SCHEMA, Yesterday
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.storage.prices import cached_pricebook
from grocery_pipeline.storage.world import load_world
from grocery_pipeline.tables import TABLES, delivery, sales, supply_chain

OPERATIONS_TABLES = [*sales.TABLES, *delivery.TABLES, *supply_chain.TABLES]
DIMENSIONS = ("calendar", "distribution_centers", "stores", "trucks", "products", "store_products", "customers",
              "drivers", "promotions")
STATE_TABLES = ("store_inventory", "dc_inventory", "delivery_customers")


def read_yesterday(lake: Lake, day: Day) -> Yesterday:
    """The previous business date's closing state (nothing before the first day)."""
    if day.is_initial:
        return Yesterday.before_first_day()
    previous = day.business_date - timedelta(days=1)
    frames = {name: lake.read_partition(name, previous).cast(TABLES[name].polars_schema)
              for name in STATE_TABLES if name != "store_inventory"}
    # one row per store product (8M at xl): scanned, so a day of several regions reads each one's
    # rows, of the columns it reads
    stock = (lake.scan_partition("store_inventory", previous).select(list(STORE_STOCK_SCHEMA))
             .cast(STORE_STOCK_SCHEMA))
    trips = lake.read_partition("shipments", previous, columns=["truck_id", "truck_back_at"])
    return Yesterday(stock, frames["dc_inventory"], frames["delivery_customers"], trips)


def produce_operations(day: Day, lake: Lake) -> dict[str, pl.DataFrame]:
    world = load_world(lake, day.business_date)
    prices = cached_pricebook(lake, world, day.settings)  # the line-price audits ask for the same book
    prices.prepare_beside()  # while yesterday is read and the first region starts
    return regions.simulate_day(day, world, prices, read_yesterday(lake, day), finished_early())


def _price_deps() -> list[dg.AssetDep]:
    """Sales use the prices of the day's ticks (a daily partition maps to that day's ticks)."""
    key = asset_key("price_updates")
    return [dg.AssetDep(key)] if any(key in a.keys for a in PRICING_ASSETS) else []


daily_operations = daily_tables_asset(
    "daily_operations", OPERATIONS_TABLES, produce_operations, DAILY,
    deps=[*DIMENSIONS, dictionary_key("departments"), *_price_deps()], self_dependent=True,
    overlap=True)  # the next day reads this one's state only through Lake.read_partition and scan_partition

OPERATIONS_ASSETS = [daily_operations]
