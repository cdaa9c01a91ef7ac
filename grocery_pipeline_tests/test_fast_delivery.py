"""Fast paths of delivery and the shelf give what their plain forms give: the k smallest keys,
routes measured once per bundle, driver choice by segment minima (ties included) and demand
located by slots."""

from itertools import permutations

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import delivery, inventory
from grocery_pipeline.simulation.rng import rng_for


@pytest.mark.parametrize("n,k", [(0, 0), (6, 3), (10, 10), (10, 25), (2_000, 1), (2_000, 333), (2_000, 0)])
@pytest.mark.parametrize("ties", [False, True])
def test_smallest_is_the_stable_sort_prefix(n, k, ties):
    rng = rng_for(1, "test", "smallest", n, k)
    keys = rng.integers(0, 4, n).astype(np.float64) if ties else rng.exponential(size=n)
    keys[rng.random(n) < 0.3] = np.inf
    assert np.array_equal(delivery.smallest(keys, k), np.argsort(keys, kind="stable")[:k])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_routes_are_the_shortest_of_every_path_measured_leg_by_leg(k):
    rng = rng_for(1, "test", "routes", k)
    b = 40
    store_lat, store_lon = 28.0 + rng.uniform(-0.1, 0.1, b), -82.0 + rng.uniform(-0.1, 0.1, b)
    lat, lon = store_lat[:, None] + rng.uniform(-0.05, 0.05, (b, k)), store_lon[:, None] + rng.uniform(-0.05, 0.05, (b, k))
    visit, legs = delivery.route_stops(store_lat, store_lon, lat, lon)
    for i in range(b):
        def path_legs(order):
            path_lat = np.r_[store_lat[i], lat[i, list(order)], store_lat[i]]
            path_lon = np.r_[store_lon[i], lon[i, list(order)], store_lon[i]]
            return delivery.road_miles(path_lat[:-1], path_lon[:-1], path_lat[1:], path_lon[1:])
        best = min(permutations(range(k)), key=lambda order: path_legs(order).sum())
        assert list(visit[i]) == list(best)
        assert np.array_equal(legs[i], path_legs(best))


def test_equally_near_drivers_and_bundles_go_to_the_lowest_first():
    stores = pl.DataFrame({"lat": [28.0], "lon": [-82.0], "dc_id": [1]})
    # Bundles 0 and 1 share a centroid; drivers 1 and 2 stand on the same spot, driver 3 farther.
    bundles = pl.DataFrame({"bundle": [0, 1, 2], "store_index": [0, 0, 0], "centroid_lat": [28.05, 28.05, 28.2],
                            "centroid_lon": [-82.0, -82.0, -82.0], "planned_dispatch": [36000, 36000, 36000],
                            "round_trip_seconds": [3600, 3600, 3600]})
    drivers = pl.DataFrame({"driver_id": [1, 2, 3], "dc_id": [1, 1, 1], "lat": [28.04, 28.04, 28.0],
                            "lon": [-82.0, -82.0, -82.0], "home_store_lat": [28.0] * 3,
                            "home_store_lon": [-82.0] * 3})
    runs = delivery.assign_drivers(bundles, drivers, stores).sort("bundle")
    assert runs["driver_id"].to_list() == [1, 2, 3]
    assert runs["dispatched"].to_list() == [36000, 36000, 36000]


def test_serving_by_slots_matches_serving_by_ids():
    ids = np.array([10, 20, 30, 40])
    rng = rng_for(1, "test", "slots")
    n = 200
    seconds = rng.integers(0, 24 * 3600, n)
    slots = rng.integers(0, 4, n)
    qty = rng.integers(1, 4, n)
    by_ids = inventory.StockLedger(ids, np.array([30, 5, 0, 60]))
    by_slots = inventory.StockLedger(ids, np.array([30, 5, 0, 60]))
    arrivals = (np.array([8 * 3600, 12 * 3600]), np.array([20, 30]), np.array([7, 9]))
    granted = inventory.serve_by_hour(by_ids, seconds, ids[slots], qty, *arrivals)
    assert np.array_equal(inventory.serve_by_hour(by_slots, seconds, None, qty, *arrivals, demand_slots=slots), granted)
    assert np.array_equal(by_ids.on_hand, by_slots.on_hand)
    assert granted.sum() < qty.sum()   # some lines went short


