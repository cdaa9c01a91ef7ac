"""Tables of the delivery group: home-delivery orders, their items and status history, the
bundles drivers carry and their stops, and the per-customer state behind repeat ordering.

Money rules (to the cent): line_total = quantity * unit_price - discount, where quantity is the
units actually delivered (0 for out-of-stock or cancelled lines); subtotal = sum of line_total;
total = subtotal - basket_discount + tax + delivery_fee + tip. A cancelled order keeps its item
rows (quantity 0) and has every amount at 0.
"""

from __future__ import annotations

import polars as pl

from grocery_pipeline.tables import BUSINESS_DATE, LOADED_AT, Column, Table

GROUP = "delivery"
I64, F64, STR, BOOL, DATE, TS = pl.Int64(), pl.Float64(), pl.String(), pl.Boolean(), pl.Date(), pl.Datetime("us")

ORDERS = Table(
    "orders", GROUP,
    "Home-delivery orders: the customer, the store that fulfils it (chosen by proximity), when it "
    "was placed, the promised window, the money and how it ended (DELIVERED or CANCELLED).",
    (
        Column("order_id", I64, "Order id (unique across days)."),
        Column("customer_id", I64, "Customer who ordered.", references=("customers", "customer_id")),
        Column("store_id", I64, "Store that picks and delivers the order.", references=("stores", "store_id")),
        Column("placed_at", TS, "Moment the order was placed; its prices are the prices in effect then."),
        Column("window_start", TS, "Start of the promised delivery window."),
        Column("window_end", TS, "End of the promised delivery window."),
        Column("status", STR, "Final status: DELIVERED or CANCELLED."),
        Column("cancel_reason", STR, "CUSTOMER or OUT_OF_STOCK for cancelled orders; null otherwise.",
               nullable=True),
        Column("delivered_at", TS, "Moment the driver handed the order over; null if cancelled.", nullable=True),
        Column("tender_type", STR, "How it was paid: CREDIT, DEBIT, EBT, MOBILE_WALLET or GIFT_CARD."),
        Column("line_count", I64, "Number of item rows (including out-of-stock ones)."),
        Column("item_count", I64, "Units delivered (sum of item quantities)."),
        Column("subtotal", F64, "Sum of the item line totals (USD)."),
        Column("basket_discount", F64, "Order-level coupon taken off the subtotal (USD)."),
        Column("tax", F64, "Sales tax on the item line totals (USD)."),
        Column("delivery_fee", F64, "Delivery fee charged (USD)."),
        Column("tip", F64, "Driver tip (USD)."),
        Column("total", F64, "subtotal - basket_discount + tax + delivery_fee + tip (USD)."),
        Column("distance_miles", F64, "Straight-line distance from the store to the customer's home."),
        Column("order_number", I64, "The customer's n-th delivery order (1 = first)."),
        Column("days_since_prior_order", I64,
               "Days since the customer's previous delivery order, capped at 30 (30 means 30 or more); "
               "null on a first order.", nullable=True),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("order_id",),
)

ORDER_ITEMS = Table(
    "order_items", GROUP,
    "Products on each delivery order at the price in effect when it was placed, with what was "
    "actually delivered: fulfilled, partly fulfilled, substituted by a product of the same "
    "subcategory, out of stock, or cancelled with the order.",
    (
        Column("order_id", I64, "Order.", references=("orders", "order_id")),
        Column("line_number", I64, "Order in which the item was added to the cart, from 1."),
        Column("store_product_id", I64, "Store product delivered (the substitute when substituted).",
               references=("store_products", "store_product_id")),
        Column("product_id", I64, "Product (SKU) of store_product_id.", references=("products", "product_id")),
        Column("priced_at", TS, "Moment whose price applies (the order's placed_at)."),
        Column("quantity_ordered", I64, "Units the customer asked for."),
        Column("quantity", I64, "Units delivered (0 when out of stock or cancelled)."),
        Column("unit_price", F64, "Price per unit in effect at priced_at (USD)."),
        Column("discount", F64, "Promotion discount on the delivered units (USD, >= 0)."),
        Column("line_total", F64, "quantity * unit_price - discount (USD)."),
        Column("promotion_id", I64, "Promotion applied to the line, if any.", nullable=True,
               references=("promotions", "promotion_id")),
        Column("promo_code", STR, "Code of the promotion applied, if any.", nullable=True),
        Column("item_status", STR, "FULFILLED, PARTIAL, SUBSTITUTED, OUT_OF_STOCK or CANCELLED."),
        Column("substituted_for_store_product_id", I64,
               "The store product the customer ordered, when this line is a substitute.", nullable=True,
               references=("store_products", "store_product_id")),
        Column("reordered", BOOL, "True when the customer received this product in an earlier delivery order."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("order_id", "line_number"),
)

ORDER_EVENTS = Table(
    "order_events", GROUP,
    "Status history of each order: PENDING -> CONFIRMED -> PICKING -> OUT_FOR_DELIVERY -> "
    "DELIVERED, or ending in CANCELLED. Timestamps never go backwards within an order.",
    (
        Column("order_id", I64, "Order.", references=("orders", "order_id")),
        Column("event_seq", I64, "Position of the event in the order's history, from 1."),
        Column("status", STR, "PENDING, CONFIRMED, PICKING, OUT_FOR_DELIVERY, DELIVERED or CANCELLED."),
        Column("event_ts", TS, "Moment the order entered the status."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("order_id", "event_seq"),
)

BUNDLES = Table(
    "bundles", GROUP,
    "Delivery runs: 1 to 5 orders of one store placed close in time and space, carried by the "
    "available driver nearest the orders' centroid. A driver is never on two runs at once.",
    (
        Column("bundle_id", I64, "Bundle id (unique across days)."),
        Column("store_id", I64, "Store the run leaves from.", references=("stores", "store_id")),
        Column("driver_id", I64, "Driver carrying the run.", references=("drivers", "driver_id")),
        Column("dispatched_at", TS, "Moment the driver left the store."),
        Column("returned_at", TS, "Moment the driver was back at the store and free again."),
        Column("order_count", I64, "Orders in the run (1-5)."),
        Column("route_miles", F64, "Length of the route: store, each stop in sequence, back to the store."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("bundle_id",),
    read_back=True,
)

BUNDLE_STOPS = Table(
    "bundle_stops", GROUP,
    "Stops of each delivery run in driving order; every delivered order is exactly one stop.",
    (
        Column("bundle_id", I64, "Bundle.", references=("bundles", "bundle_id")),
        Column("stop_seq", I64, "Position of the stop on the route, from 1."),
        Column("order_id", I64, "Order handed over at the stop.", references=("orders", "order_id")),
        Column("arrival_ts", TS, "Moment the driver reached the customer."),
        Column("miles_from_previous", F64, "Driving distance from the previous stop (or the store)."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("bundle_id", "stop_seq"),
)

DELIVERY_CUSTOMERS = Table(
    "delivery_customers", GROUP,
    "State carried from day to day, one row per customer who has ever placed a delivery order, as "
    "of the end of the business date: order count, last order date and the products the customer "
    "habitually receives (at most 40, the least recently received dropped first). Drives repeat "
    "ordering and the reordered flag; unnest the lists to analyse habits.",
    (
        Column("customer_id", I64, "Customer.", references=("customers", "customer_id")),
        Column("first_order_on", DATE, "Business date of the customer's first delivery order."),
        Column("last_order_on", DATE, "Business date of the customer's latest delivery order."),
        Column("orders_placed", I64, "Delivery orders placed so far."),
        Column("habit_product_ids", pl.List(pl.Int64()),
               "Products the customer has received in delivery orders, most recently received first."),
        Column("habit_times_bought", pl.List(pl.Int64()),
               "For each habit product, the number of delivery orders in which it was received."),
        Column("habit_last_bought_on", pl.List(pl.Date()),
               "For each habit product, the business date it was last received."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("customer_id", "business_date"),
    read_back=True,
)

TABLES = (ORDERS, ORDER_ITEMS, ORDER_EVENTS, BUNDLES, BUNDLE_STOPS, DELIVERY_CUSTOMERS)
