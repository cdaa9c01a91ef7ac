"""Stock and the supply chain at the simulation level: the shelf through the day, replenishment,
truck loads and trips, DC allocation and supplier receipts, shrink, and the state chain."""

from datetime import date, datetime, time

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.checks.lifecycle import double_booked
from grocery_pipeline.simulation import inventory, supply_chain
from grocery_pipeline.simulation.chain import run_days
from grocery_pipeline.simulation.inventory import StockLedger
from grocery_pipeline.simulation.rng import rng_for

DAY = date(2025, 1, 5)


def test_the_shelf_never_goes_below_zero_and_serves_lines_in_time_order():
    ledger = StockLedger(np.array([10, 20]), np.array([3, 0]))
    granted = inventory.serve_by_hour(
        ledger, demand_seconds=np.array([9 * 3600 + 5, 9 * 3600, 15 * 3600, 15 * 3600 + 1]),
        demand_ids=np.array([10, 10, 20, 10]), demand_qty=np.array([2, 2, 1, 1]),
        arrival_seconds=np.array([14 * 3600 + 1800]), arrival_ids=np.array([20]), arrival_qty=np.array([1]))
    assert granted.tolist() == [1, 2, 1, 0]   # the 9:00 shopper came first; 20 arrived at 14:30
    assert ledger.on_hand.tolist() == [0, 0]


def test_a_ledger_given_ids_out_of_order_serves_each_by_its_id():
    ledger = StockLedger(np.array([20, 10, 30]), np.array([0, 3, 1]))
    assert ledger.serve(np.array([10, 20, 10, 30]), np.array([2, 1, 2, 1])).tolist() == [2, 0, 1, 1]
    ids, on_hand = ledger.snapshot()
    assert ids.tolist() == [10, 20, 30] and on_hand.tolist() == [0, 0, 0]


