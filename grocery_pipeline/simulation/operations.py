"""One business day of operations, told in order: the trucks planned last night set off, shoppers
and delivery customers decide what they want, the shelf serves them in time order while trucks
unload, delivery orders are picked (with substitutes), bundled and driven out, the close counts
shrink, and the day's closing stock, DC stock and customer habits become tomorrow's state.

Pure: a function of the settings, the dictionaries, the day's dimensions and prices, and
yesterday's state. Every random stream comes from (seed, "operations", date, stream name).
"""

from __future__ import annotations

from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Callable

import numpy as np
import polars as pl

from grocery_pipeline.simulation import delivery, inventory, sales, shopping, supply_chain
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.simulation.inventory import StockLedger
from grocery_pipeline.simulation.pricing import PriceBook
from grocery_pipeline.simulation.shopping import Assortment
from grocery_pipeline.simulation.world import World

TXN_ID_STRIDE = 100_000_000
DC_TXN_ID_STRIDE = 10_000_000
SHRINK_SECONDS = 23 * 3600 + 15 * 60       # counted after the 23:00 close
ADJUSTMENT_SECONDS = 23 * 3600 + 30 * 60
LOADED_AT = time(2, 0)                      # the day's facts land at 02:00 the next morning
STORE_PRODUCT_STRIDE = 1_000_000            # store_product_id = store_id * stride + product_id
# The tables whose ids a day numbers, and the stride of a day's ids
ID_STRIDES = {"receipts": sales.RECEIPT_ID_STRIDE, "orders": delivery.ORDER_ID_STRIDE,
              "bundles": delivery.BUNDLE_ID_STRIDE, "shipments": supply_chain.SHIPMENT_ID_STRIDE,
              "store_inventory_txn": TXN_ID_STRIDE, "dc_inventory_txn": DC_TXN_ID_STRIDE}


@dataclass(frozen=True)
class Numbering:
    """Where the ids of a day's rows start: each kind's ids are the day's number times the kind's
    stride, plus 1, 2, ... A day simulated region by region numbers each region's rows after those
    of the regions before it (`after`), so the day's ids stay dense and unique."""

    day: int                                                 # the day's number (1 = the first day)
    taken: dict[str, int] = field(default_factory=dict)      # ids each kind's earlier regions took

    def first(self, table: str) -> int:
        """The first id of the table's rows to number now."""
        return self.day * ID_STRIDES[table] + 1 + self.taken.get(table, 0)

    def after(self, frames: dict[str, pl.DataFrame]) -> "Numbering":
        """Where ids start once the rows of `frames` (one region's tables) are numbered."""
        taken = {table: self.taken.get(table, 0) + frames[table].height for table in ID_STRIDES}
        full = [table for table, n in taken.items() if n > ID_STRIDES[table]]
        if full:
            raise ValueError(f"day {self.day} numbers more than {ID_STRIDES[full[0]]:,} rows of {full[0]}: "
                             f"its ids would run into the next day's")
        return Numbering(self.day, taken)


# The columns of yesterday's store_inventory a day reads (its dates stay in the file)
STORE_STOCK_SCHEMA = {"store_product_id": pl.Int64, "store_id": pl.Int64, "product_id": pl.Int64,
                      "on_hand": pl.Int64, "reorder_point": pl.Int64, "order_up_to": pl.Int64}


@dataclass(frozen=True)
class Yesterday:
    """The state the previous business date closed with."""

    # store_inventory rows of d-1, or a scan of them (`collected` reads it; `regions.simulate_day`
    # reads a region's rows of it at a time)
    store_stock: pl.DataFrame | pl.LazyFrame
    dc_stock: pl.DataFrame      # dc_inventory rows of d-1
    customers: pl.DataFrame     # delivery_customers rows of d-1
    # shipments rows of d-1 (truck_id, truck_back_at at least): a truck back after midnight loads later
    shipments: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(
        schema={"truck_id": pl.Int64, "truck_back_at": pl.Datetime("us")}))

    def collected(self) -> "Yesterday":
        """With the store stock read, if it was a scan."""
        if isinstance(self.store_stock, pl.LazyFrame):
            return replace(self, store_stock=self.store_stock.collect())
        return self

    @classmethod
    def before_first_day(cls) -> "Yesterday":
        return cls(
            pl.DataFrame(schema=STORE_STOCK_SCHEMA),
            pl.DataFrame(schema={"dc_id": pl.Int64, "product_id": pl.Int64, "on_hand": pl.Int64,
                                 "reorder_point": pl.Int64, "order_up_to": pl.Int64}),
            delivery.empty_state(),
        )


def loaded_at(business_date: date) -> datetime:
    return datetime.combine(business_date + timedelta(days=1), LOADED_AT)


def opening_stock(yesterday: pl.DataFrame, store_products: pl.DataFrame) -> pl.DataFrame:
    """Every store product carried or listed today with its opening stock: yesterday's close, or
    the initial stock on its first day. Levels in force come from today's assortment."""
    live = store_products.select("store_product_id", "store_id", "product_id", "reorder_point", "order_up_to",
                                 "initial_on_hand")
    carried = yesterday.select("store_product_id", "store_id", "product_id", "on_hand",
                               old_reorder_point="reorder_point", old_order_up_to="order_up_to")
    old_ids, new_ids = carried["store_product_id"].to_numpy(), live["store_product_id"].to_numpy()
    plain = all(dtype == pl.Int64 for f in (carried, live) for dtype in f.dtypes) \
        and not any(any(f.null_count().row(0)) for f in (carried, live))
    if plain and shopping.strictly_increasing(old_ids) and shopping.strictly_increasing(new_ids):
        return _merged_stock(carried, live, old_ids, new_ids)
    return (carried.join(live, on="store_product_id", how="full", coalesce=True)
            .with_columns(store_id=pl.coalesce("store_id", "store_id_right"),
                          product_id=pl.coalesce("product_id", "product_id_right"),
                          opening=pl.coalesce("on_hand", "initial_on_hand"),
                          reorder_point=pl.coalesce("reorder_point", "old_reorder_point"),
                          order_up_to=pl.coalesce("order_up_to", "old_order_up_to"))
            .select("store_product_id", "store_id", "product_id", "opening", "reorder_point", "order_up_to")
            .sort("store_product_id"))


