"""Tables of the sales group: in-store receipts and their lines.

Money rules (to the cent): line_total = quantity * unit_price - discount; subtotal = sum of the
receipt's line_total; total = subtotal - basket_discount + tax. Tax is charged on the line totals
(general rate on taxable items, grocery rate on food) before any basket-level coupon.
"""

from __future__ import annotations

import polars as pl

from grocery_pipeline.tables import BUSINESS_DATE, LOADED_AT, Column, Table

GROUP = "sales"
I64, F64, STR, BOOL, TS = pl.Int64(), pl.Float64(), pl.String(), pl.Boolean(), pl.Datetime("us")

RECEIPTS = Table(
    "receipts", GROUP,
    "In-store checkouts: one row per receipt, by a loyalty customer or an anonymous shopper, with "
    "the basket's money. A shopper whose every wanted item was out of stock leaves without a receipt.",
    (
        Column("receipt_id", I64, "Receipt id (unique across days)."),
        Column("store_id", I64, "Store where the checkout happened.", references=("stores", "store_id")),
        Column("customer_id", I64, "Loyalty customer who scanned a card; null for anonymous shoppers.",
               nullable=True, references=("customers", "customer_id")),
        Column("receipt_ts", TS, "Moment of checkout (local store time)."),
        Column("trip_type", STR, "Shopping mission: QUICK_TRIP, WEEKLY_SHOP, FAMILY_SHOP or BULK_SHOP."),
        Column("tender_type", STR, "How it was paid: CASH, CREDIT, DEBIT, EBT, MOBILE_WALLET or GIFT_CARD."),
        Column("line_count", I64, "Number of receipt lines (distinct products)."),
        Column("item_count", I64, "Number of units bought (sum of line quantities)."),
        Column("subtotal", F64, "Sum of the line totals, after line promotions (USD)."),
        Column("basket_discount", F64, "Basket-level loyalty coupon taken off the subtotal (USD)."),
        Column("tax", F64, "Sales tax on the line totals (USD)."),
        Column("total", F64, "Amount paid: subtotal - basket_discount + tax (USD)."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("receipt_id",),
)

RECEIPT_LINES = Table(
    "receipt_lines", GROUP,
    "Products on each in-store receipt, at the shelf price in effect at checkout, with any line "
    "promotion. Only what was on the shelf is sold: a line is shortened or dropped when stock ran out.",
    (
        Column("receipt_id", I64, "Receipt.", references=("receipts", "receipt_id")),
        Column("line_number", I64, "Line position on the receipt, from 1."),
        Column("store_product_id", I64, "Store product sold.", references=("store_products", "store_product_id")),
        Column("product_id", I64, "Product (SKU) sold.", references=("products", "product_id")),
        Column("priced_at", TS, "Moment whose price applies (the checkout time)."),
        Column("quantity", I64, "Units sold (>= 1)."),
        Column("unit_price", F64, "Shelf price per unit in effect at priced_at (USD)."),
        Column("discount", F64, "Promotion discount on the line (USD, >= 0)."),
        Column("line_total", F64, "quantity * unit_price - discount (USD)."),
        Column("promotion_id", I64, "Promotion applied to the line, if any.", nullable=True,
               references=("promotions", "promotion_id")),
        Column("promo_code", STR, "Code of the promotion applied, if any.", nullable=True),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("receipt_id", "line_number"),
)

TABLES = (RECEIPTS, RECEIPT_LINES)