def test_dc_levels_sum_the_targets_of_the_stores_each_dc_serves():
    stores = pl.DataFrame({"store_id": [3, 1, 2], "dc_id": [7, 5, 5]})
    store_products = pl.DataFrame({"store_id": [1, 2, 3, 3, 9], "product_id": [4, 4, 4, 2, 4],
                                   "order_up_to": [10, 11, 5, 3, 100]})     # store 9 is not open
    levels = supply_chain.dc_levels(store_products, stores)
    assert levels.rows() == [(5, 4, 21, 53), (7, 2, 3, 8), (7, 4, 5, 13)]
    # ids too sparse for a DC x product table take the join and agree
    sparse = supply_chain.dc_levels(store_products.with_columns(pl.col("product_id") * 10**9), stores)
    assert sparse.with_columns(pl.col("product_id") // 10**9).equals(levels)


def test_stock_unloaded_during_an_hour_is_on_the_shelf_from_the_next_hour():
    ledger = StockLedger(np.array([1]), np.array([0]))
    granted = inventory.serve_by_hour(ledger, np.array([10 * 3600 + 3000, 11 * 3600]), np.array([1, 1]),
                                      np.array([1, 1]), np.array([10 * 3600 + 600]), np.array([1]), np.array([5]))
    assert granted.tolist() == [0, 1]


def test_short_lines_get_a_chance_at_a_replacement_in_the_same_hour():
    ledger = StockLedger(np.array([1, 2]), np.array([0, 4]))
    replaced = []

    def substitute(short, granted_short, shelf):
        replaced.append(shelf.serve(np.full(len(short), 2), np.ones(len(short), dtype=np.int64)).tolist())

    inventory.serve_by_hour(ledger, np.array([3600]), np.array([1]), np.array([1]), np.zeros(0, np.int64),
                            np.zeros(0, np.int64), np.zeros(0, np.int64), on_shortfall=substitute)
    assert replaced == [[1]] and ledger.on_hand.tolist() == [0, 3]


def test_shrink_never_exceeds_what_is_left_and_follows_perishability():
    rng = rng_for(1, "test", "shrink")
    on_hand = np.full(20_000, 5)
    sold = np.full(20_000, 20.0)
    perishable = np.arange(20_000) % 2 == 0
    lost = inventory.shrink_units(rng, on_hand, sold, np.where(perishable, 0.05, 0.01), perishable)
    assert (lost <= on_hand).all() and (lost >= 0).all()
    assert lost[perishable].mean() > 2 * lost[~perishable].mean()
    adjust = inventory.cycle_count_adjustments(rng, np.zeros(20_000, dtype=np.int64))
    assert (adjust >= 0).all() and 0 < (adjust != 0).mean() < 0.05


@pytest.fixture
def network():
    stores = pl.DataFrame({"store_id": [1, 2], "dc_id": [1, 1], "lat": [28.1, 28.4], "lon": [-82.3, -82.0]})
    dcs = pl.DataFrame({"dc_id": [1], "lat": [28.0], "lon": [-82.3]})
    trucks = pl.DataFrame({"truck_id": [1, 2, 3], "dc_id": [1, 1, 1], "refrigerated": [True, False, False],
                           "capacity_cases": [100, 120, 120]})
    products = pl.DataFrame({"product_id": [1, 2, 3], "refrigerated": [True, False, False]})
    store_products = pl.DataFrame({
        "store_product_id": [1_000_001, 1_000_002, 1_000_003, 2_000_001, 2_000_002],
        "store_id": [1, 1, 1, 2, 2], "product_id": [1, 2, 3, 1, 2],
        "reorder_point": [10, 10, 10, 10, 10], "order_up_to": [50, 2000, 40, 50, 30]})
    return stores, dcs, trucks, products, store_products


def test_only_products_at_or_under_their_reorder_point_are_ordered_in_whole_cases(network):
    stores, _, _, products, store_products = network
    stock = pl.DataFrame({"store_product_id": [1_000_001, 1_000_002, 1_000_003, 2_000_001, 2_000_002],
                          "on_hand": [10, 0, 11, 3, 40]})
    needs = supply_chain.replenishment_needs(stock, store_products, stores, products)
    assert needs["store_product_id"].to_list() == [1_000_001, 1_000_002, 2_000_001]
    assert (needs["units"] % supply_chain.CASE_PACK == 0).all()
    gap = needs.join(stock, on="store_product_id", suffix="_stock")
    assert (gap["units"] >= gap["order_up_to"] - gap["on_hand_stock"]).all()
    assert (gap["units"] < gap["order_up_to"] - gap["on_hand_stock"] + supply_chain.CASE_PACK).all()


def _plan(network, on_hand):
    stores, dcs, trucks, products, store_products = network
    stock = pl.DataFrame({"store_product_id": store_products["store_product_id"], "on_hand": on_hand})
    needs = supply_chain.replenishment_needs(stock, store_products, stores, products)
    return supply_chain.plan_shipments(needs, stores, dcs, trucks, DAY, 5 * supply_chain.SHIPMENT_ID_STRIDE + 1)


def test_refrigerated_loads_ride_refrigerated_trucks_within_capacity_one_trip_at_a_time(network):
    loads, lines = _plan(network, [0, 0, 0, 0, 0])
    trucks = network[2]
    joined = loads.join(trucks, on="truck_id", suffix="_truck")
    assert (joined.filter(pl.col("refrigerated"))["refrigerated_truck"]).all()
    assert (joined["cases"] <= joined["capacity_cases"]).all()
    fridge_lines = lines.filter(pl.col("refrigerated")).join(loads.select("shipment_id", "truck_id"), on="shipment_id")
    assert set(fridge_lines["truck_id"].to_list()) == {1}
    assert lines["shipment_id"].n_unique() == loads.height
    assert loads.select(pl.col("cases").sum()).item() == lines["cases"].sum()
    for _, trips in loads.sort("loading").group_by("truck_id"):
        assert (trips["loading"].to_numpy()[1:] >= trips["back"].to_numpy()[:-1]).all()
    ordered = loads.select("loading", "departed", "arrived", "unloading", "completed", "back").to_numpy()
    assert (np.diff(ordered, axis=1) >= 0).all()
    assert (loads["completed"] <= supply_chain.LAST_COMPLETION_SECONDS).all()


def test_a_big_need_is_split_across_loads_and_late_loads_wait_for_the_next_day(network):
    stores, dcs, trucks, products, store_products = network
    big = store_products.with_columns(order_up_to=pl.lit(30_000))
    stock = pl.DataFrame({"store_product_id": big["store_product_id"], "on_hand": [0] * 5})
    needs = supply_chain.replenishment_needs(stock, big, stores, products)
    loads, lines = supply_chain.plan_shipments(needs, stores, dcs, trucks, DAY, 5 * supply_chain.SHIPMENT_ID_STRIDE + 1)
    assert loads.height > 2
    assert (loads["completed"] <= supply_chain.LAST_COMPLETION_SECONDS).all()
    assert lines["cases"].sum() < needs["cases"].sum()   # what did not fit today is left for tomorrow


def test_a_truck_back_after_midnight_from_a_far_store_loads_again_only_once_it_is_back(network):
    stores, dcs, trucks, products, store_products = network
    far = stores.with_columns(lat=pl.Series([28.1, 34.5]))     # store 2 some 560 road miles out
    stock = pl.DataFrame({"store_product_id": store_products["store_product_id"], "on_hand": [0] * 5})
    needs = supply_chain.replenishment_needs(stock, store_products, far, products)
    shipments = []
    for offset in range(2):
        today = date.fromordinal(DAY.toordinal() + offset)
        away = supply_chain.trucks_away(shipments[-1], today) if shipments else None
        loads, lines = supply_chain.plan_shipments(needs, far, dcs, trucks, today,
                                                   (5 + offset) * supply_chain.SHIPMENT_ID_STRIDE + 1, away)
        shipments.append(supply_chain.shipment_tables(loads, lines, today, datetime(2025, 2, 1))[0])
    yesterday, today = shipments
    late = yesterday.filter(pl.col("truck_back_at") > datetime.combine(today["business_date"][0], time(2)))
    assert late.height and late["truck_id"].is_in(today["truck_id"].implode()).any()
    offenders = double_booked(today, "truck_id", "loading_at", "truck_back_at", "shipment_id", yesterday)
    assert offenders.is_empty()
    assert supply_chain.trucks_away(today.head(0), DAY).is_empty()


def test_dc_allocates_no_more_than_it_holds_and_suppliers_refill_what_runs_low(network):
    loads, lines = _plan(network, [0, 0, 0, 0, 0])
    dc = pl.DataFrame({"dc_id": [1, 1, 1], "product_id": [1, 2, 3], "opening": [30, 5000, 0],
                       "reorder_point": [100, 100, 100], "order_up_to": [300, 300, 300]})
    receipts = supply_chain.supplier_receipts(dc)
    assert receipts.sort("product_id")["quantity"].to_list() == [270, 300]
    ledger, filled = supply_chain.allocate(dc, receipts.head(0), loads, lines)
    shipped = filled.group_by("product_id").agg(pl.col("units").sum()).sort("product_id")
    assert dict(shipped.iter_rows()).get(1, 0) <= 30
    assert (ledger.on_hand >= 0).all()


def test_the_state_chain_carries_stock_from_day_to_day(tiny_settings, dictionaries):
    days = list(run_days(tiny_settings, dictionaries, 4))
    for (_, _, yesterday), (_, _, today) in zip(days, days[1:]):
        moved = today["store_inventory_txn"].group_by("store_product_id").agg(pl.col("quantity").sum())
        check = today["store_inventory"].join(yesterday["store_inventory"].select("store_product_id", previous="on_hand"),
                                              on="store_product_id", how="left") \
            .join(moved, on="store_product_id", how="left")
        assert check["previous"].null_count() == 0
        assert (check["on_hand"] == check["previous"] + check["quantity"].fill_null(0)).all()
        dc = today["dc_inventory"].join(yesterday["dc_inventory"].select("dc_id", "product_id", previous="on_hand"),
                                        on=["dc_id", "product_id"], how="left")
        dc_moves = today["dc_inventory_txn"].group_by("dc_id", "product_id").agg(pl.col("quantity").sum())
        dc = dc.join(dc_moves, on=["dc_id", "product_id"], how="left")
        assert (dc["on_hand"] == dc["previous"].fill_null(0) + dc["quantity"].fill_null(0)).all()
        received = today["store_inventory_txn"].filter(pl.col("txn_type") == "RECEIVING")
        assert received["quantity"].sum() == today["shipment_lines"]["units"].sum()
        assert (today["truck_moves"].group_by("shipment_id").len()["len"] == 6).all()
