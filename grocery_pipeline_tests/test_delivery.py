"""Home delivery at the simulation level: who orders, habits and reorders, substitutes, bundles,
routes, drivers and the status history."""

from datetime import date, timedelta
from itertools import permutations

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import delivery, shopping
from grocery_pipeline.simulation.chain import run_days
from grocery_pipeline.simulation.rng import rng_for

DAYS = 6


@pytest.fixture(scope="module")
def window(tiny_settings, dictionaries):
    return list(run_days(tiny_settings, dictionaries, DAYS))


def all_of(window, table: str) -> pl.DataFrame:
    return pl.concat([frames[table] for _, _, frames in window])


def test_recency_makes_a_repeat_order_unlikely_right_after_one_and_likely_near_a_month():
    w = delivery.recency_weight(np.array([1, 3, 7, 14, 29, np.nan]))
    assert w[0] < w[1] < w[2] and w[4] > w[3] > w[0]
    assert w[5] > w[0]   # first orders happen


def test_at_most_one_order_per_customer_a_day_from_a_store_near_home(window):
    orders = all_of(window, "orders")
    assert orders.group_by("business_date", "customer_id").len()["len"].max() == 1
    assert (orders["distance_miles"] < 15).mean() > 0.9


def test_days_since_prior_order_is_capped_at_30_and_counts_orders(window):
    orders = all_of(window, "orders").sort("customer_id", "placed_at")
    assert orders["days_since_prior_order"].max() <= 30
    repeat = orders.filter(pl.col("customer_id").is_duplicated())
    gaps = repeat.with_columns(gap=pl.col("business_date").diff().dt.total_days().over("customer_id"),
                               step=pl.col("order_number").diff().over("customer_id")).drop_nulls("gap")
    assert (gaps["gap"].clip(upper_bound=30) == gaps["days_since_prior_order"]).all()
    assert (gaps["step"] == 1).all()
    assert orders.filter(pl.col("order_number") == 1)["days_since_prior_order"].null_count() == \
        orders.filter(pl.col("order_number") == 1).height


def test_reordered_is_true_only_when_the_customer_received_the_product_before(window):
    items = all_of(window, "order_items").join(all_of(window, "orders").select("order_id", "customer_id"),
                                               on="order_id")
    first_received = items.filter(pl.col("quantity") > 0).group_by("customer_id", "product_id").agg(
        first=pl.col("business_date").min())
    checked = items.join(first_received, on=["customer_id", "product_id"], how="left").with_columns(
        before=pl.col("first").is_not_null() & (pl.col("first") < pl.col("business_date")))
    assert checked["reordered"].sum() > 0
    assert not (checked["reordered"] & ~checked["before"]).any()
    # Only a product dropped from a full habit list is bought again without the flag.
    assert (checked["before"] & ~checked["reordered"]).mean() < 0.01


def test_habits_bring_repeat_purchases_as_history_builds(window):
    share = [frames["order_items"]["reordered"].mean() for _, _, frames in window]
    assert share[0] == 0 and share[-1] > share[1] and share[-1] > 0.25


def test_habit_state_remembers_the_most_recent_products_up_to_capacity():
    today = date(2025, 3, 1)
    products = list(range(1, 46))
    state = pl.DataFrame({
        "customer_id": [7], "first_order_on": [date(2025, 1, 1)], "last_order_on": [date(2025, 2, 1)],
        "orders_placed": [3], "habit_product_ids": [products],
        "habit_times_bought": [[1] * 45], "habit_last_bought_on": [[date(2025, 2, 1) - timedelta(days=i) for i in range(45)]],
    }, schema_overrides={"habit_product_ids": pl.List(pl.Int64), "habit_times_bought": pl.List(pl.Int64)})
    orders = pl.DataFrame({"customer_id": [7, 8]})
    received = pl.DataFrame({"customer_id": [7, 7, 8], "product_id": [99, 45, 5]})
    nxt = delivery.next_state(state, today, orders, received, today)
    seven = nxt.filter(pl.col("customer_id") == 7).row(0, named=True)
    assert len(seven["habit_product_ids"]) == delivery.HABIT_CAPACITY
    assert seven["habit_product_ids"][:2] == [45, 99]        # bought today first, most bought first
    assert seven["habit_times_bought"][0] == 2
    assert 44 not in seven["habit_product_ids"]               # the least recently bought are dropped
    assert seven["orders_placed"] == 4 and seven["last_order_on"] == today
    eight = nxt.filter(pl.col("customer_id") == 8).row(0, named=True)
    assert eight["first_order_on"] == today and eight["habit_product_ids"] == [5]