def _merged_stock(carried: pl.DataFrame, live: pl.DataFrame, old_ids: np.ndarray, new_ids: np.ndarray) -> pl.DataFrame:
    """`opening_stock` of two id-ordered frames without nulls, merged by id in numpy: a full join
    of two 8M-row frames cost seconds and gigabytes at xl. Where yesterday and today list the
    same store products, the columns are taken as they are."""
    if np.array_equal(old_ids, new_ids):
        return pl.DataFrame([live["store_product_id"], carried["store_id"], carried["product_id"],
                             carried["on_hand"].alias("opening"), live["reorder_point"], live["order_up_to"]])
    # Today's rows not carried from yesterday are slotted in among yesterday's, in id order.
    pos = np.searchsorted(old_ids, new_ids)
    fresh = old_ids[np.minimum(pos, len(old_ids) - 1)] != new_ids if len(old_ids) else np.ones(len(new_ids), bool)
    at = pos[fresh]
    listed_at = pos + np.cumsum(fresh) - fresh            # where each of today's rows lands

    def carried_first(old: pl.Series, new: pl.Series, name: str) -> pl.Series:
        return pl.Series(name, np.insert(old.to_numpy(), at, new.to_numpy()[fresh]))

    def listed_first(old: pl.Series, new: pl.Series, name: str) -> pl.Series:
        merged = np.insert(old.to_numpy(), at, new.to_numpy()[fresh])
        merged[listed_at] = new.to_numpy()
        return pl.Series(name, merged)

    return pl.DataFrame([
        carried_first(carried["store_product_id"], live["store_product_id"], "store_product_id"),
        carried_first(carried["store_id"], live["store_id"], "store_id"),
        carried_first(carried["product_id"], live["product_id"], "product_id"),
        carried_first(carried["on_hand"], live["initial_on_hand"], "opening"),
        listed_first(carried["old_reorder_point"], live["reorder_point"], "reorder_point"),
        listed_first(carried["old_order_up_to"], live["order_up_to"], "order_up_to"),
    ])


