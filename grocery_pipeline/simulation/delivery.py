"""Home delivery: who orders today and from which store, what goes in the cart (habits first),
how orders of a store are bundled into runs, which driver takes each run, the route, and the
status history of every order."""

from __future__ import annotations

from datetime import date, datetime
from itertools import permutations

import numpy as np
import polars as pl

from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.shopping import Assortment

ORDER_ID_STRIDE = 1_000_000
BUNDLE_ID_STRIDE = 1_000_000
HABIT_CAPACITY = 40              # products remembered per customer
# Share of a cart drawn from the customer's habits once they have a few (Instacart: ~59% reorders);
# the rest are products new to the customer.
HABIT_SHARE = 0.64
HABIT_SATURATION = 3.0           # habits needed before half of HABIT_SHARE is reached
DAYS_SINCE_CAP = 30              # days_since_prior_order records 30 for "30 or more"
DELIVERY_TRIP_MIX = np.array([0.40, 0.48, 0.09, 0.03])
# Which of the three nearest stores fulfils an order (a farther one only when it is not much farther).
STORE_RANK_ODDS = np.array([0.76, 0.12, 0.12])
DETOUR_MILES = 4.0
DELIVERY_RADIUS_MILES = 12.0     # stores deliver to homes within this straight-line distance
CUSTOMER_CANCEL_SHARE = 0.02
SUBSTITUTION_ACCEPTED = 0.80     # customers who allow a substitute when an item is out
WINDOW_HOURS = 2
LAST_WINDOW_START_HOUR = 21
MEMBER_SHARE = 30                # percent of customers with a free-delivery membership
# Driving and handover.
DRIVE_MPH = 22.0
ROAD_FACTOR = 1.3
HANDOVER_SECONDS = 240
SHIFT_START_SECONDS = 7 * 3600 + 1800
WAVE_SECONDS = 900
DRIVER_REACH_MILES = 25.0        # drivers work runs of stores near their home store
PICKING_SECONDS = 2400           # a run cannot leave before its last order is picked
MAX_BUNDLE = 5
BUNDLE_ANGLE_GAP = 0.7           # radians between neighbouring orders that splits a bundle


def drive_seconds(miles) -> np.ndarray:
    return np.round(np.asarray(miles) / DRIVE_MPH * 3600).astype(np.int64)


def road_miles(lat1, lon1, lat2, lon2) -> np.ndarray:
    return shopping.local_miles(lat1, lon1, lat2, lon2) * ROAD_FACTOR


# -- who orders ------------------------------------------------------------------------------

def recency_weight(days_since: np.ndarray) -> np.ndarray:
    """Odds of ordering again by days since the last order: low right after an order, highest
    around the weekly and fortnightly shop, and a win-back push for lapsing customers."""
    d = np.asarray(days_since, dtype=np.float64)
    never = np.isnan(d)
    d = np.nan_to_num(d, nan=0.0)
    w = np.clip((d - 0.5) / 6.5, 0.05, 1.0) + 0.35 * np.exp(-((d - 7) / 1.5) ** 2) \
        + 0.25 * np.exp(-((d - 14) / 2.0) ** 2) + np.where(d >= 24, 1.5, 0.0)
    return np.where(never, 0.45, w)


def delivering_stores(assortment: Assortment, drivers: pl.DataFrame) -> np.ndarray:
    """Stores that deliver today: they sell something and have a driver based within reach."""
    stores = assortment.stores
    stocked = assortment.stocked_store_indexes
    if not drivers.height:
        return stocked[:0]
    reach = road_miles(stores["lat"].to_numpy()[stocked, None], stores["lon"].to_numpy()[stocked, None],
                       drivers["home_store_lat"].to_numpy()[None, :], drivers["home_store_lon"].to_numpy()[None, :])
    return stocked[(reach <= DRIVER_REACH_MILES).any(axis=1)]


def smallest(keys: np.ndarray, k: int) -> np.ndarray:
    """Positions of the k smallest keys (no NaN), ascending, ties in position order: what
    `np.argsort(keys, kind="stable")[:k]` gives, without sorting every key."""
    if k >= len(keys):
        return np.argsort(keys, kind="stable")
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    bound = np.partition(keys, k - 1)[k - 1]
    below = np.flatnonzero(keys < bound)
    picked = np.concatenate([below, np.flatnonzero(keys == bound)[:k - len(below)]])
    return picked[np.lexsort((picked, keys[picked]))]


