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


def _where(frame: pl.DataFrame, predicate: pl.Expr) -> pl.DataFrame:
    """The rows where the predicate holds: the frame itself (no copy) when all of them do."""
    mask = frame.select(predicate.alias("keep")).to_series()
    return frame if mask.all() else frame.filter(mask)


def _by(frame: pl.DataFrame, key: str) -> pl.DataFrame:
    """Sorted by the key (and flagged so): without a copy when it already is (ids grow with the partitions)."""
    return frame.with_columns(pl.col(key).set_sorted()) if frame[key].is_sorted() else frame.sort(key)


def world_on(business_date: date, tables: dict[str, pl.DataFrame]) -> World:
    """Filter every dimension (all rows published up to the date) to what is live that day. A
    table whose rows are all live is the very frame it was read as, so the world costs no copy."""
    d = business_date
    products = _where(tables["products"],
                      (pl.col("launched_on") <= d) & (pl.col("discontinued_on").is_null() | (pl.col("discontinued_on") > d)))
    stores = _where(tables["stores"], pl.col("opened_on") <= d)
    store_products = _where(tables["store_products"],
                            (pl.col("listed_on") <= d)
                            & pl.col("store_id").is_in(stores["store_id"].implode())
                            & pl.col("product_id").is_in(products["product_id"].implode()))
    drivers = _where(tables["drivers"], (pl.col("hired_on") <= d) & (pl.col("left_on").is_null() | (pl.col("left_on") > d)))
    promotions = _where(tables["promotions"], (pl.col("start_date") <= d) & (pl.col("end_date") >= d))
    return World(
        business_date=d,
        calendar=tables["calendar"].filter(pl.col("date") == d),
        distribution_centers=tables["distribution_centers"],
        stores=_by(stores, "store_id"),
        trucks=_by(tables["trucks"], "truck_id"),
        products=_by(products, "product_id"),
        store_products=_by(store_products, "store_product_id"),
        customers=_by(_where(tables["customers"], pl.col("signup_date") <= d), "customer_id"),
        drivers=_by(drivers, "driver_id"),
        promotions=_by(promotions, "promotion_id"),
    )