def simulate_day(day: Day, world: World, prices: PriceBook, yesterday: Yesterday,
                 finished: Callable[[dict[str, pl.DataFrame]], None] | None = None, *, share: float = 1.0,
                 numbering: Numbering | None = None) -> dict[str, pl.DataFrame]:
    """The day's operations tables; `finished`, if given, is called with tables that are final
    before the rest (the supply tables, the delivery tables, the receipts), so a caller can write
    them while the day's close is worked out. Parts that do not depend on each other (the trucks and the
    shoppers, the DCs' tables, walk-in and delivery demand, the day's price lookup, the opening shelf and
    what the close needs of it, receipts and delivery settlement, the delivery runs and the pricing of their
    lines, the day's stock movements and the close) run side by side in up to four threads:
    each draws from its own named random stream (or its own stretch of one, taken in order) and
    reads only frozen inputs, so the rows are the same whatever the interleaving.

    `world`, `prices` and `yesterday` may be one region's (see `regions.simulate_day`): `share`
    is then its share of the chain's traffic, and `numbering` says where its ids start."""
    d = day.business_date
    numbering = numbering or Numbering(day.index + 1)
    yesterday = yesterday.collected()
    landed = loaded_at(d)
    settings = day.settings
    multiplier = world.traffic_multiplier * share
    with ThreadPoolExecutor(max_workers=3, thread_name_prefix="operations") as beside:
        # Supply: last night's plan becomes today's trucks (independent of today's shoppers).
        supplied = beside.submit(_supply, d, numbering, landed, world, yesterday)
        dc_tables = beside.submit(_dc_tables, d, numbering, landed, supplied)   # their day is done with the trucks
        assortment = shopping.build_assortment(world.stores, world.store_products, world.products, world.promotions)

        # Demand: shoppers walking in (the longest part: a thread of its own), customers ordering at home.
        walk_ins = beside.submit(_walk_in_demand, day, world, assortment, settings.receipts_per_day * multiplier)
        # Also beside the delivery demand, once the trucks are planned: the shelf's ledger and where each
        # item sits in it, what the close needs of the shelf and the substitutes' index, so that the shelf
        # opens as soon as the walk-ins are drawn.
        stocked = beside.submit(_stocked, supplied, assortment)
        shelf = beside.submit(_shelf_at_close, day, stocked, assortment)
        substitutes = beside.submit(delivery.SubstituteShelf, assortment.items)
        drivers = drivers_on_duty(world)
        orders = delivery.plan_orders(day.rng("operations", "orders"), d, world.customers, yesterday.customers,
                                      assortment, drivers, settings.delivery_orders_per_day * multiplier)
        habits = delivery.habits_long(yesterday.customers.join(orders.select("customer_id"), on="customer_id",
                                                               how="semi"))
        cart = delivery.cart_requests(day.rng("operations", "carts"), d, orders, habits, assortment)
        # The day's price lookup while the last walk-ins are drawn and the shelf serves (a core is free then).
        prepared = beside.submit(prices.prepare)
        trips, wanted = walk_ins.result()
        supply = supplied.result()
        del walk_ins  # a finished future keeps its result: the basket requests would outlive their last use
        # Beside the shelf: the walk-in lines priced.
        walk_in_prices = beside.submit(_walk_in_prices, d, wanted, assortment, prepared)

        # The shelf through the day: walk-in baskets and delivery carts (at placement) in time order.
        ledger, slot_of_item = stocked.result()[:2]
        del stocked
        served = serve_shelf(ledger, assortment, wanted, orders, cart, supply.unloaded, substitutes.result(),
                             slot_of_item)
        del substitutes, slot_of_item

        # In-store receipts, beside the delivery orders: what was picked, bundles, drivers, status history.
        walk_in_granted = served.walk_in_granted
        walk_in_items = wanted["item"].to_numpy()
        receipted = beside.submit(_receipts, day, numbering, landed, trips, wanted, walk_in_granted, walk_in_prices,
                                  assortment)
        del walk_in_prices
        prepared.result()
        deliveries = settle_orders(day, orders, cart, served.cart_granted, served.substitute,
                                   served.substitute_granted, habits, assortment, prices, world, numbering, landed,
                                   beside)
        del habits
        if finished is not None:
            finished({"shipments": supply.shipments, "shipment_lines": supply.shipment_lines,
                      "truck_moves": supply.truck_moves, "orders": deliveries.orders,
                      "order_items": deliveries.order_items, "order_events": deliveries.order_events,
                      "bundles": deliveries.bundles, "bundle_stops": deliveries.bundle_stops})

        # Tomorrow's delivery habits and the day's other movements of store stock (in time order, once the
        # receipts are finished) beside the close.
        habits_tomorrow = beside.submit(_next_customers, d, landed, yesterday.customers, deliveries)
        receipts, receipt_lines = receipted.result()
        del receipted, wanted, trips
        if finished is not None:
            finished({"receipts": receipts, "receipt_lines": receipt_lines})
        moved = beside.submit(store_movements, d, receipt_lines, deliveries, supply.unloaded, supply.shipments)
        sold = np.concatenate([walk_in_granted, deliveries.picked_units])
        sold_items = np.concatenate([walk_in_items, deliveries.picked_items])
        # The shelf is shut: its store-product-sized structures go before the close draws its adjustments.
        del assortment, cart, served, walk_in_granted, walk_in_items
        close = closing_adjustments(day, ledger, shelf.result(), sold_items, sold)
        del ledger, shelf, sold, sold_items
        customers = habits_tomorrow.result()
        del habits_tomorrow
        if finished is not None:
            finished({"delivery_customers": customers})
        store_txn = store_transactions(d, numbering.first("store_inventory_txn"), moved.result(), close, landed)
        del moved
        store_inventory = close_stock(supply.stock, close, d, landed)
        del close
        dc_txn, dc_inventory = dc_tables.result()
    return {
        "receipts": receipts, "receipt_lines": receipt_lines,
        "orders": deliveries.orders, "order_items": deliveries.order_items, "order_events": deliveries.order_events,
        "bundles": deliveries.bundles, "bundle_stops": deliveries.bundle_stops, "delivery_customers": customers,
        "store_inventory_txn": store_txn, "store_inventory": store_inventory,
        "dc_inventory_txn": dc_txn, "dc_inventory": dc_inventory,
        "shipments": supply.shipments, "shipment_lines": supply.shipment_lines, "truck_moves": supply.truck_moves,
    }


@dataclass(frozen=True)
class Supply:
    """The day's trucks and the stock they move: opening store stock, DC stock and what unloads when."""
    stock: pl.DataFrame
    dc: pl.DataFrame
    supplier: pl.DataFrame
    dc_ledger: StockLedger
    filled: pl.DataFrame
    shipments: pl.DataFrame
    shipment_lines: pl.DataFrame
    truck_moves: pl.DataFrame
    unloaded: pl.DataFrame      # shipment lines by completion, to unload onto the shelf


def _supply(d: date, numbering: Numbering, landed: datetime, world: World, yesterday: Yesterday) -> Supply:
    stock = opening_stock(yesterday.store_stock, world.store_products)
    needs = supply_chain.replenishment_needs(
        yesterday.store_stock.select("store_product_id", "on_hand"), world.store_products, world.stores,
        world.products)
    loads, planned_lines = supply_chain.plan_shipments(needs, world.stores, world.distribution_centers,
                                                       world.trucks, d, numbering.first("shipments"),
                                                       supply_chain.trucks_away(yesterday.shipments, d))
    dc = supply_chain.dc_opening(yesterday.dc_stock, supply_chain.dc_levels(world.store_products, world.stores))
    supplier = supply_chain.supplier_receipts(dc)
    dc_ledger, filled = supply_chain.allocate(dc, supplier, loads, planned_lines)
    shipments, shipment_lines, truck_moves = supply_chain.shipment_tables(loads, filled, d, landed)
    unloaded = filled.join(loads.select("shipment_id", "completed"), on="shipment_id").sort("shipment_id",
                                                                                            "store_product_id")
    return Supply(stock, dc, supplier, dc_ledger, filled, shipments, shipment_lines, truck_moves, unloaded)


def _stocked(supplied: Future, assortment: Assortment) -> tuple[StockLedger, np.ndarray, np.ndarray, np.ndarray]:
    """The opening shelf's ledger, the assortment rows' `ledger_slots` in it, and the assortment's
    `positions` of its ids (item, live)."""
    stock = supplied.result().stock
    ledger = StockLedger(stock["store_product_id"].to_numpy(), stock["opening"].to_numpy())
    item, live = assortment.positions(ledger.store_product_ids)
    return ledger, ledger_slots(item, live, len(assortment.shelf["store_product_id"])), item, live


