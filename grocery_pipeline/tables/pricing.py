"""Tables of the pricing group: the shelf-price changes of each price tick and the day-opening
price state that keeps every read of "the price in effect at t" bounded to one day.

Shelf prices only: promotions are applied on the sold line (its `discount`), never folded into
`new_price`, so `line_total = quantity * unit_price - discount` holds with `unit_price` read here.
"""

from __future__ import annotations

import polars as pl

from grocery_pipeline.tables import BUSINESS_DATE, LOADED_AT, Column, Table

GROUP = "pricing"
I64, F64, STR, DATE, TS = pl.Int64(), pl.Float64(), pl.String(), pl.Date(), pl.Datetime("us")

# Why a store product's shelf price changed at a tick.
REASONS = ("VOLATILITY", "RUSH_HOUR", "LATE_NIGHT", "DISCOUNT", "SURGE", "PROMOTION_START", "PROMOTION_END")

PRICE_UPDATES = Table(
    "price_updates", GROUP,
    "Shelf-price changes, one row per store product repriced at a price tick (hourly by default). "
    "Each row says what the price was, what it became, why (market volatility of the category, "
    "rush-hour or late-night adjustment, flash discount, surge, promotion start or end) and the "
    "window [valid_from, valid_to) in which the new price is in effect. A sold line's unit price is "
    "the new_price of the latest row with valid_from <= its timestamp, else the day's opening price "
    "in price_snapshots.",
    (
        Column("tick_at", TS, "Start of the price tick that made the change."),
        # Checked against the day's price_snapshots (itself checked against store_products) rather
        # than the whole store_products history, so a tick's audit cost does not grow with history.
        Column("store_product_id", I64, "Store product repriced; one of the day's price_snapshots rows."),
        Column("old_price", F64, "Shelf price in effect just before the change (USD)."),
        Column("new_price", F64, "Shelf price from valid_from on (USD); unit cost < new_price <= msrp."),
        Column("change_pct", F64, "Change in percent of the old price, e.g. -4.35 (bounded per tick)."),
        Column("reason", STR, "Why: " + ", ".join(REASONS) + "."),
        Column("valid_from", TS, "Moment the new price takes effect (the tick start)."),
        Column("valid_to", TS, "Moment the store product's next price change takes effect (exclusive); "
                               "the price's next scheduled review."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("store_product_id", "tick_at"),
    partitioning="price_tick",
)

PRICE_SNAPSHOTS = Table(
    "price_snapshots", GROUP,
    "The shelf price of every store product at the opening (00:00) of each business date, with "
    "the reference prices and review schedule the ticks carry from day to day. The price in effect "
    "at any moment of a day is this opening price overridden by that day's price_updates, so no "
    "read ever scans earlier days. Written with the day's first price tick.",
    (
        Column("store_product_id", I64, "Store product.", references=("store_products", "store_product_id")),
        Column("store_id", I64, "Store.", references=("stores", "store_id")),
        Column("product_id", I64, "Product (SKU).", references=("products", "product_id")),
        Column("price", F64, "Shelf price in effect at 00:00 of the business date (USD)."),
        Column("price_since", TS, "Moment this price took effect."),
        Column("last_reason", STR, "Reason of the change that set this price; LIST_PRICE if never changed."),
        Column("next_review_at", TS, "Tick at which the price is next changed (valid_to of the current price)."),
        Column("promotion_until", DATE, "Last day of the promotion covering the product on this date, if "
                                        "any; at its next review the shelf price returns to the list price "
                                        "and stays there until the promotion ends.", nullable=True),
        Column("list_price", F64, "Store list price the price reverts toward (USD)."),
        Column("msrp", F64, "Product MSRP: the price never exceeds it (USD)."),
        Column("unit_cost", F64, "Product unit cost: the price always exceeds it (USD)."),
        Column("volatility_class", STR, "Price volatility of the department: HIGH, MEDIUM, LOW or VERY_LOW."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("business_date", "store_product_id"),
)

TABLES: tuple[Table, ...] = (PRICE_UPDATES, PRICE_SNAPSHOTS)