def test_the_close_lands_among_the_movements_as_a_stable_sort_would_place_it():
    from datetime import date, datetime, timedelta

    from grocery_pipeline.simulation import operations

    day = date(2025, 1, 2)
    midnight = datetime(2025, 1, 2)
    seconds = [3600, operations.SHRINK_SECONDS, operations.SHRINK_SECONDS + 300, operations.ADJUSTMENT_SECONDS,
               operations.ADJUSTMENT_SECONDS + 600, None]
    movements = pl.DataFrame({
        "store_product_id": [1_000_001, 1_000_002, 1_000_003, 1_000_004, 1_000_005, 1_000_006],
        "kind": [1, 2, 0, 1, 0, 0], "quantity": [-1, -2, 5, -1, 7, 3],
        "txn_ts": [None if s is None else midnight + timedelta(seconds=s) for s in seconds],
        "reference_id": [10, 20, 30, 40, 50, 60]},
        schema_overrides={"kind": pl.Int8, "txn_ts": pl.Datetime("us")}).sort("txn_ts", maintain_order=True)
    close = operations.Close(ids=np.array([1_000_001, 1_000_002, 1_000_007]), after_sales=np.array([5, 5, 5]),
                             shrink=np.array([1, 0, 2]), adjustment=np.array([0, -1, 1]))
    got = operations.store_transactions(day, 2 * operations.TXN_ID_STRIDE + 1, movements, close, midnight)
    # the plain form: everything stacked in kind order, then one stable sort by moment
    shrink_at = midnight + timedelta(seconds=operations.SHRINK_SECONDS)
    adjusted_at = midnight + timedelta(seconds=operations.ADJUSTMENT_SECONDS)
    close_rows = pl.DataFrame({"store_product_id": [1_000_001, 1_000_007, 1_000_002, 1_000_007],
                               "kind": [3, 3, 4, 4], "quantity": [-1, -2, -1, 1],
                               "txn_ts": [shrink_at, shrink_at, adjusted_at, adjusted_at]},
                              schema_overrides={"kind": pl.Int8, "txn_ts": pl.Datetime("us")})
    plain = pl.concat([movements, close_rows], how="diagonal").sort("txn_ts", maintain_order=True)
    assert got["store_product_id"].to_list() == plain["store_product_id"].to_list()
    assert got["txn_type"].to_list() == [operations.TXN_TYPES[k] for k in plain["kind"]]
    assert got["txn_id"].to_list() == [2 * operations.TXN_ID_STRIDE + i for i in range(1, 11)]
    assert got["txn_type"][2] == "ONLINE_SALE" and got["txn_type"][3] == "SHRINK"   # after the sale at 23:15


def test_cycle_counts_draw_as_generator_choice_does():
    on_hand = rng_for(1, "test", "counts").integers(0, 3, 50_000)
    rng, plain = rng_for(1, "test", "cycle"), rng_for(1, "test", "cycle")
    got = inventory.cycle_count_adjustments(rng, on_hand)
    counted = plain.random(len(on_hand)) < inventory.CYCLE_COUNT_SHARE
    delta = plain.choice(inventory.CYCLE_COUNT_DELTAS, size=len(on_hand), p=inventory.CYCLE_COUNT_ODDS)
    expected = np.where(counted, np.maximum(delta, -on_hand), 0)
    assert np.array_equal(got, expected) and (got != 0).sum() > 100
    assert rng.random() == plain.random()   # the stream is left where choice leaves it