def _shelf_at_close(day: Day, stocked: Future, assortment: Assortment) -> ShelfAtClose:
    _, slot_of_item, item, live = stocked.result()
    return shelf_at_close(day, item, live, slot_of_item, assortment)


def _dc_tables(d: date, numbering: Numbering, landed: datetime, supplied: Future) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The DCs' transactions and closing stock: final once the trucks are loaded."""
    supply = supplied.result()
    dc_ids, dc_on_hand = supply.dc_ledger.snapshot()
    dc_inventory = (pl.DataFrame({"dc_id": dc_ids // supply_chain.DC_KEY,
                                  "product_id": dc_ids % supply_chain.DC_KEY, "on_hand": dc_on_hand})
                    .join(supply.dc.select("dc_id", "product_id", "reorder_point", "order_up_to"),
                          on=["dc_id", "product_id"])
                    .sort("dc_id", "product_id")
                    .with_columns(business_date=pl.lit(d), _loaded_at=pl.lit(landed)))
    txns = dc_transactions(d, numbering.first("dc_inventory_txn"), supply.supplier, supply.filled, supply.shipments,
                           landed)
    return txns, dc_inventory


def _walk_in_demand(day: Day, world: World, assortment: Assortment, receipts: float
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    trips = sales.plan_trips(day.rng("operations", "trips"), world.customers, assortment, receipts,
                             day.business_date.isoweekday() >= 6).frame
    return trips, sales.basket_requests(day.rng("operations", "baskets"), trips, assortment)


def _walk_in_prices(d: date, wanted: pl.DataFrame, assortment: Assortment, prepared: Future) -> np.ndarray:
    prices: PriceBook = prepared.result()
    return prices.price_at(assortment.shelf["store_product_id"][wanted["item"].to_numpy()],
                           shopping.seconds_to_ts(d, wanted["seconds"].to_numpy()))


def _receipts(day: Day, numbering: Numbering, landed: datetime, trips: pl.DataFrame, wanted: pl.DataFrame,
              granted: np.ndarray, walk_in_prices: Future, assortment: Assortment) -> tuple[pl.DataFrame, pl.DataFrame]:
    return sales.build_receipts(day.rng("operations", "receipts"), day.business_date, numbering.first("receipts"), trips,
                                wanted, granted,
                                walk_in_prices.result(), assortment, landed)


def _next_customers(d: date, landed: datetime, customers: pl.DataFrame, deliveries: Deliveries) -> pl.DataFrame:
    received = deliveries.order_items.select("order_id", "product_id", "quantity").filter(pl.col("quantity") > 0).join(
        deliveries.orders.select("order_id", "customer_id"), on="order_id")
    return delivery.next_state(customers, d, deliveries.orders, received, landed)


@dataclass(frozen=True)
class Served:
    walk_in_granted: np.ndarray      # per basket line
    cart_granted: np.ndarray         # per cart line (0 when the customer cancelled)
    substitute: np.ndarray           # per cart line: the assortment row picked instead, or -1
    substitute_granted: np.ndarray


def serve_shelf(ledger: StockLedger, assortment: Assortment, wanted: pl.DataFrame, orders: pl.DataFrame,
                cart: pl.DataFrame, unloaded: pl.DataFrame, substitutes: delivery.SubstituteShelf,
                slot_of_item: np.ndarray) -> Served:
    """Walk-in baskets and delivery carts (at placement) served in time order while trucks unload;
    a cart line that finds nothing gets a substitute when the customer accepts one (`substitutes`:
    the assortment's items indexed; `slot_of_item`: the assortment rows' `ledger_slots`)."""
    sp_of_item = assortment.shelf["store_product_id"]
    cancels = orders["customer_cancels"].to_numpy()
    cart_order = cart["order"].to_numpy()
    cart_item, cart_qty = cart["item"].to_numpy(), cart["quantity"].to_numpy()
    cart_live = ~cancels[cart_order]
    n_walk_in = wanted.height
    demand_slots = np.concatenate([slot_of_item[wanted["item"].to_numpy()], slot_of_item[cart_item[cart_live]]])
    if (demand_slots < 0).any():
        raise KeyError("a basket or cart line asks for a store product this ledger does not stock")
    demand_qty = np.concatenate([wanted["quantity"].to_numpy(), cart_qty[cart_live]])
    demand_seconds = np.concatenate([wanted["seconds"].to_numpy(), orders["placed"].to_numpy()[cart_order[cart_live]]])
    live_cart_rows = np.flatnonzero(cart_live)
    substitute = np.full(cart.height, -1, dtype=np.int64)
    substitute_granted = np.zeros(cart.height, dtype=np.int64)
    accepts = orders["accepts_substitutes"].to_numpy()

    def pick_substitutes(short: np.ndarray, granted_short: np.ndarray, ledger: StockLedger) -> None:
        online = short >= n_walk_in
        rows = live_cart_rows[short[online] - n_walk_in]
        rows = rows[(granted_short[online] == 0) & accepts[cart_order[rows]]]
        if not len(rows):
            return
        chosen = substitutes.choose(cart_item[rows], cart_qty[rows], ledger.on_hand_of)
        rows, chosen = rows[chosen >= 0], chosen[chosen >= 0]
        substitute[rows] = chosen
        substitute_granted[rows] = ledger.serve(sp_of_item[chosen], cart_qty[rows])

    granted = inventory.serve_by_hour(
        ledger, demand_seconds, None, demand_qty,
        unloaded["completed"].to_numpy(), unloaded["store_product_id"].to_numpy(), unloaded["units"].to_numpy(),
        on_shortfall=pick_substitutes, demand_slots=demand_slots)
    cart_granted = np.zeros(cart.height, dtype=np.int64)
    cart_granted[live_cart_rows] = granted[n_walk_in:]
    return Served(granted[:n_walk_in].copy(), cart_granted, substitute, substitute_granted)


def ledger_slots(item: np.ndarray, live: np.ndarray, n_items: int) -> np.ndarray:
    """Each assortment row's slot in the ledger, -1 where it has none (`item`, `live`: the
    assortment's `positions` of the ledger's ids): lines are then located by a gather rather than
    a search of the ledger. In int32 when the slots fit: the close keeps it through the settlement."""
    slot_of_item = np.full(n_items, -1, dtype=np.int32 if len(item) < 2 ** 31 else np.int64)
    slot_of_item[item[live]] = np.flatnonzero(live)
    return slot_of_item


def drivers_on_duty(world: World) -> pl.DataFrame:
    """The day's drivers with their DC and the location of the store they work from."""
    return world.drivers.join(world.stores.select(pl.col("store_id").alias("home_store_id"), "dc_id",
                                                  home_store_lat="lat", home_store_lon="lon"),
                              on="home_store_id").sort("driver_id")


ITEM_STATUSES = ("CANCELLED", "SUBSTITUTED", "FULFILLED", "PARTIAL", "OUT_OF_STOCK")   # by precedence


@dataclass(frozen=True)
class Deliveries:
    orders: pl.DataFrame
    order_items: pl.DataFrame
    order_events: pl.DataFrame
    bundles: pl.DataFrame
    bundle_stops: pl.DataFrame
    picked_items: np.ndarray               # per delivered item line, what left the shelf (assortment row)
    picked_units: np.ndarray
    picking: pl.DataFrame                  # order_id, picked_at


def settle_orders(day: Day, orders: pl.DataFrame, cart: pl.DataFrame, granted: np.ndarray, substitute: np.ndarray,
                  substitute_granted: np.ndarray, habits: pl.DataFrame, assortment: Assortment, prices: PriceBook,
                  world: World, numbering: Numbering, landed: datetime, beside: Executor | None = None) -> Deliveries:
    """The delivery tables of the day's orders as picked. The runs (bundles, drivers, routes and
    status history) need no prices: given `beside`, they are worked out there while the lines
    are priced, on the same random stream (the pricing's draws are taken first, as before)."""
    d = day.business_date
    rng = day.rng("operations", "settle")
    n_orders = orders.height
    order_of = cart["order"].to_numpy()
    wanted_qty = cart["quantity"].to_numpy()
    cancelled_by_customer = orders["customer_cancels"].to_numpy()[order_of]
    substituted = (granted == 0) & (substitute >= 0) & (substitute_granted > 0)
    item = np.where(substituted, substitute, cart["item"].to_numpy())
    quantity = np.where(substituted, substitute_granted, granted)
    status = shopping.labels(ITEM_STATUSES, np.select(
        [cancelled_by_customer, substituted, granted >= wanted_qty, granted > 0], [0, 1, 2, 3], 4))
    picked_anything = np.bincount(order_of, weights=quantity, minlength=n_orders) > 0
    customer_cancel = orders["customer_cancels"].to_numpy()
    order_status = shopping.labels(("CANCELLED", "DELIVERED"), picked_anything)
    cancel_reason = pl.select(pl.when(pl.Series(customer_cancel)).then(pl.lit("CUSTOMER"))
                              .when(~pl.Series(picked_anything)).then(pl.lit("OUT_OF_STOCK"))
                              .otherwise(None).alias("r"))["r"]

    # The pricing's draws, in stream order; the rest of the stream is the runs'.
    kind = orders["kind"].to_numpy()[order_of]
    takes_deal = rng.random(len(item)) < shopping.PROMO_USE[kind]
    coupon_draw = rng.random(n_orders)
    tip_draws = delivery.tip_draws(rng, n_orders)
    tender = shopping.labels(shopping.ONLINE_TENDERS, rng.choice(len(shopping.ONLINE_TENDERS), size=n_orders,
                                                                 p=shopping.ONLINE_TENDER_MIX))
    runs_in = (rng, orders, picked_anything, order_status, cancel_reason, assortment.stores, world)
    dispatching = beside.submit(_runs, *runs_in) if beside is not None else None

    placed_ts = shopping.seconds_to_ts(d, orders["placed"].to_numpy())
    shelf = assortment.shelf
    sp = shelf["store_product_id"][item]
    unit_price = prices.price_at(sp, placed_ts[order_of])
    money = shopping.price_lines(unit_price, quantity, shelf["deal"][item], shelf["deal_value"][item], takes_deal)
    promotion_id, promo_code = assortment.promotion_columns(item, money.on_promotion)
    order_ids = numbering.first("orders") + orders["order"].to_numpy()
    customer_of_line = orders["customer_id"].to_numpy()[order_of]
    product_of_line = shelf["product_id"][item]
    bought_before = pl.DataFrame({"customer_id": customer_of_line, "product_id": product_of_line}) \
        .with_row_index("line").join(habits.select("customer_id", "product_id"), on=["customer_id", "product_id"],
                                     how="semi")["line"].to_numpy()
    reordered = np.zeros(len(item), dtype=bool)
    reordered[bought_before] = True
    order_items = pl.DataFrame({
        "order_id": order_ids[order_of],
        "line_number": shopping.within_group_rank(order_of) + 1,
        "store_product_id": sp,
        "product_id": product_of_line,
        "priced_at": placed_ts[order_of],
        "quantity_ordered": wanted_qty,
        "quantity": quantity,
        "unit_price": shopping.cents(money.unit_cents),
        "discount": shopping.cents(money.discount_cents),
        "line_total": shopping.cents(money.line_cents),
        "promotion_id": promotion_id,
        "promo_code": promo_code,
        "item_status": status,
        "substituted_for_store_product_id": pl.Series(
            np.where(substituted, shelf["store_product_id"][cart["item"].to_numpy()], -1)).replace(-1, None),
        "reordered": reordered,
        "business_date": d, "_loaded_at": landed,
    }, schema_overrides={"business_date": pl.Date})

    subtotal = np.bincount(order_of, weights=money.line_cents, minlength=n_orders).astype(np.int64)
    tax = shopping.tax_cents(money.line_cents, shelf["tax_rate"][item], order_of)
    tax = np.pad(tax, (0, n_orders - len(tax)))
    delivered = picked_anything
    first_order = orders["order_number"].to_numpy() == 1
    coupon = np.where(delivered & first_order & (subtotal >= 3_500), 1_000,
                      np.where(delivered & (subtotal >= 4_000) & (coupon_draw < 0.04), 500, 0))
    fee = np.where(delivered, delivery.delivery_fee_cents(subtotal, delivery.member(orders["customer_id"].to_numpy())), 0)
    tip = np.where(delivered, delivery.tip_cents(tip_draws, subtotal), 0)
    runs, stops, events, delivered_at = dispatching.result() if dispatching is not None else _runs(*runs_in)
    stores = assortment.stores
    bundle_ids = numbering.first("bundles") + runs["bundle"].to_numpy()
    picked_at = events.filter(pl.col("status") == "PICKING").select("order", "seconds")
    picked_seconds = np.zeros(n_orders, dtype=np.int64)
    picked_seconds[picked_at["order"].to_numpy()] = picked_at["seconds"].to_numpy()

    orders_out = pl.DataFrame({
        "order_id": order_ids,
        "customer_id": orders["customer_id"],
        "store_id": orders["store_id"],
        "placed_at": placed_ts,
        "window_start": shopping.seconds_to_ts(d, orders["window_start"].to_numpy()),
        "window_end": shopping.seconds_to_ts(d, delivery.window_end(orders["window_start"].to_numpy())),
        "status": order_status,
        "cancel_reason": cancel_reason,
        "delivered_at": pl.Series(shopping.seconds_to_ts(d, np.maximum(delivered_at, 0))).to_frame("t").select(
            pl.when(pl.Series(delivered)).then(pl.col("t")))["t"],
        "tender_type": tender,
        "line_count": np.bincount(order_of, minlength=n_orders).astype(np.int64),
        "item_count": np.bincount(order_of, weights=quantity, minlength=n_orders).astype(np.int64),
        "subtotal": shopping.cents(subtotal),
        "basket_discount": shopping.cents(coupon),
        "tax": shopping.cents(tax),
        "delivery_fee": shopping.cents(fee),
        "tip": shopping.cents(tip),
        "total": shopping.cents(subtotal - coupon + tax + fee + tip),
        "distance_miles": orders["distance_miles"],
        "order_number": orders["order_number"],
        "days_since_prior_order": orders["days_since_prior_order"],
        "business_date": d, "_loaded_at": landed,
    }, schema_overrides={"business_date": pl.Date})
    order_events = events.select(
        order_id=pl.col("order") + numbering.first("orders"),
        event_seq="event_seq", status="status",
        event_ts=pl.lit(datetime.combine(d, time())) + pl.duration(seconds=pl.col("seconds")),
    ).with_columns(business_date=pl.lit(d), _loaded_at=pl.lit(landed))
    bundles = pl.DataFrame({
        "bundle_id": bundle_ids,
        "store_id": stores["store_id"].to_numpy()[runs["store_index"].to_numpy()] if runs.height else np.zeros(0, np.int64),
        "driver_id": runs["driver_id"],
        "dispatched_at": shopping.seconds_to_ts(d, runs["dispatched"].to_numpy()),
        "returned_at": shopping.seconds_to_ts(d, runs["returned"].to_numpy()),
        "order_count": runs["order_count"],
        "route_miles": runs["route_miles"],
        "business_date": d, "_loaded_at": landed,
    }, schema_overrides={"business_date": pl.Date, "driver_id": pl.Int64, "order_count": pl.Int64,
                         "route_miles": pl.Float64})
    bundle_stops = pl.DataFrame({
        "bundle_id": numbering.first("bundles") + stops["bundle"].to_numpy(),
        "stop_seq": stops["stop_seq"],
        "order_id": order_ids[stops["order"].to_numpy()],
        "arrival_ts": shopping.seconds_to_ts(d, stops["arrival"].to_numpy()),
        "miles_from_previous": stops["miles_from_previous"],
        "business_date": d, "_loaded_at": landed,
    }, schema_overrides={"business_date": pl.Date, "stop_seq": pl.Int64, "miles_from_previous": pl.Float64})
    took = quantity > 0
    return Deliveries(
        orders_out, order_items, order_events, bundles, bundle_stops,
        picked_items=item[took], picked_units=quantity[took],
        picking=pl.DataFrame({"order_id": order_ids, "picked_at": shopping.seconds_to_ts(d, picked_seconds)}),
    )


def _runs(rng: np.random.Generator, orders: pl.DataFrame, delivered: np.ndarray, order_status: pl.Series,
          cancel_reason: pl.Series, stores: pl.DataFrame, world: World
          ) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, np.ndarray]:
    """The delivered orders' runs: bundles, routes and drivers, then every order's status
    history. Returns the runs by bundle, the stops, the events and each order's delivery moment
    (seconds, -1 when not delivered)."""
    n_orders = orders.height
    delivered_orders = orders.filter(pl.Series(delivered))
    bundles_of = delivery.form_bundles(delivered_orders, stores)
    routes = delivery.plan_routes(delivered_orders, bundles_of.select("order", "bundle"), stores)
    stops = routes.join(delivered_orders.select("order", "lat", "lon", "store_index"), on="order").sort("bundle", "stop_seq")
    per_bundle = (stops.group_by("bundle").agg(
        store_index=pl.col("store_index").first(),
        round_trip_seconds=pl.col("round_trip_seconds").first(), route_miles=pl.col("route_miles").first(),
        order_count=pl.len().cast(pl.Int64), first_leg=pl.col("arrival_offset").min())
        .join(bundles_of.select("bundle", "window_start", "last_placed").unique(), on="bundle").sort("bundle"))
    # Centroids by numpy in stop order: bit-identical whatever the thread count.
    stop_bundle = stops["bundle"].to_numpy()
    stop_count = np.bincount(stop_bundle, minlength=per_bundle.height)
    per_bundle = per_bundle.with_columns(
        centroid_lat=np.bincount(stop_bundle, weights=stops["lat"].to_numpy(), minlength=per_bundle.height) / stop_count,
        centroid_lon=np.bincount(stop_bundle, weights=stops["lon"].to_numpy(), minlength=per_bundle.height) / stop_count)
    # Leave so the first stop is reached early in the window, once the last order is picked.
    per_bundle = per_bundle.with_columns(planned_dispatch=pl.max_horizontal(
        pl.col("window_start") - pl.col("first_leg") + pl.Series(rng.integers(0, 1200, per_bundle.height)),
        pl.col("last_placed") + delivery.PICKING_SECONDS))
    drivers = drivers_on_duty(world)
    runs = delivery.assign_drivers(per_bundle, drivers, stores).join(per_bundle, on="bundle").sort("bundle")
    stops = stops.join(runs.select("bundle", "dispatched"), on="bundle").with_columns(
        arrival=pl.col("dispatched") + pl.col("arrival_offset")).sort("bundle", "stop_seq")

    # Picking starts before the run leaves; orders that found nothing were picked in vain.
    dispatched = np.full(n_orders, -1, dtype=np.int64)
    delivered_at = np.full(n_orders, -1, dtype=np.int64)
    stop_orders = stops["order"].to_numpy()
    dispatched[stop_orders] = stops["dispatched"].to_numpy()
    delivered_at[stop_orders] = stops["arrival"].to_numpy()
    pick_lead = rng.integers(900, 2100, n_orders)
    picking = np.where(delivered, dispatched - pick_lead, orders["window_start"].to_numpy() - 1800 - pick_lead)
    events_in = pl.DataFrame({
        "order": orders["order"], "placed": orders["placed"], "status": order_status, "cancel_reason": cancel_reason,
        "picking": picking, "dispatched": pl.Series(dispatched).replace(-1, None),
        "delivered": pl.Series(delivered_at).replace(-1, None)})
    return runs, stops, delivery.order_events(rng, events_in), delivered_at


