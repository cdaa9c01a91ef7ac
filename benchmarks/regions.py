"""What one day's operations cost simulated region by region instead of whole: a measurement for
the xl memory target, not a code path of the pipeline.

    python benchmarks/regions.py --data-dir DIR --day YYYY-MM-DD --mode whole|regions

DIR holds a lake the pipeline wrote (`grocery-pipeline generate --preset xl --days 3 --data-dir DIR`)
with the day and the day before it published. `whole` runs `simulate_day` once on the whole chain;
`regions` runs it once per distribution center on that DC's stores, trucks, store products,
customers and drivers (by home store), its share of the day's traffic, and the prices and
yesterday's state of those store products, reading only that region's rows. Each mode prints the
seconds and CPU seconds inside `simulate_day`, the process's peak RSS and the rows made. Run each
mode in a fresh process, so the peak is its own. Volumes are scaled by each region's traffic
weight, so the rows of the regions add up to about the whole day's, not exactly.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import sys
import time
from datetime import date, timedelta
from pathlib import Path


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True, help="a data dir whose lake holds the day and the day before")
    parser.add_argument("--day", required=True, help="business date to simulate (not the window's first)")
    parser.add_argument("--mode", choices=("whole", "regions"), required=True)
    parser.add_argument("--preset", default="xl")
    parser.add_argument("--start", default="2025-01-01", help="the window's first business date")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    os.environ.update(GROCERY_PRESET=args.preset, GROCERY_START_DATE=args.start,
                      GROCERY_DATA_DIR=str(Path(args.data_dir).resolve()))
    import polars as pl

    from grocery_pipeline.dictionaries import load_dictionaries
    from grocery_pipeline.settings import load_settings
    from grocery_pipeline.simulation import operations
    from grocery_pipeline.simulation.context import Day
    from grocery_pipeline.simulation.operations import STORE_PRODUCT_STRIDE, Yesterday
    from grocery_pipeline.simulation.pricing import PriceBook
    from grocery_pipeline.simulation.world import world_on
    from grocery_pipeline.storage.prices import opening_prices
    from grocery_pipeline.tables import TABLES

    settings = load_settings()
    dictionaries = load_dictionaries(settings.dictionaries_dir)
    lake = settings.lake_dir
    day = date.fromisoformat(args.day)
    before = (day - timedelta(days=1)).isoformat()

    def history(table: str) -> pl.LazyFrame:
        return pl.scan_parquet(str(lake / table / "*" / f"{table}.parquet")).filter(pl.col("business_date") <= day)

    def partition(table: str, on: str) -> pl.LazyFrame:
        return pl.scan_parquet(str(lake / table / f"date={on}" / f"{table}.parquet"))

    def state(table: str, predicate: pl.Expr) -> pl.DataFrame:
        """The region's rows of the day before's closing state."""
        return partition(table, before).filter(predicate).collect().cast(TABLES[table].polars_schema)

    all_stores = history("stores").collect()
    # the tables every region shares, read once
    shared = {table: history(table).collect() for table in ("calendar", "products", "promotions")}
    dcs = sorted(all_stores["dc_id"].unique()) if args.mode == "regions" else [None]
    seconds = cpu = 0.0
    rows = 0
    for dc in dcs:
        stores = all_stores if dc is None else all_stores.filter(pl.col("dc_id") == dc)
        store_ids = stores["store_id"].implode()
        dc_ids = stores["dc_id"].implode()
        in_region = (pl.col("store_product_id") // STORE_PRODUCT_STRIDE).is_in(store_ids)
        world = world_on(day, {
            **shared,
            "distribution_centers": history("distribution_centers").filter(pl.col("dc_id").is_in(dc_ids)).collect(),
            "stores": stores,
            "trucks": history("trucks").filter(pl.col("dc_id").is_in(dc_ids)).collect(),
            "store_products": history("store_products").filter(pl.col("store_id").is_in(store_ids)).collect(),
            "customers": history("customers").filter(pl.col("home_store_id").is_in(store_ids)).collect(),
            "drivers": history("drivers").filter(pl.col("home_store_id").is_in(store_ids)).collect(),
        })
        snapshot = partition("price_snapshots", day.isoformat()).filter(in_region).select("store_product_id", "price")
        ticks = pl.scan_parquet(str(lake / "price_updates" / f"date={day}" / "*" / "price_updates.parquet"))
        prices = PriceBook(day, opening_prices(world.store_products.select("store_product_id", "list_price"),
                                               snapshot.collect()),
                           ticks.filter(in_region).select("store_product_id", "valid_from", "new_price").collect())

        yesterday = Yesterday(
            state("store_inventory", pl.col("store_id").is_in(store_ids)),
            state("dc_inventory", pl.col("dc_id").is_in(dc_ids)),
            state("delivery_customers", pl.col("customer_id").is_in(world.customers["customer_id"].implode())),
            partition("shipments", before).filter(pl.col("truck_id").is_in(world.trucks["truck_id"].implode()))
            .select("truck_id", "truck_back_at").collect())
        share = float(stores["traffic_weight"].sum() / all_stores["traffic_weight"].sum())
        scaled = dataclasses.replace(settings, receipts_per_day=round(settings.receipts_per_day * share),
                                     delivery_orders_per_day=round(settings.delivery_orders_per_day * share))
        started, cpu_started = time.perf_counter(), time.process_time()
        frames = operations.simulate_day(Day(scaled, dictionaries, day), world, prices, yesterday)
        seconds += time.perf_counter() - started
        cpu += time.process_time() - cpu_started
        rows += sum(frame.height for frame in frames.values())
        del frames, world, prices, yesterday  # the region's frames go before the next region
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.mode}: {len(dcs)} simulation(s), simulate_day {seconds:.2f}s wall {cpu:.2f}s cpu, "
          f"{rows:,} rows, process peak RSS {peak:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