def test_substitute_is_the_best_stocked_product_of_the_same_subcategory():
    items = pl.DataFrame({"store_product_id": [1, 2, 3, 4, 5], "store_id": [1, 1, 1, 2, 1],
                          "subcategory": ["milk", "milk", "milk", "milk", "bread"]})
    stock = {1: 0, 2: 3, 3: 9, 4: 50, 5: 50}
    chosen = delivery.choose_substitutes(items, np.array([0, 0, 4]), np.array([2, 10, 1]),
                                         lambda ids: np.array([stock[i] for i in ids]))
    assert chosen.tolist() == [2, -1, -1]   # the store's best-stocked milk; none with 10 units; no other bread


def test_the_indexed_substitute_shelf_agrees_with_a_plain_search():
    rng = np.random.default_rng(3)
    n = 400
    items = pl.DataFrame({"store_product_id": np.arange(n) + 1, "store_id": rng.integers(1, 4, n),
                          "subcategory": rng.choice(["milk", "bread", "eggs", "tea"], n)})
    on_hand = rng.integers(0, 6, n + 1)
    wanted, quantity = rng.integers(0, n, 300), rng.integers(1, 5, 300)
    chosen = delivery.SubstituteShelf(items).choose(wanted, quantity, lambda ids: on_hand[ids])
    rows = items.rows()
    for w, q, c in zip(wanted, quantity, chosen):
        fits = [(-on_hand[sp], i) for i, (sp, store, sub) in enumerate(rows)
                if i != w and (store, sub) == rows[w][1:] and on_hand[sp] >= q]
        assert c == (min(fits)[1] if fits else -1)


def test_bundles_join_orders_of_one_store_and_window_up_to_five():
    n = 12
    orders = pl.DataFrame({
        "order": np.arange(n), "store_index": [0] * 10 + [1] * 2, "window_start": [36000] * 9 + [43200] * 3,
        "placed": np.arange(n) * 60, "lat": 28.0 + np.r_[np.linspace(0.01, 0.03, 9), 0.02, 0.01, -0.02],
        "lon": -82.0 + np.r_[np.full(9, 0.01), 0.0, 0.01, 0.02]})
    stores = pl.DataFrame({"lat": [28.0, 28.0], "lon": [-82.0, -82.0]})
    bundles = delivery.form_bundles(orders, stores)
    sizes = bundles.group_by("bundle").len()["len"]
    assert sizes.max() <= delivery.MAX_BUNDLE and sizes.sum() == n
    keyed = bundles.join(orders, on="order").group_by("bundle").agg(
        pl.col("store_index").n_unique(), pl.col("window_start").n_unique())
    assert (keyed["store_index"] == 1).all() and (keyed["window_start"] == 1).all()


def test_route_visits_stops_in_the_shortest_round_trip():
    rng = rng_for(1, "test", "route")
    store = (np.array([28.0]), np.array([-82.0]))
    lat = 28.0 + rng.uniform(-0.05, 0.05, (1, 5))
    lon = -82.0 + rng.uniform(-0.05, 0.05, (1, 5))
    visit, legs = delivery.route_stops(store[0], store[1], lat, lon)

    def length(order):
        path_lat = np.r_[store[0], lat[0, list(order)], store[0]]
        path_lon = np.r_[store[1], lon[0, list(order)], store[1]]
        return delivery.road_miles(path_lat[:-1], path_lon[:-1], path_lat[1:], path_lon[1:]).sum()

    assert legs.sum() == pytest.approx(min(length(p) for p in permutations(range(5))))
    assert legs.sum() == pytest.approx(length(visit[0]))