def plan_orders(rng: np.random.Generator, business_date: date, customers: pl.DataFrame, state: pl.DataFrame,
                assortment: Assortment, drivers: pl.DataFrame, expected: float) -> pl.DataFrame:
    """The day's delivery orders (one per customer at most, from customers living within the
    delivery radius of a delivering store), before stock is checked."""
    stores = assortment.stores
    stocked = delivering_stores(assortment, drivers)
    people = customers.select("customer_id", "segment", "lat", "lon", "delivery_propensity").join(
        state.select("customer_id", "last_order_on", "orders_placed"), on="customer_id", how="left").sort("customer_id")
    days_since = people.select((pl.lit(business_date) - pl.col("last_order_on")).dt.total_days()
                               .cast(pl.Float64).fill_null(np.nan).alias("days"))["days"].to_numpy()
    weight = people["delivery_propensity"].to_numpy() * recency_weight(days_since)
    n = int(rng.poisson(expected)) if len(stocked) else 0
    # Draw a few spare customers (exponential race, best keys first) and drop those living
    # outside every delivery zone, rather than measuring every customer's distance.
    keys = rng.exponential(size=people.height) / np.where(weight > 0, weight, np.nan)
    spare = min(people.height, int(n * 1.15) + 20) if n else 0
    candidates = smallest(np.nan_to_num(keys, nan=np.inf), spare)
    near, miles = shopping.nearest_stores(people["lat"].to_numpy()[candidates], people["lon"].to_numpy()[candidates],
                                          stores["lat"].to_numpy()[stocked], stores["lon"].to_numpy()[stocked], k=3)
    in_zone = np.isfinite(keys[candidates]) & (miles[:, 0] <= DELIVERY_RADIUS_MILES) if len(stocked) \
        else np.zeros(len(candidates), dtype=bool)
    chosen = np.flatnonzero(in_zone)[:n]
    chosen = chosen[np.argsort(candidates[chosen], kind="stable")]   # in customer order
    who = candidates[chosen]
    n = len(who)
    buyers = people[who]
    near, miles = near[chosen], miles[chosen]
    odds = STORE_RANK_ODDS[: near.shape[1]]
    rank = rng.choice(near.shape[1], size=n, p=odds / odds.sum()) if n else np.zeros(0, np.int64)
    too_far = miles[np.arange(n), rank] > miles[:, 0] * 1.5 + DETOUR_MILES if n else np.zeros(0, bool)
    rank = np.where(too_far, 0, rank)
    store_index = stocked[near[np.arange(n), rank]] if n else np.zeros(0, np.int64)
    placed = shopping.sample_seconds(rng, n, shopping.DELIVERY_HOURS)
    lead = rng.choice(np.array([1, 2, 3]), size=n, p=[0.5, 0.32, 0.18])
    window_start = np.clip((placed // 3600 + 1 + lead), None, LAST_WINDOW_START_HOUR) * 3600
    window_start = np.maximum(window_start, (placed // 3600 + 1) * 3600)
    previous = buyers["orders_placed"].fill_null(0).to_numpy()
    since = days_since[who]
    kind = shopping.KINDS.index
    return pl.DataFrame({
        "order": np.arange(n, dtype=np.int64),
        "customer_id": buyers["customer_id"],
        "kind": buyers["segment"].replace_strict({k: kind(k) for k in shopping.KINDS[:4]}, return_dtype=pl.Int64),
        "trip_type": rng.choice(len(DELIVERY_TRIP_MIX), size=n, p=DELIVERY_TRIP_MIX).astype(np.int64),
        "store_index": store_index.astype(np.int64),
        "store_id": stores["store_id"].to_numpy()[store_index] if n else np.zeros(0, np.int64),
        "lat": buyers["lat"], "lon": buyers["lon"],
        "distance_miles": np.round(miles[np.arange(n), rank], 2) if n else np.zeros(0),
        "placed": placed.astype(np.int64),
        "window_start": window_start.astype(np.int64),
        "order_number": (previous + 1).astype(np.int64),
        "days_since_prior_order": pl.Series(np.minimum(since, DAYS_SINCE_CAP)).fill_nan(None).cast(pl.Int64),
        "customer_cancels": rng.random(n) < CUSTOMER_CANCEL_SHARE,
        "accepts_substitutes": rng.random(n) < SUBSTITUTION_ACCEPTED,
    })


# -- what goes in the cart -------------------------------------------------------------------

def habits_long(state: pl.DataFrame) -> pl.DataFrame:
    """One row per (customer, habit product) from the state's lists."""
    cols = ["habit_product_ids", "habit_times_bought", "habit_last_bought_on"]
    return (state.select("customer_id", *cols).explode(cols)
            .rename({"habit_product_ids": "product_id", "habit_times_bought": "times_bought",
                     "habit_last_bought_on": "last_bought_on"})
            .drop_nulls("product_id"))


def cart_requests(rng: np.random.Generator, business_date: date, orders: pl.DataFrame, habits: pl.DataFrame,
                  assortment: Assortment) -> pl.DataFrame:
    """The products each order asks for (row `item` of the assortment), habits first in the cart."""
    sizes = shopping.basket_sizes(rng, orders["trip_type"].to_numpy())
    # Habit products the order's store sells today, weighted by how often and how lately bought.
    mine = orders.select("order", "customer_id", "store_id").join(habits, on="customer_id").sort("order", "product_id")
    item, sold_here = assortment.positions(mine["store_id"].to_numpy() * 1_000_000 + mine["product_id"].to_numpy())
    age = (business_date - mine["last_bought_on"]).dt.total_days().to_numpy() if mine.height else np.zeros(0)
    mine = mine.with_columns(item=item, w=mine["times_bought"].to_numpy() / (1.0 + age / 14.0)).filter(sold_here)
    available = np.bincount(mine["order"].to_numpy(), minlength=orders.height)
    share = HABIT_SHARE * available / (available + HABIT_SATURATION)
    want = np.minimum(rng.binomial(sizes, share), available)
    mine = mine.with_columns(key=rng.exponential(size=mine.height) / mine["w"].to_numpy()).sort("order", "key") \
        .with_columns(rank=pl.int_range(pl.len()).over("order"))
    habit_lines = mine.filter(pl.Series(mine["rank"].to_numpy() < want[mine["order"].to_numpy()])) \
        .select("order", "item", habit=pl.lit(True))

    # The rest of the cart is something new to the customer.
    explored = shopping.distinct_picks(rng, assortment, orders["order"].to_numpy(), sizes - want,
                                       orders["store_index"].to_numpy(), orders["kind"].to_numpy(),
                                       orders["trip_type"].to_numpy(), exclude=mine.select(basket="order", item="item"),
                                       spare=1.5)
    lines = pl.concat([habit_lines, explored.select(order="basket", item="item", habit=pl.lit(False))])
    # A customer whose habits cover what the store sells still orders something.
    empty = np.setdiff1d(orders["order"].to_numpy(), lines["order"].to_numpy())
    if len(empty):
        fallback = assortment.sample(rng, orders["store_index"].to_numpy()[empty], orders["kind"].to_numpy()[empty],
                                     orders["trip_type"].to_numpy()[empty])
        lines = pl.concat([lines, pl.DataFrame({"order": empty, "item": fallback, "habit": True})])
    lines = lines.with_columns(cart_key=rng.random(lines.height) + np.where(lines["habit"].to_numpy(), 0.0, 0.4))
    lines = first_lines(lines.sort("order", "cart_key"))
    trip = orders["trip_type"].to_numpy()[lines["order"].to_numpy()]
    return lines.with_columns(quantity=shopping.line_quantities(rng, trip)).drop("cart_key", "habit")


def first_lines(lines: pl.DataFrame) -> pl.DataFrame:
    """The first line of each (order, item) pair, in the lines' order: `unique(keep="first",
    maintain_order=True)` by one sort of the pairs as integers (`shopping.unique_first`) when the
    integers allow."""
    n = lines.height
    order, item = lines["order"], lines["item"]
    plain = n and all(c.dtype == pl.Int64 and not c.null_count() and c.min() >= 0 for c in (order, item))
    items = int(item.max()) + 1 if plain else 0
    if not (plain and (int(order.max()) + 1) * items < 2 ** 62):
        return lines.unique(["order", "item"], keep="first", maintain_order=True)
    first = np.zeros(n, dtype=bool)
    first[shopping.unique_first(order.to_numpy() * items + item.to_numpy())[1]] = True
    return lines.filter(pl.Series(first))


# -- substitutes -----------------------------------------------------------------------------

class SubstituteShelf:
    """The day's items grouped by store and subcategory, indexed once: substitutes are looked up
    hour after hour, and joining the whole assortment on its strings each time cost gigabytes at xl."""

    def __init__(self, items: pl.DataFrame):
        self.store_product_ids = items["store_product_id"].to_numpy()
        # the key only groups equal (store, subcategory) pairs; its values never reach the data
        code = items["subcategory"].cast(pl.Categorical).to_physical().cast(pl.Int64).to_numpy()
        self.key = items["store_id"].to_numpy() * (int(code.max(initial=0)) + 1) + code
        # item rows of each group, in item order
        self.sorted_key = self.key.copy()
        self.order = shopping.sorted_with_order(self.sorted_key)

    def choose(self, wanted_item: np.ndarray, quantity: np.ndarray, on_hand_of) -> np.ndarray:
        """For each wanted item, the item of the same store and subcategory with the most stock
        (at least the quantity; the lowest item on a tie), or -1 when there is none."""
        wanted_item = np.asarray(wanted_item, dtype=np.int64)
        quantity = np.asarray(quantity, dtype=np.int64)
        out = np.full(len(wanted_item), -1, dtype=np.int64)
        if not len(wanted_item):
            return out
        group = self.key[wanted_item]
        lo = np.searchsorted(self.sorted_key, group, side="left")
        counts = np.searchsorted(self.sorted_key, group, side="right") - lo
        line, position = shopping.ragged_ranges(lo, counts)
        item = self.order[position]
        other = item != wanted_item[line]
        line, item = line[other], item[other]
        stock = on_hand_of(self.store_product_ids[item])
        enough = stock >= quantity[line]
        line, item, stock = line[enough], item[enough], stock[enough]
        best = np.lexsort((item, -stock, line))
        first = best[np.r_[True, line[best][1:] != line[best][:-1]]] if len(best) else best
        out[line[first]] = item[first]
        return out


def choose_substitutes(items: pl.DataFrame, wanted_item: np.ndarray, quantity: np.ndarray,
                       on_hand_of) -> np.ndarray:
    """For each wanted item, the item of the same store and subcategory with the most stock
    (at least the quantity), or -1 when there is none."""
    return SubstituteShelf(items).choose(wanted_item, quantity, on_hand_of)


# -- bundles, drivers and routes -------------------------------------------------------------

def form_bundles(orders: pl.DataFrame, stores: pl.DataFrame) -> pl.DataFrame:
    """Group the delivered orders of a store sharing a window into runs of up to five, neighbours
    by bearing from the store; returns order -> bundle (0..b-1) with the bundle's window start and
    the moment its last order was placed."""
    store_lat = stores["lat"].to_numpy()[orders["store_index"].to_numpy()]
    store_lon = stores["lon"].to_numpy()[orders["store_index"].to_numpy()]
    bearing = np.arctan2(orders["lon"].to_numpy() - store_lon, orders["lat"].to_numpy() - store_lat)
    frame = orders.select("order", "store_index", "window_start", "placed").with_columns(bearing=bearing) \
        .sort("store_index", "window_start", "bearing", "order")
    gap = frame.select((pl.col("bearing").diff().over("store_index", "window_start").fill_null(0.0)
                        > BUNDLE_ANGLE_GAP).cum_sum().over("store_index", "window_start"))["bearing"]
    frame = frame.with_columns(run=gap).with_columns(
        chunk=pl.int_range(pl.len()).over("store_index", "window_start", "run") // MAX_BUNDLE)
    starts = frame.select(pl.any_horizontal(pl.col(c).diff().fill_null(1) != 0
                                            for c in ("store_index", "window_start", "run", "chunk")).alias("s"))
    frame = frame.with_columns(bundle=starts["s"].cast(pl.Int64).cum_sum() - 1)
    timing = frame.group_by("bundle").agg(pl.col("window_start").first(), last_placed=pl.col("placed").max())
    return frame.select("order", "bundle").join(timing, on="bundle").sort("order")


def route_stops(store_lat, store_lon, stop_lat: np.ndarray, stop_lon: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Shortest round trip from the store through every stop of each bundle (brute force over at
    most 5! orders). Inputs are (bundles x k) for bundles of k stops; returns the visiting order
    (bundles x k, indices into the stops) and the leg lengths (bundles x k+1, last leg back home)."""
    b, k = stop_lat.shape
    perms = np.array(list(permutations(range(k))), dtype=np.int64)                  # P x k
    # Every directed leg between the store (node 0) and the stops (nodes 1..k) is measured once per
    # bundle; each path then gathers its legs (B x P x k+1) rather than measuring them again.
    node_lat = np.concatenate([np.asarray(store_lat, dtype=np.float64).reshape(b, 1), stop_lat], axis=1)
    node_lon = np.concatenate([np.asarray(store_lon, dtype=np.float64).reshape(b, 1), stop_lon], axis=1)
    leg = road_miles(node_lat[:, :, None], node_lon[:, :, None], node_lat[:, None, :], node_lon[:, None, :])
    home = np.zeros((len(perms), 1), dtype=np.int64)
    path = np.concatenate([home, perms + 1, home], axis=1)                           # P x k+2
    legs = leg.reshape(b, (k + 1) ** 2)[:, path[:, :-1] * (k + 1) + path[:, 1:]]
    best = legs.sum(axis=2).argmin(axis=1)
    rows = np.arange(b)
    return perms[best], legs[rows, best]


def plan_routes(orders: pl.DataFrame, assignment: pl.DataFrame, stores: pl.DataFrame) -> pl.DataFrame:
    """Stop sequence and offsets from dispatch (seconds) for every delivered order, per bundle."""
    frame = orders.select("order", "store_index", "lat", "lon").join(assignment, on="order") \
        .sort("bundle", "order").with_columns(slot=pl.int_range(pl.len()).over("bundle"),
                                              size=pl.len().over("bundle"))
    parts = []
    for k in range(1, MAX_BUNDLE + 1):
        group = frame.filter(pl.col("size") == k)
        if not group.height:
            continue
        n_b = group.height // k
        lat = group["lat"].to_numpy().reshape(n_b, k)
        lon = group["lon"].to_numpy().reshape(n_b, k)
        store = group["store_index"].to_numpy().reshape(n_b, k)[:, 0]
        visit, legs = route_stops(stores["lat"].to_numpy()[store], stores["lon"].to_numpy()[store], lat, lon)
        drive = drive_seconds(legs)
        arrive = np.cumsum(drive[:, :-1], axis=1) + np.arange(k) * HANDOVER_SECONDS
        back = arrive[:, -1] + HANDOVER_SECONDS + drive[:, -1]
        order_ids = group["order"].to_numpy().reshape(n_b, k)
        parts.append(pl.DataFrame({
            "order": np.take_along_axis(order_ids, visit, axis=1).ravel(),
            "bundle": np.repeat(group["bundle"].to_numpy().reshape(n_b, k)[:, 0], k),
            "stop_seq": np.tile(np.arange(1, k + 1), n_b),
            "arrival_offset": arrive.ravel(),
            "miles_from_previous": np.round(legs[:, :-1], 2).ravel(),
            "route_miles": np.repeat(np.round(legs.sum(axis=1), 2), k),
            "round_trip_seconds": np.repeat(back, k),
        }))
    if not parts:
        return pl.DataFrame(schema={"order": pl.Int64, "bundle": pl.Int64, "stop_seq": pl.Int64,
                                    "arrival_offset": pl.Int64, "miles_from_previous": pl.Float64,
                                    "route_miles": pl.Float64, "round_trip_seconds": pl.Int64})
    return pl.concat(parts).sort("bundle", "stop_seq")


def assign_drivers(bundles: pl.DataFrame, drivers: pl.DataFrame, stores: pl.DataFrame) -> pl.DataFrame:
    """Give each bundle the available driver nearest its centroid, in waves of a quarter hour.

    A driver is available once back from the previous run and driven to the bundle's store; a run
    waits (and leaves later) when nobody is. `bundles`: bundle, store_index, centroid lat/lon,
    planned_dispatch, round_trip_seconds. Returns bundle, driver_id, dispatched, returned.
    """
    drivers = drivers.sort("driver_id")
    d_dc = drivers["dc_id"].to_numpy()
    home_lat, home_lon = drivers["home_store_lat"].to_numpy(), drivers["home_store_lon"].to_numpy()
    pos_lat, pos_lon = drivers["lat"].to_numpy().copy(), drivers["lon"].to_numpy().copy()
    free_at = np.full(drivers.height, SHIFT_START_SECONDS, dtype=np.int64)
    b = bundles.sort("bundle")
    b_store = b["store_index"].to_numpy()
    s_lat, s_lon = stores["lat"].to_numpy()[b_store], stores["lon"].to_numpy()[b_store]
    c_lat, c_lon = b["centroid_lat"].to_numpy(), b["centroid_lon"].to_numpy()
    planned = b["planned_dispatch"].to_numpy()
    round_trip = b["round_trip_seconds"].to_numpy()
    n = b.height
    driver_of = np.full(n, -1, dtype=np.int64)
    dispatched = np.zeros(n, dtype=np.int64)
    if n and not drivers.height:
        raise ValueError("no active driver on the day: delivery bundles cannot be dispatched")
    # Drivers of stores within reach of the bundle's store; a store with none borrows from its DC,
    # and a DC with none from the whole chain. Who may drive depends only on the store, so the
    # candidates are worked out once per store: a bundles x drivers matrix runs to gigabytes at xl.
    served, bundle_store = np.unique(b_store, return_inverse=True)
    local = road_miles(stores["lat"].to_numpy()[served][:, None], stores["lon"].to_numpy()[served][:, None],
                       home_lat[None, :], home_lon[None, :]) <= DRIVER_REACH_MILES
    same_dc = stores["dc_id"].to_numpy()[served][:, None] == d_dc[None, :]
    allowed = np.where(local.any(axis=1, keepdims=True), local,
                       np.where(same_dc.any(axis=1, keepdims=True), same_dc, True))
    # Each store's drivers as one run of a flat list, in driver order.
    allowed_store, allowed_driver = np.nonzero(allowed)
    allowed_count = np.bincount(allowed_store, minlength=len(served))
    allowed_first = np.cumsum(allowed_count) - allowed_count
    wave_end = int(planned.min(initial=0)) + WAVE_SECONDS
    while (driver_of < 0).any():
        waiting = np.flatnonzero((driver_of < 0) & (planned < wave_end))
        if not len(waiting):
            wave_end = int(planned[driver_of < 0].min()) + WAVE_SECONDS
            continue
        # (bundle, driver) pairs in that order, of drivers free in time (the others cannot be ready in this wave)
        counts = allowed_count[bundle_store[waiting]]
        owner, position = shopping.ragged_ranges(allowed_first[bundle_store[waiting]], counts)
        pb, pd = waiting[owner], allowed_driver[position]
        free = free_at[pd] <= wave_end
        pb, pd = pb[free], pd[free]
        ready = free_at[pd] + drive_seconds(road_miles(pos_lat[pd], pos_lon[pd], s_lat[pb], s_lon[pb]))
        ok = ready <= wave_end
        pb, pd, ready = pb[ok], pd[ok], ready[ok]
        score = shopping.local_miles(pos_lat[pd], pos_lon[pd], c_lat[pb], c_lon[pb])
        taken = np.zeros(len(free_at), dtype=bool)
        while len(pb):
            # Each bundle's best driver (lowest score, then lowest driver); each driver then takes the
            # closest of the bundles that want it (lowest score, then lowest bundle).
            start = np.flatnonzero(np.r_[True, pb[1:] != pb[:-1]])
            best = np.flatnonzero(score == np.repeat(np.minimum.reduceat(score, start), np.diff(np.r_[start, len(pb)])))
            cand = best[np.r_[True, pb[best][1:] != pb[best][:-1]]]
            cand = cand[np.lexsort((score[cand], pd[cand]))]  # stable: ties keep bundle order
            win = cand[np.r_[True, pd[cand][1:] != pd[cand][:-1]]]
            wb, wd = pb[win], pd[win]
            driver_of[wb] = wd
            dispatched[wb] = np.maximum(planned[wb], ready[win])
            free_at[wd] = dispatched[wb] + round_trip[wb]
            pos_lat[wd], pos_lon[wd] = s_lat[wb], s_lon[wb]
            taken[wd] = True
            keep = (driver_of[pb] < 0) & ~taken[pd]
            pb, pd, ready, score = pb[keep], pd[keep], ready[keep], score[keep]
        wave_end += WAVE_SECONDS
    return pl.DataFrame({
        "bundle": b["bundle"],
        "driver_id": drivers["driver_id"].to_numpy()[driver_of] if n else np.zeros(0, np.int64),
        "dispatched": dispatched,
        "returned": dispatched + round_trip,
    })


# -- status history --------------------------------------------------------------------------

def order_events(rng: np.random.Generator, orders: pl.DataFrame) -> pl.DataFrame:
    """PENDING -> CONFIRMED -> PICKING -> OUT_FOR_DELIVERY -> DELIVERED for delivered orders;
    cancelled orders stop at CANCELLED (before picking when the customer cancels, after it when
    nothing could be picked). `orders`: order, placed, status, cancel_reason, picking, dispatched,
    delivered (seconds). Returns order, event_seq, status, seconds."""
    n = orders.height
    placed = orders["placed"].to_numpy()
    confirmed = placed + rng.integers(60, 300, n)
    status = orders["status"].to_numpy()
    reason = orders["cancel_reason"].to_numpy()
    picking = np.maximum(orders["picking"].fill_null(0).to_numpy(), confirmed + 60)
    cancelled_at = np.where(reason == "CUSTOMER", confirmed + rng.integers(300, 2400, n), picking + rng.integers(120, 900, n))
    delivered = status == "DELIVERED"
    oos = reason == "OUT_OF_STOCK"
    steps = [
        ("PENDING", placed, np.ones(n, dtype=bool)),
        ("CONFIRMED", confirmed, np.ones(n, dtype=bool)),
        ("PICKING", picking, delivered | oos),
        ("OUT_FOR_DELIVERY", orders["dispatched"].fill_null(0).to_numpy(), delivered),
        ("DELIVERED", orders["delivered"].fill_null(0).to_numpy(), delivered),
        ("CANCELLED", cancelled_at, ~delivered),
    ]
    frames = [pl.DataFrame({"order": orders["order"].to_numpy()[mask], "step": i, "status": name,
                            "seconds": seconds[mask]})
              for i, (name, seconds, mask) in enumerate(steps)]
    events = pl.concat(frames).sort("order", "step")
    return events.with_columns(event_seq=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("order")).drop("step")


# -- state -----------------------------------------------------------------------------------

def next_state(state: pl.DataFrame, business_date: date, orders: pl.DataFrame, received: pl.DataFrame,
               loaded_at: datetime) -> pl.DataFrame:
    """Yesterday's customer state advanced by today's orders. `orders`: customer_id of every order
    placed today; `received`: customer_id, product_id of every delivered item (quantity > 0)."""
    today = business_date
    placed = orders.select("customer_id").unique()
    touched = state.join(placed, on="customer_id", how="semi")
    untouched = state.join(placed, on="customer_id", how="anti")
    habits = _kept_habits(habits_long(touched), received.select("customer_id", "product_id"), today)
    advanced = (placed.join(touched.drop("habit_product_ids", "habit_times_bought", "habit_last_bought_on"),
                            on="customer_id", how="left")
                .with_columns(first_order_on=pl.col("first_order_on").fill_null(pl.lit(today)),
                              last_order_on=pl.lit(today),
                              orders_placed=pl.col("orders_placed").fill_null(0) + 1)
                .join(habits, on="customer_id", how="left")
                .with_columns(pl.col("habit_product_ids").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
                              pl.col("habit_times_bought").fill_null(pl.lit([], dtype=pl.List(pl.Int64))),
                              pl.col("habit_last_bought_on").fill_null(pl.lit([], dtype=pl.List(pl.Date)))))
    columns = ["customer_id", "first_order_on", "last_order_on", "orders_placed", "habit_product_ids",
               "habit_times_bought", "habit_last_bought_on"]
    return (pl.concat([untouched.select(columns), advanced.select(columns)])
            .sort("customer_id")
            .with_columns(business_date=pl.lit(today), _loaded_at=pl.lit(loaded_at)))


def _kept_habits(held: pl.DataFrame, received: pl.DataFrame, today: date) -> pl.DataFrame:
    """Each customer's habits after today (lists by customer): what they held (`held`, long) and
    what they received today counted together, the latest and most bought first (then by
    product), up to HABIT_CAPACITY. Integer ids and dates are ranked by one sort of packed keys."""
    ids = [held["customer_id"], held["product_id"], received["customer_id"], received["product_id"]]
    plain = all(c.dtype == pl.Int64 and not c.null_count() and (not len(c) or c.min() >= 0) for c in ids) \
        and held["times_bought"].dtype == pl.Int64 and not held["times_bought"].null_count() \
        and held["last_bought_on"].dtype == pl.Date and not held["last_bought_on"].null_count()
    if not plain:
        return _kept_habits_by_frame(held, received, today)
    products = max(int(c.max()) for c in ids[1::2] if len(c)) + 1 if held.height or received.height else 1
    customers = max(int(c.max()) for c in ids[::2] if len(c)) + 1 if held.height or received.height else 1
    if customers * products >= 2 ** 62:
        return _kept_habits_by_frame(held, received, today)
    day = today.toordinal() - date(1970, 1, 1).toordinal()
    # The same (customer, product) held and received: its times summed, its latest day kept.
    got = shopping.sorted_unique(received["customer_id"].to_numpy() * products + received["product_id"].to_numpy())
    pair = np.concatenate([held["customer_id"].to_numpy() * products + held["product_id"].to_numpy(), got])
    times = np.concatenate([held["times_bought"].to_numpy(), np.ones(len(got), dtype=np.int64)])
    last = np.concatenate([held["last_bought_on"].to_physical().to_numpy().astype(np.int64),
                           np.full(len(got), day, dtype=np.int64)])
    order = np.argsort(pair)
    pair, times, last = pair[order], times[order], last[order]
    first = np.flatnonzero(np.r_[True, pair[1:] != pair[:-1]]) if len(pair) else np.zeros(0, dtype=np.int64)
    pair, times, last = pair[first], np.add.reduceat(times, first), np.maximum.reduceat(last, first)
    if len(pair) and times.min() < 0:
        return _kept_habits_by_frame(held, received, today)
    # Ranked by (customer, latest first, most bought first, product): one key, unique by its pair.
    age = last.max(initial=0) - last
    ages, counts = int(age.max(initial=0)) + 1, int(times.max(initial=0)) + 1
    if customers * ages * counts * products >= 2 ** 63:
        return _kept_habits_by_frame(held, received, today)
    key = pair // products * ages + age
    key *= counts
    key += counts - 1 - times
    key *= products
    key += pair % products
    key.sort()
    product = key % products
    key //= products
    times = counts - 1 - key % counts
    key //= counts
    last = last.max(initial=0) - key % ages
    customer = key // ages
    kept = shopping.within_group_rank(customer) < HABIT_CAPACITY
    return (pl.DataFrame({"customer_id": customer[kept], "habit_product_ids": product[kept],
                          "habit_times_bought": times[kept],
                          "habit_last_bought_on": pl.Series(last[kept]).cast(pl.Int32).cast(pl.Date)})
            .group_by("customer_id", maintain_order=True).agg(pl.all()))


def _kept_habits_by_frame(held: pl.DataFrame, received: pl.DataFrame, today: date) -> pl.DataFrame:
    """`_kept_habits` by frame operations, for ids or counts the packed keys cannot hold."""
    bought = received.unique().with_columns(times_bought=pl.lit(1, dtype=pl.Int64), last_bought_on=pl.lit(today))
    return (pl.concat([held, bought])
            .group_by("customer_id", "product_id").agg(pl.col("times_bought").sum(), pl.col("last_bought_on").max())
            .sort(["customer_id", "last_bought_on", "times_bought", "product_id"],
                  descending=[False, True, True, False])
            .group_by("customer_id", maintain_order=True).head(HABIT_CAPACITY)
            .group_by("customer_id", maintain_order=True)
            .agg(habit_product_ids=pl.col("product_id"), habit_times_bought=pl.col("times_bought"),
                 habit_last_bought_on=pl.col("last_bought_on")))


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema={
        "customer_id": pl.Int64, "first_order_on": pl.Date, "last_order_on": pl.Date, "orders_placed": pl.Int64,
        "habit_product_ids": pl.List(pl.Int64), "habit_times_bought": pl.List(pl.Int64),
        "habit_last_bought_on": pl.List(pl.Date)})


def member(customer_id: np.ndarray) -> np.ndarray:
    """Free-delivery members: a fixed share of customers, by a multiplicative hash of the id."""
    return (np.asarray(customer_id, dtype=np.uint64) * np.uint64(2654435761) % np.uint64(100)) < MEMBER_SHARE


def delivery_fee_cents(subtotal_cents: np.ndarray, is_member: np.ndarray) -> np.ndarray:
    fee = np.where(subtotal_cents >= 3_500, 399, 599)
    return np.where(is_member & (subtotal_cents >= 3_500), 0, fee)


def tip_draws(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Whether each of n orders tips and the share it would tip: drawn before the subtotals are known."""
    tips = rng.random(n) < 0.82
    return tips, rng.choice(np.array([0.05, 0.10, 0.15, 0.18, 0.20]), size=n, p=[0.15, 0.30, 0.30, 0.10, 0.15])


def tip_cents(draws: tuple[np.ndarray, np.ndarray], subtotal_cents: np.ndarray) -> np.ndarray:
    """Tips in cents (`draws` from `tip_draws`): the share of the subtotal, at least $2."""
    tips, pct = draws
    return np.where(tips, np.maximum(200, np.round(subtotal_cents * pct)), 0).astype(np.int64)


def window_end(window_start_seconds: np.ndarray) -> np.ndarray:
    return np.asarray(window_start_seconds) + WINDOW_HOURS * 3600