@dataclass(frozen=True)
class Close:
    ids: np.ndarray          # every store product in the ledger, sorted
    after_sales: np.ndarray  # on hand after the day's sales and receiving
    shrink: np.ndarray       # units lost (>= 0)
    adjustment: np.ndarray   # signed cycle-count corrections


@dataclass(frozen=True)
class ShelfAtClose:
    """Per ledger slot, what the close needs of the shelf. None of it depends on the day's sales,
    so it is worked out beside them and the assortment can go before the close; it is kept in
    narrow types, as it lives through the delivery settlement."""
    live: np.ndarray           # the store sells the product today
    slot_of_item: np.ndarray   # each assortment row's ledger slot (`ledger_slots`), to count the sales
    department: np.ndarray     # row of `rates` (the last row, rate 0, where not live)
    rates: np.ndarray          # shrink rate per department, then 0.0
    perishable: np.ndarray     # perishable and live

    @property
    def shrink_rate(self) -> np.ndarray:
        """The department's shrink rate of every slot (0 where not live)."""
        return self.rates[self.department]


def shelf_at_close(day: Day, item: np.ndarray, live: np.ndarray, slot_of_item: np.ndarray,
                   assortment: Assortment) -> ShelfAtClose:
    """`ShelfAtClose` of the ledger's store products (`item`, `live`: the assortment's `positions`
    of the ledger's ids, `slot_of_item` from `ledger_slots`)."""
    rates = dict(day.dictionaries.departments.select("department", "shrink_rate").iter_rows())
    rates = np.array([rates.get(d, 0.0) for d in assortment.departments] + [0.0])
    department = assortment.shelf["department_index"][item].astype(np.int8 if len(rates) <= 127 else np.int64)
    department[~live] = len(rates) - 1
    return ShelfAtClose(live, slot_of_item, department, rates, assortment.shelf["perishable"][item] & live)


