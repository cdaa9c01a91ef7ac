"""The supply chain: at each close, store products at or under their reorder point are ordered
up to their target in whole cases; the serving DC allocates from its stock and loads the trucks
the next morning (refrigerated loads on refrigerated trucks, one trip at a time per truck); the
store books the stock when unloading completes. DCs reorder from suppliers the same way and
receive the next morning."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import numpy as np
import polars as pl

from grocery_pipeline.simulation.geography import haversine_miles
from grocery_pipeline.simulation.inventory import StockLedger
from grocery_pipeline.simulation.shopping import row_of

CASE_PACK = 12                    # units per case
DC_REORDER_COVER = 1.0            # DC reorder point: one full restock of every store it serves
DC_ORDER_UP_TO_COVER = 2.5
SUPPLIER_RECEIPT_SECONDS = 3600   # suppliers deliver to the DC at 01:00
FIRST_LOADING_SECONDS = 2 * 3600  # the first trucks load at 02:00, one every quarter hour
TRUCK_STAGGER_SECONDS = 900
TURNAROUND_SECONDS = 900
DOCK_WAIT_SECONDS = 600
LAST_COMPLETION_SECONDS = 21 * 3600   # a load that cannot be unloaded by 21:00 waits a day
TRUCK_MPH = 42.0
ROAD_FACTOR = 1.25
SCHEDULED_AT = time(23, 0)        # plans are made at the previous day's close
SHIPMENT_ID_STRIDE = 100_000
DC_KEY = 10_000_000               # DC stock ledger key: dc_id * DC_KEY + product_id
MOVES = ("SCHEDULED", "LOADING", "IN_TRANSIT", "ARRIVED", "UNLOADING", "COMPLETED")


def handling_seconds(cases) -> np.ndarray:
    """Loading or unloading time: half an hour plus about a second and a half per case."""
    return (1800 + np.asarray(cases) * 1.5).astype(np.int64)


def dc_levels(store_products: pl.DataFrame, stores: pl.DataFrame) -> pl.DataFrame:
    """Reorder point and order-up-to of each product at each DC, from the stores it serves."""
    restock = _dc_restock(store_products, stores)
    if restock is None:
        restock = (store_products.join(stores.select("store_id", "dc_id"), on="store_id")
                   .group_by("dc_id", "product_id").agg(restock=pl.col("order_up_to").sum()))
    return (restock.select("dc_id", "product_id",
                           reorder_point=(pl.col("restock") * DC_REORDER_COVER).ceil().cast(pl.Int64),
                           order_up_to=(pl.col("restock") * DC_ORDER_UP_TO_COVER).ceil().cast(pl.Int64))
            .sort("dc_id", "product_id"))


def _dc_restock(store_products: pl.DataFrame, stores: pl.DataFrame) -> pl.DataFrame | None:
    """dc_id, product_id, restock (the order-up-to of the DC's stores summed) by counting into a
    DC x product table: joining and grouping the 8M store products of xl took seconds. None when
    the ids do not make a small table (or a column has nulls)."""
    columns = store_products.select("store_id", "product_id", "order_up_to")
    if any(columns.null_count().row(0)) or stores["store_id"].null_count() or stores["dc_id"].null_count():
        return None
    product = columns["product_id"].to_numpy()
    width = int(product.max(initial=0)) + 1
    dcs = np.unique(stores["dc_id"].to_numpy())
    if int(product.min(initial=0)) < 0 or len(dcs) * width > 4 * len(product) + 1_000_000:
        return None
    by_store = np.argsort(stores["store_id"].to_numpy(), kind="stable")
    store_ids, dc_rank = stores["store_id"].to_numpy()[by_store], np.searchsorted(dcs, stores["dc_id"].to_numpy()[by_store])
    at = row_of(store_ids, columns["store_id"].to_numpy())
    served = at >= 0
    key = dc_rank[at[served]] * width + product[served]
    lines = np.bincount(key, minlength=len(dcs) * width)
    # integer sums, exact in float64 far beyond any order-up-to
    total = np.bincount(key, weights=columns["order_up_to"].to_numpy()[served], minlength=len(dcs) * width)
    present = np.flatnonzero(lines)
    return pl.DataFrame({"dc_id": dcs[present // width], "product_id": present % width,
                         "restock": total[present].astype(np.int64)})


def dc_opening(previous: pl.DataFrame, levels: pl.DataFrame) -> pl.DataFrame:
    """Every DC product carried or newly needed, with its opening stock (0 for a new one) and the
    levels in force today (0 for products no store carries any more, so they are not reordered)."""
    carried = previous.select("dc_id", "product_id", opening=pl.col("on_hand"))
    return (carried.join(levels, on=["dc_id", "product_id"], how="full", coalesce=True)
            .with_columns(pl.col("opening").fill_null(0), pl.col("reorder_point").fill_null(0),
                          pl.col("order_up_to").fill_null(0))
            .sort("dc_id", "product_id"))


def supplier_receipts(dc: pl.DataFrame) -> pl.DataFrame:
    """What suppliers bring this morning: every DC product under its reorder point at the last
    close, back up to its target."""
    return dc.filter(pl.col("opening") < pl.col("reorder_point")).select(
        "dc_id", "product_id", quantity=pl.col("order_up_to") - pl.col("opening"))


def replenishment_needs(stock: pl.DataFrame, store_products: pl.DataFrame, stores: pl.DataFrame,
                        products: pl.DataFrame) -> pl.DataFrame:
    """Store products at or under their reorder point at the last close, ordered up to target in
    whole cases. `stock`: store_product_id, on_hand (yesterday's closing stock)."""
    return (store_products.select("store_product_id", "store_id", "product_id", "reorder_point", "order_up_to")
            .join(stock.select("store_product_id", "on_hand"), on="store_product_id")
            .filter(pl.col("on_hand") <= pl.col("reorder_point"))
            .join(stores.select("store_id", "dc_id"), on="store_id")
            .join(products.select("product_id", "refrigerated"), on="product_id")
            .with_columns(cases=((pl.col("order_up_to") - pl.col("on_hand")) / CASE_PACK).ceil().cast(pl.Int64),
                          urgency=pl.col("on_hand") / pl.col("reorder_point").clip(1))
            .with_columns(units=pl.col("cases") * CASE_PACK)
            .sort("store_product_id"))


def _loads(needs: pl.DataFrame, trucks: pl.DataFrame) -> pl.DataFrame:
    """Split each store's needs into truck loads: refrigerated apart from dry, each within the
    smallest capacity of the trucks that may carry it."""
    has_dry = trucks.group_by("dc_id").agg(dry=(~pl.col("refrigerated")).any())
    capacity = trucks.group_by("dc_id", "refrigerated").agg(capacity=pl.col("capacity_cases").min())
    lines = (needs.join(has_dry, on="dc_id", how="left")
             # a DC without dry trucks sends dry goods on its refrigerated ones
             .with_columns(pool=pl.col("refrigerated") | ~pl.col("dry").fill_null(False))
             .join(capacity.rename({"refrigerated": "pool"}), on=["dc_id", "pool"], how="inner")
             .with_columns(cases=pl.min_horizontal("cases", pl.col("capacity") // 2))
             .with_columns(units=pl.col("cases") * CASE_PACK)
             .sort("dc_id", "store_id", "pool", "urgency", "store_product_id"))
    # Cut the running case count into slices that leave room for the largest line, so no load
    # overflows its truck.
    group = ["dc_id", "store_id", "pool"]
    return lines.with_columns(
        load=((pl.col("cases").cum_sum() - pl.col("cases")).over(group)
              // (pl.col("capacity") - pl.col("cases").max().over(group))))


def trucks_away(previous_shipments: pl.DataFrame, business_date: date) -> pl.DataFrame:
    """Trucks still out on a trip of an earlier day at today's midnight, with the second of today
    from which each may load again (back at the DC plus the turnaround). `previous_shipments`:
    truck_id, truck_back_at of the previous day's shipments."""
    midnight = datetime.combine(business_date, time())
    return (previous_shipments.group_by("truck_id").agg(back=pl.col("truck_back_at").max())
            .select("truck_id", free_at=(pl.col("back") - pl.lit(midnight)).dt.total_seconds() + TURNAROUND_SECONDS)
            .filter(pl.col("free_at") > 0)
            .sort("truck_id"))


def plan_shipments(needs: pl.DataFrame, stores: pl.DataFrame, dcs: pl.DataFrame, trucks: pl.DataFrame,
                   business_date: date, first_id: int, away: pl.DataFrame | None = None) \
        -> tuple[pl.DataFrame, pl.DataFrame]:
    """Truck loads for today and their trips: (shipments, lines) before DC allocation.

    Loads go to the trucks of their pool round robin, the most urgent stores first; each truck runs
    its trips back to back from 02:00, or from its return when yesterday's last trip (to a far
    store) brings it back later (`away`: truck_id, free_at, see `trucks_away`). A load that would
    finish unloading after 21:00 is left for the next day's plan.
    """
    if not needs.height or not trucks.height:
        return _empty_shipments(), _empty_lines()
    lines = _loads(needs, trucks)
    loads = (lines.group_by("dc_id", "store_id", "pool", "load")
             .agg(pl.col("cases").sum(), pl.col("refrigerated").any(), pl.col("urgency").min())
             .join(stores.select("store_id", "lat", "lon"), on="store_id")
             .join(dcs.select("dc_id", dc_lat="lat", dc_lon="lon"), on="dc_id")
             .sort("dc_id", "pool", "urgency", "store_id", "load"))
    fleet = trucks.sort("truck_id").select("dc_id", "truck_id", pool="refrigerated") \
        .with_columns(truck_rank=pl.int_range(pl.len()).over("dc_id", "pool"), fleet=pl.len().over("dc_id", "pool"))
    loads = loads.with_columns(rank=pl.int_range(pl.len()).over("dc_id", "pool")) \
        .join(fleet.select("dc_id", "pool", "fleet").unique(), on=["dc_id", "pool"]) \
        .with_columns(truck_rank=pl.col("rank") % pl.col("fleet"), trip=pl.col("rank") // pl.col("fleet")) \
        .join(fleet.select("dc_id", "pool", "truck_rank", "truck_id"), on=["dc_id", "pool", "truck_rank"]) \
        .sort("truck_id", "trip")
    miles = np.round(haversine_miles(loads["dc_lat"], loads["dc_lon"], loads["lat"], loads["lon"]) * ROAD_FACTOR, 1)
    cases = loads["cases"].to_numpy()
    drive = np.round(miles / TRUCK_MPH * 3600).astype(np.int64)
    load_s, unload_s = handling_seconds(cases), handling_seconds(cases)
    trip_seconds = load_s + drive + DOCK_WAIT_SECONDS + unload_s + drive + TURNAROUND_SECONDS
    loads = loads.with_columns(distance_miles=miles, drive=drive, load_s=load_s, unload_s=unload_s,
                               trip_seconds=trip_seconds)
    if away is None:
        away = pl.DataFrame(schema={"truck_id": pl.Int64, "free_at": pl.Int64})
    loads = loads.join(away.select("truck_id", pl.col("free_at").cast(pl.Int64)), on="truck_id", how="left",
                       maintain_order="left")
    first_slot = FIRST_LOADING_SECONDS + pl.col("truck_rank") * TRUCK_STAGGER_SECONDS
    loads = loads.with_columns(
        loading=(pl.max_horizontal(first_slot, pl.col("free_at").fill_null(0))
                 + (pl.col("trip_seconds").cum_sum() - pl.col("trip_seconds")).over("truck_id"))).drop("free_at")
    loads = loads.with_columns(departed=pl.col("loading") + pl.col("load_s")) \
        .with_columns(arrived=pl.col("departed") + pl.col("drive")) \
        .with_columns(unloading=pl.col("arrived") + DOCK_WAIT_SECONDS) \
        .with_columns(completed=pl.col("unloading") + pl.col("unload_s")) \
        .with_columns(back=pl.col("completed") + pl.col("drive")) \
        .filter(pl.col("completed") <= LAST_COMPLETION_SECONDS) \
        .sort("loading", "truck_id")
    loads = loads.with_columns(shipment_id=first_id + pl.int_range(pl.len(), dtype=pl.Int64))
    lines = lines.join(loads.select("dc_id", "store_id", "pool", "load", "shipment_id"),
                       on=["dc_id", "store_id", "pool", "load"]).sort("shipment_id", "urgency", "store_product_id")
    return loads, lines


def allocate(dc: pl.DataFrame, receipts: pl.DataFrame, loads: pl.DataFrame, lines: pl.DataFrame) -> \
        tuple[StockLedger, pl.DataFrame]:
    """Fill the planned lines from DC stock (after this morning's supplier receipts), loads in
    loading order; a line gets what is left and empty lines are dropped. Returns the DC ledger
    (closing stock) and the filled lines."""
    ledger = StockLedger(dc["dc_id"].to_numpy() * DC_KEY + dc["product_id"].to_numpy(), dc["opening"].to_numpy())
    if receipts.height:
        ledger.receive(receipts["dc_id"].to_numpy() * DC_KEY + receipts["product_id"].to_numpy(),
                       receipts["quantity"].to_numpy())
    if not lines.height:
        return ledger, lines.with_columns(units=pl.lit(0, dtype=pl.Int64))
    ordered = lines.join(loads.select("shipment_id", "loading"), on="shipment_id") \
        .sort("loading", "shipment_id", "urgency", "store_product_id")
    granted = ledger.serve(ordered["dc_id"].to_numpy() * DC_KEY + ordered["product_id"].to_numpy(),
                           ordered["units"].to_numpy())
    filled = ordered.with_columns(units=granted).filter(pl.col("units") > 0) \
        .with_columns(cases=(pl.col("units") / CASE_PACK).ceil().cast(pl.Int64))
    return ledger, filled


def shipment_tables(loads: pl.DataFrame, filled: pl.DataFrame, business_date: date,
                    loaded_at: datetime) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """shipments, shipment_lines and truck_moves of the loads that carry something."""
    midnight = datetime.combine(business_date, time())
    scheduled = datetime.combine(business_date - timedelta(days=1), SCHEDULED_AT)
    totals = filled.group_by("shipment_id").agg(line_count=pl.len().cast(pl.Int64), units=pl.col("units").sum(),
                                                cases=pl.col("cases").sum())
    ts = {c: pl.lit(midnight) + pl.duration(seconds=pl.col(c)) for c in
          ("loading", "departed", "arrived", "unloading", "completed", "back")}
    shipments = (loads.drop("cases").join(totals, on="shipment_id")
                 .select("shipment_id", "dc_id", "store_id", "truck_id", "refrigerated",
                         scheduled_at=pl.lit(scheduled), loading_at=ts["loading"], departed_at=ts["departed"],
                         arrived_at=ts["arrived"], unloading_at=ts["unloading"], completed_at=ts["completed"],
                         truck_back_at=ts["back"], distance_miles="distance_miles", line_count="line_count",
                         units="units", cases="cases")
                 .sort("shipment_id")
                 .with_columns(business_date=pl.lit(business_date), _loaded_at=pl.lit(loaded_at)))
    lines = (filled.sort("shipment_id", "urgency", "store_product_id")
             .select("shipment_id", line_number=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("shipment_id"),
                     store_product_id="store_product_id", product_id="product_id", units="units", cases="cases")
             .with_columns(business_date=pl.lit(business_date), _loaded_at=pl.lit(loaded_at)))
    moves = pl.concat([
        shipments.select("shipment_id", "truck_id", event_seq=pl.lit(i + 1, dtype=pl.Int64), status=pl.lit(status),
                         status_ts=pl.col(column))
        for i, (status, column) in enumerate(zip(MOVES, ("scheduled_at", "loading_at", "departed_at", "arrived_at",
                                                         "unloading_at", "completed_at")))
    ]).sort("shipment_id", "event_seq").with_columns(business_date=pl.lit(business_date), _loaded_at=pl.lit(loaded_at))
    return shipments, lines, moves


def _empty_shipments() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "dc_id": pl.Int64, "store_id": pl.Int64, "pool": pl.Boolean, "load": pl.Int64, "cases": pl.Int64,
        "refrigerated": pl.Boolean, "truck_id": pl.Int64, "distance_miles": pl.Float64, "loading": pl.Int64,
        "departed": pl.Int64, "arrived": pl.Int64, "unloading": pl.Int64, "completed": pl.Int64, "back": pl.Int64,
        "shipment_id": pl.Int64})


def _empty_lines() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "store_product_id": pl.Int64, "store_id": pl.Int64, "product_id": pl.Int64, "dc_id": pl.Int64,
        "urgency": pl.Float64, "units": pl.Int64, "cases": pl.Int64, "shipment_id": pl.Int64})
