"""Prices: what a store product costs at any moment of a business day."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl


@dataclass(frozen=True)
class PriceBook:
    """The prices in effect during one business day.

    `opening`: store_product_id, price -- in effect at 00:00 of the day.
    `changes`: store_product_id, valid_from (datetime), new_price -- the day's price ticks.
    """

    business_date: date
    opening: pl.DataFrame
    changes: pl.DataFrame

    @classmethod
    def from_list_prices(cls, business_date: date, store_products: pl.DataFrame) -> "PriceBook":
        """A day on which no tick changed any price: every product sells at its list price."""
        return cls(
            business_date,
            store_products.select("store_product_id", pl.col("list_price").alias("price")),
            pl.DataFrame(schema={"store_product_id": pl.Int64, "valid_from": pl.Datetime("us"),
                                 "new_price": pl.Float64}),
        )

    def price_at(self, store_product_id, at) -> np.ndarray:
        """The price in effect for each (store product, moment) pair; vectorized."""
        lines = pl.DataFrame({"store_product_id": pl.Series(store_product_id, dtype=pl.Int64),
                              "at": pl.Series(at, dtype=pl.Datetime("us"))}).with_row_index("_i")
        if self.changes.height:
            lines = lines.sort("at").join_asof(
                self.changes.sort("valid_from"), left_on="at", right_on="valid_from",
                by="store_product_id", strategy="backward", check_sortedness=False)
        else:
            lines = lines.with_columns(new_price=pl.lit(None, dtype=pl.Float64))
        lines = lines.join(self.opening, on="store_product_id", how="left")
        missing = lines.filter(pl.col("price").is_null() & pl.col("new_price").is_null())
        if missing.height:
            raise KeyError(f"no price for store_product_id {missing['store_product_id'][0]}")
        return lines.sort("_i").select(pl.coalesce("new_price", "price"))["new_price"].to_numpy()

    def closing(self) -> pl.DataFrame:
        """Prices in effect at the end of the day (tomorrow's opening)."""
        last = self.changes.sort("valid_from").group_by("store_product_id").agg(pl.col("new_price").last())
        return self.opening.join(last, on="store_product_id", how="left").select(
            "store_product_id", pl.coalesce("new_price", "price").alias("price"))


def end_of_day(business_date: date) -> datetime:
    return datetime.combine(business_date, datetime.max.time())