def closing_adjustments(day: Day, ledger: StockLedger, shelf: ShelfAtClose, sold_items: np.ndarray,
                        sold: np.ndarray) -> Close:
    """Shrink and cycle-count corrections at the close, for the store products sold today
    (`sold_items`: assortment rows of the day's sold lines, `sold`: their units)."""
    rng = day.rng("operations", "close")
    ids, on_hand = ledger.store_product_ids, ledger.on_hand   # the ledger is done with: no copies
    sold_units = np.bincount(shelf.slot_of_item[sold_items], weights=sold, minlength=len(ids))
    shrink = inventory.shrink_units(rng, on_hand, sold_units, shelf.shrink_rate, shelf.perishable)
    del sold_units
    shrink[~shelf.live] = 0
    adjustment = inventory.cycle_count_adjustments(rng, on_hand - shrink)
    adjustment[~shelf.live] = 0
    return Close(ids, on_hand, shrink, adjustment)


def close_stock(stock: pl.DataFrame, close: Close, business_date: date, landed: datetime) -> pl.DataFrame:
    if not np.array_equal(stock["store_product_id"].to_numpy(), close.ids):
        raise RuntimeError("closing stock does not cover exactly the store products that opened the day")
    return (stock.select("store_product_id", "store_id", "product_id",
                         on_hand=pl.Series(close.after_sales - close.shrink + close.adjustment),
                         reorder_point="reorder_point", order_up_to="order_up_to")
            .with_columns(business_date=pl.lit(business_date), _loaded_at=pl.lit(landed)))


