"""The parts of a day worked out beside its demand (the opening shelf's ledger, the DCs' tables)
give what the day's own steps give."""

from concurrent.futures import Future

import numpy as np
import pytest

from grocery_pipeline.simulation import operations, shopping
from grocery_pipeline.simulation.chain import run_days


def done(value) -> Future:
    future = Future()
    future.set_result(value)
    return future


@pytest.fixture(scope="module")
def second_day(tiny_settings, dictionaries):
    """The first day of the tiny chain whose DCs move stock, after another: its inputs, its trucks
    and the frames it returns."""
    runs = list(run_days(tiny_settings, dictionaries, 6))
    at = next(i for i in range(1, len(runs)) if runs[i][2]["dc_inventory_txn"].height)
    (_, _, first), (day, world, frames) = runs[at - 1], runs[at]
    yesterday = operations.Yesterday(first["store_inventory"], first["dc_inventory"], first["delivery_customers"],
                                     first["shipments"])
    supply = operations._supply(day.business_date, operations.Numbering(day.index + 1),
                                operations.loaded_at(day.business_date), world, yesterday)
    return day, world, supply, frames


def test_the_opening_shelf_is_the_ledger_of_the_opening_stock_with_every_item_located(second_day):
    _, world, supply, _ = second_day
    assortment = shopping.build_assortment(world.stores, world.store_products, world.products, world.promotions)
    ledger, slot_of_item, item, live = operations._stocked(done(supply), assortment)
    assert np.array_equal(ledger.store_product_ids, supply.stock["store_product_id"].to_numpy())
    assert np.array_equal(ledger.on_hand, supply.stock["opening"].to_numpy())
    shelf_ids = np.asarray(assortment.shelf["store_product_id"])
    located = slot_of_item >= 0
    assert located.any() and live.any()
    assert np.array_equal(ledger.store_product_ids[slot_of_item[located]], shelf_ids[located])
    assert np.array_equal(np.sort(slot_of_item[located]), np.flatnonzero(live))
    assert np.array_equal(shelf_ids[item[live]], ledger.store_product_ids[live])


def test_the_dc_tables_made_beside_are_the_days_dc_tables(second_day):
    day, _, supply, frames = second_day
    txn, inventory = operations._dc_tables(day.business_date, operations.Numbering(day.index + 1),
                                           operations.loaded_at(day.business_date), done(supply))
    assert txn.height and inventory.height
    assert txn.equals(frames["dc_inventory_txn"])
    assert inventory.equals(frames["dc_inventory"])
    assert inventory.select("dc_id", "product_id").is_duplicated().sum() == 0
