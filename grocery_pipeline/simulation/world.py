"""The world on one business date: the dimension rows a fact of that day may reference."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import polars as pl


@dataclass(frozen=True)
class World:
    business_date: date
    calendar: pl.DataFrame              # the day's calendar row
    distribution_centers: pl.DataFrame
    stores: pl.DataFrame                # open on the date
    trucks: pl.DataFrame
    products: pl.DataFrame              # launched and not yet discontinued
    store_products: pl.DataFrame        # listed, for open stores and active products
    customers: pl.DataFrame             # signed up on or before the date
    drivers: pl.DataFrame               # hired and not yet left
    promotions: pl.DataFrame            # running on the date (start_date <= date <= end_date)

    @property
    def traffic_multiplier(self) -> float:
        return float(self.calendar["traffic_multiplier"][0])


def world_on(business_date: date, tables: dict[str, pl.DataFrame]) -> World:
    """Filter every dimension (all rows published up to the date) to what is live that day."""
    d = business_date
    products = tables["products"].filter(
        (pl.col("launched_on") <= d) & (pl.col("discontinued_on").is_null() | (pl.col("discontinued_on") > d)))
    stores = tables["stores"].filter(pl.col("opened_on") <= d)
    store_products = tables["store_products"].filter(
        (pl.col("listed_on") <= d)
        & pl.col("store_id").is_in(stores["store_id"].implode())
        & pl.col("product_id").is_in(products["product_id"].implode()))
    drivers = tables["drivers"].filter(
        (pl.col("hired_on") <= d) & (pl.col("left_on").is_null() | (pl.col("left_on") > d)))
    promotions = tables["promotions"].filter((pl.col("start_date") <= d) & (pl.col("end_date") >= d))
    return World(
        business_date=d,
        calendar=tables["calendar"].filter(pl.col("date") == d),
        distribution_centers=tables["distribution_centers"],
        stores=stores.sort("store_id"),
        trucks=tables["trucks"].sort("truck_id"),
        products=products.sort("product_id"),
        store_products=store_products.sort("store_product_id"),
        customers=tables["customers"].filter(pl.col("signup_date") <= d).sort("customer_id"),
        drivers=drivers.sort("driver_id"),
        promotions=promotions.sort("promotion_id"),
    )