TXN_TYPES = ("RECEIVING", "SALE", "ONLINE_SALE", "SHRINK", "ADJUSTMENT")


def store_movements(business_date: date, receipt_lines: pl.DataFrame, deliveries: Deliveries,
                    unloaded: pl.DataFrame, shipments: pl.DataFrame) -> pl.DataFrame:
    """The day's sales, online sales and receiving of store stock in time order (at the same moment:
    sales, then online sales, then receiving): all of `store_transactions` but the close's."""
    code = {t: i for i, t in enumerate(TXN_TYPES)}
    sale = receipt_lines.select("store_product_id", kind=pl.lit(code["SALE"]), quantity=-pl.col("quantity"),
                                txn_ts="priced_at", reference_id="receipt_id")
    online = deliveries.order_items.filter(pl.col("quantity") > 0).join(
        deliveries.picking, on="order_id", maintain_order="left").select(
        "store_product_id", kind=pl.lit(code["ONLINE_SALE"]), quantity=-pl.col("quantity"), txn_ts="picked_at",
        reference_id="order_id")
    receiving = unloaded.join(shipments.select("shipment_id", "completed_at"), on="shipment_id",
                              maintain_order="left").select(
        "store_product_id", kind=pl.lit(code["RECEIVING"]), quantity="units", txn_ts="completed_at",
        reference_id="shipment_id")
    return _stacked([sale, online, receiving]).sort("txn_ts", maintain_order=True)