def _drivers(lat, lon, dc=1):
    n = len(lat)
    return pl.DataFrame({"driver_id": np.arange(1, n + 1), "dc_id": [dc] * n, "lat": lat, "lon": lon,
                         "home_store_lat": [28.0] * n, "home_store_lon": [-82.0] * n})


def test_the_nearest_available_driver_takes_the_run_and_a_busy_one_is_never_double_booked():
    stores = pl.DataFrame({"lat": [28.0], "lon": [-82.0], "dc_id": [1]})
    bundles = pl.DataFrame({"bundle": [0, 1, 2], "store_index": [0, 0, 0], "centroid_lat": [28.05, 28.05, 27.95],
                            "centroid_lon": [-82.0, -82.0, -82.0], "planned_dispatch": [36000, 36060, 36120],
                            "round_trip_seconds": [3600, 3600, 3600]})
    drivers = _drivers([28.04, 27.9], [-82.0, -82.0])
    runs = delivery.assign_drivers(bundles, drivers, stores).sort("bundle")
    # Driver 1 waits nearest the northern runs, driver 2 nearest the southern one; the second
    # northern run waits until a driver is back.
    assert runs["driver_id"][0] == 1 and runs["driver_id"][2] == 2
    assert runs["dispatched"][0] == 36000 and runs["dispatched"][1] >= 36000 + 3600
    for _, mine in runs.sort("dispatched").group_by("driver_id"):
        assert (mine["dispatched"].to_numpy()[1:] >= mine["returned"].to_numpy()[:-1]).all()


def test_status_history_in_order_for_delivered_and_cancelled_orders():
    orders = pl.DataFrame({"order": [0, 1, 2], "placed": [30000, 30000, 30000],
                           "status": ["DELIVERED", "CANCELLED", "CANCELLED"],
                           "cancel_reason": [None, "CUSTOMER", "OUT_OF_STOCK"], "picking": [33000, 33000, 33000],
                           "dispatched": [34000, None, None], "delivered": [35000, None, None]},
                          schema_overrides={"cancel_reason": pl.String, "dispatched": pl.Int64, "delivered": pl.Int64})
    events = delivery.order_events(rng_for(1, "test", "events"), orders)
    paths = events.group_by("order", maintain_order=True).agg(pl.col("status"), pl.col("seconds"))
    path = {r["order"]: r["status"] for r in paths.iter_rows(named=True)}
    assert path[0] == ["PENDING", "CONFIRMED", "PICKING", "OUT_FOR_DELIVERY", "DELIVERED"]
    assert path[1] == ["PENDING", "CONFIRMED", "CANCELLED"]
    assert path[2] == ["PENDING", "CONFIRMED", "PICKING", "CANCELLED"]
    for seconds in paths["seconds"].to_list():
        assert seconds == sorted(seconds)


def test_a_few_orders_are_cancelled_and_out_of_stock_items_are_recorded(window):
    orders = all_of(window, "orders")
    cancelled = (orders["status"] == "CANCELLED").mean()
    assert 0 < cancelled < 0.08
    items = all_of(window, "order_items")
    assert set(items["item_status"].unique()) <= {"FULFILLED", "PARTIAL", "SUBSTITUTED", "OUT_OF_STOCK", "CANCELLED"}
    substituted = items.filter(pl.col("item_status") == "SUBSTITUTED")
    assert substituted["substituted_for_store_product_id"].null_count() == 0
    assert items.filter(pl.col("item_status") != "SUBSTITUTED")["substituted_for_store_product_id"].null_count() == \
        items.filter(pl.col("item_status") != "SUBSTITUTED").height


def test_delivery_fee_and_tip_on_delivered_orders(window):
    orders = all_of(window, "orders")
    delivered = orders.filter(pl.col("status") == "DELIVERED")
    assert (delivered["delivery_fee"] >= 0).all() and (delivered["tip"] > 0).mean() > 0.6
    members = delivery.member(delivered["customer_id"].to_numpy())
    free = delivered.filter(pl.Series(members) & (pl.col("subtotal") >= 35))
    assert (free["delivery_fee"] == 0).all()
    assert set(orders["tender_type"].unique()) <= set(shopping.ONLINE_TENDERS)
