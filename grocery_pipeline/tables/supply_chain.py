"""Tables of the supply_chain group: stock movements and end-of-day stock in stores and
distribution centers, and the truck shipments that replenish the stores.

Stock rules: store_inventory(d).on_hand = store_inventory(d-1).on_hand + sum of that store
product's store_inventory_txn quantities on d; on a store product's first day (no row for d-1) the
opening stock is store_products.initial_on_hand. Rows are carried for every store product ever
listed, so a product that stops selling keeps its row. The same holds for dc_inventory and
dc_inventory_txn per (DC, product), whose opening stock on the first day is 0 (the first supplier
receipt fills it). On-hand is never negative.
"""

from __future__ import annotations

import polars as pl

from grocery_pipeline.tables import BUSINESS_DATE, LOADED_AT, Column, Table

GROUP = "supply_chain"
I64, F64, STR, BOOL, TS = pl.Int64(), pl.Float64(), pl.String(), pl.Boolean(), pl.Datetime("us")

STORE_INVENTORY_TXN = Table(
    "store_inventory_txn", GROUP,
    "Every movement of store stock: SALE (in-store receipt line), ONLINE_SALE (delivery order "
    "line picked), RECEIVING (truck unloaded), SHRINK (spoilage, damage, theft) and ADJUSTMENT "
    "(cycle-count correction). Quantities are signed: negative takes stock off the shelf.",
    (
        Column("txn_id", I64, "Transaction id (unique across days)."),
        Column("store_id", I64, "Store.", references=("stores", "store_id")),
        Column("store_product_id", I64, "Store product moved.", references=("store_products", "store_product_id")),
        Column("product_id", I64, "Product (SKU) moved.", references=("products", "product_id")),
        Column("txn_type", STR, "SALE, ONLINE_SALE, RECEIVING, SHRINK or ADJUSTMENT."),
        Column("quantity", I64, "Signed units: negative for sales and shrink, positive for receiving."),
        Column("txn_ts", TS, "Moment of the movement."),
        Column("reference_id", I64, "receipt_id (SALE), order_id (ONLINE_SALE) or shipment_id (RECEIVING); "
               "null for SHRINK and ADJUSTMENT.", nullable=True),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("txn_id",),
)

STORE_INVENTORY = Table(
    "store_inventory", GROUP,
    "End-of-day stock of every store product (a state chain: each day starts from the previous "
    "day's closing stock). A product at or under its reorder point is replenished overnight.",
    (
        Column("store_product_id", I64, "Store product.", references=("store_products", "store_product_id")),
        Column("store_id", I64, "Store.", references=("stores", "store_id")),
        Column("product_id", I64, "Product (SKU).", references=("products", "product_id")),
        Column("on_hand", I64, "Units on hand at the end of the business date (>= 0)."),
        Column("reorder_point", I64, "Reorder point in force (from store_products)."),
        Column("order_up_to", I64, "Target stock after replenishment (from store_products)."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("store_product_id", "business_date"),
    read_back=True,
)

DC_INVENTORY_TXN = Table(
    "dc_inventory_txn", GROUP,
    "Every movement of distribution-center stock: SUPPLIER_RECEIPT (vendor delivery) and "
    "SHIPMENT_OUT (picked onto a truck for a store). Quantities are signed.",
    (
        Column("txn_id", I64, "Transaction id (unique across days)."),
        Column("dc_id", I64, "Distribution center.", references=("distribution_centers", "dc_id")),
        Column("product_id", I64, "Product (SKU) moved.", references=("products", "product_id")),
        Column("txn_type", STR, "SUPPLIER_RECEIPT or SHIPMENT_OUT."),
        Column("quantity", I64, "Signed units: positive for receipts, negative for shipments out."),
        Column("txn_ts", TS, "Moment of the movement."),
        Column("reference_id", I64, "shipment_id for SHIPMENT_OUT; null for supplier receipts.", nullable=True),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("txn_id",),
)

DC_INVENTORY = Table(
    "dc_inventory", GROUP,
    "End-of-day stock of every product in every distribution center (a state chain). A product "
    "under its reorder point is reordered from the supplier and received the next morning.",
    (
        Column("dc_id", I64, "Distribution center.", references=("distribution_centers", "dc_id")),
        Column("product_id", I64, "Product (SKU).", references=("products", "product_id")),
        Column("on_hand", I64, "Units on hand at the end of the business date (>= 0)."),
        Column("reorder_point", I64, "Units under which the DC reorders from the supplier."),
        Column("order_up_to", I64, "Target stock after a supplier receipt."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("dc_id", "product_id", "business_date"),
    read_back=True,
)

SHIPMENTS = Table(
    "shipments", GROUP,
    "Store replenishment trucks that run on the business date: planned at the previous day's close "
    "for every store product at or under its reorder point, loaded at the DC, driven, unloaded. "
    "Refrigerated products travel only on refrigerated trucks; a truck runs one shipment at a time.",
    (
        Column("shipment_id", I64, "Shipment id (unique across days)."),
        Column("dc_id", I64, "Shipping distribution center.", references=("distribution_centers", "dc_id")),
        Column("store_id", I64, "Receiving store.", references=("stores", "store_id")),
        Column("truck_id", I64, "Truck assigned.", references=("trucks", "truck_id")),
        Column("refrigerated", BOOL, "True for a refrigerated load (on a refrigerated truck)."),
        Column("scheduled_at", TS, "Moment the shipment was planned (close of the previous business date)."),
        Column("loading_at", TS, "Start of loading at the DC (stock leaves the DC's books)."),
        Column("departed_at", TS, "Departure from the DC."),
        Column("arrived_at", TS, "Arrival at the store."),
        Column("unloading_at", TS, "Start of unloading at the store."),
        Column("completed_at", TS, "End of unloading: the stock is on the store's books."),
        Column("truck_back_at", TS, "Return of the truck to the DC (free for its next trip)."),
        Column("distance_miles", F64, "Road distance from the DC to the store, one way."),
        Column("line_count", I64, "Products on the shipment."),
        Column("units", I64, "Units shipped."),
        Column("cases", I64, "Cases shipped (within the truck's capacity)."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("shipment_id",),
    read_back=True,
)

SHIPMENT_LINES = Table(
    "shipment_lines", GROUP,
    "Products on each shipment: full cases up to the store product's order-up-to level.",
    (
        Column("shipment_id", I64, "Shipment.", references=("shipments", "shipment_id")),
        Column("line_number", I64, "Line position on the shipment, from 1."),
        Column("store_product_id", I64, "Store product replenished.",
               references=("store_products", "store_product_id")),
        Column("product_id", I64, "Product (SKU).", references=("products", "product_id")),
        Column("units", I64, "Units shipped (whole cases)."),
        Column("cases", I64, "Cases shipped."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("shipment_id", "line_number"),
)

TRUCK_MOVES = Table(
    "truck_moves", GROUP,
    "Status history of each shipment's truck: SCHEDULED (at the previous close) -> LOADING -> "
    "IN_TRANSIT -> ARRIVED -> UNLOADING -> COMPLETED, in the partition of the shipment's business date.",
    (
        Column("shipment_id", I64, "Shipment.", references=("shipments", "shipment_id")),
        Column("event_seq", I64, "Position of the status in the shipment's history, from 1."),
        Column("truck_id", I64, "Truck.", references=("trucks", "truck_id")),
        Column("status", STR, "SCHEDULED, LOADING, IN_TRANSIT, ARRIVED, UNLOADING or COMPLETED."),
        Column("status_ts", TS, "Moment the shipment entered the status."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("shipment_id", "event_seq"),
)

TABLES = (STORE_INVENTORY_TXN, STORE_INVENTORY, DC_INVENTORY_TXN, DC_INVENTORY, SHIPMENTS, SHIPMENT_LINES,
          TRUCK_MOVES)