def _stacked(frames: list[pl.DataFrame]) -> pl.DataFrame:
    return pl.concat([frame.with_columns(pl.col("kind").cast(pl.Int8), pl.col("quantity").cast(pl.Int64),
                                         pl.col("txn_ts").cast(pl.Datetime("us")))
                      for frame in frames], how="diagonal")


def store_transactions(business_date: date, first_id: int, movements: pl.DataFrame, close: Close,
                       landed: datetime) -> pl.DataFrame:
    """Every movement of store stock, numbered in time order (`movements` from `store_movements`).
    The close's shrink and adjustments follow every movement up to their moments, as a stable
    sort of everything would place them."""
    midnight = datetime.combine(business_date, time())
    code = {t: i for i, t in enumerate(TXN_TYPES)}
    lost = close.shrink > 0
    adjusted = close.adjustment != 0
    shrink_at = midnight + timedelta(seconds=SHRINK_SECONDS)
    adjusted_at = midnight + timedelta(seconds=ADJUSTMENT_SECONDS)
    shrink = pl.DataFrame({"store_product_id": close.ids[lost], "kind": code["SHRINK"], "quantity": -close.shrink[lost],
                           "txn_ts": shrink_at})
    adjustment = pl.DataFrame({"store_product_id": close.ids[adjusted], "kind": code["ADJUSTMENT"],
                               "quantity": close.adjustment[adjusted], "txn_ts": adjusted_at})
    # Nulls sort first: as the earliest moments they stay ahead of the close.
    moments = movements["txn_ts"].to_physical().fill_null(np.iinfo(np.int64).min).to_numpy()
    cuts = np.searchsorted(moments, pl.Series([shrink_at, adjusted_at], dtype=pl.Datetime("us")).to_physical()
                           .to_numpy(), side="right")
    txns = _stacked([movements[:cuts[0]], shrink, movements[cuts[0]:cuts[1]], adjustment, movements[cuts[1]:]])
    return (txns.with_columns(txn_id=first_id + pl.int_range(pl.len(), dtype=pl.Int64),
                              store_id=pl.col("store_product_id") // STORE_PRODUCT_STRIDE,
                              product_id=pl.col("store_product_id") % STORE_PRODUCT_STRIDE,
                              txn_type=pl.lit(pl.Series(TXN_TYPES)).gather(pl.col("kind")),
                              business_date=pl.lit(business_date), _loaded_at=pl.lit(landed))
            .drop("kind"))


def dc_transactions(business_date: date, first_id: int, supplier: pl.DataFrame, filled: pl.DataFrame,
                    shipments: pl.DataFrame, landed: datetime) -> pl.DataFrame:
    midnight = datetime.combine(business_date, time())
    receipts = supplier.select("dc_id", "product_id", txn_type=pl.lit("SUPPLIER_RECEIPT"), quantity="quantity",
                               txn_ts=pl.lit(midnight + timedelta(seconds=supply_chain.SUPPLIER_RECEIPT_SECONDS)),
                               reference_id=pl.lit(None, dtype=pl.Int64))
    outs = filled.join(shipments.select("shipment_id", "loading_at"), on="shipment_id", maintain_order="left").select(
        "dc_id", "product_id", txn_type=pl.lit("SHIPMENT_OUT"), quantity=-pl.col("units"), txn_ts="loading_at",
        reference_id="shipment_id")
    txns = pl.concat([receipts, outs], how="diagonal_relaxed")
    return (txns.with_columns(quantity=pl.col("quantity").cast(pl.Int64), txn_ts=pl.col("txn_ts").cast(pl.Datetime("us")))
            .sort("txn_ts", "txn_type", "reference_id", "dc_id", "product_id")
            .with_columns(txn_id=first_id + pl.int_range(pl.len(), dtype=pl.Int64),
                          business_date=pl.lit(business_date), _loaded_at=pl.lit(landed)))

