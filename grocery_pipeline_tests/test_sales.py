"""In-store sales at the simulation level: traffic, hours, segments and trips, store choice,
basket composition, money to the cent, and baskets shortened by the shelf."""

from datetime import date, datetime

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import sales, shopping
from grocery_pipeline.simulation.chain import Dimensions
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.simulation.rng import rng_for

START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def world(tiny_settings, dictionaries):
    return Dimensions().grow(Day(tiny_settings, dictionaries, START))


@pytest.fixture(scope="module")
def assortment(world):
    return shopping.build_assortment(world.stores, world.store_products, world.products, world.promotions)


@pytest.fixture(scope="module")
def trips(world, assortment):
    return sales.plan_trips(rng_for(1, "test", "trips"), world.customers, assortment, 20_000, weekend=False).frame


def test_trip_count_follows_the_expected_volume(world, assortment):
    counts = [sales.plan_trips(rng_for(1, "test", i), world.customers, assortment, 3_000, False).frame.height
              for i in range(3)]
    assert all(abs(c - 3_000) < 5 * 3_000 ** 0.5 for c in counts)


def test_hours_build_from_seven_to_a_midday_plateau_with_an_after_work_bump(trips):
    share = np.bincount(trips["seconds"].to_numpy() // 3600, minlength=24) / trips.height
    assert share[:7].sum() == 0 and share[23] == 0
    plateau = share[10:15].mean()
    assert share[7] < share[8] < share[9] < plateau
    assert share[17] >= share[14]            # the after-work bump
    assert share[22] < share[20] < plateau   # evening tail


def test_delivery_orders_are_placed_later_in_the_day_than_store_visits():
    rng = rng_for(1, "test", "hours")
    walk_in = shopping.sample_seconds(rng, 50_000, shopping.INSTORE_HOURS).mean()
    online = shopping.sample_seconds(rng, 50_000, shopping.DELIVERY_HOURS).mean()
    assert online > walk_in + 1800


def test_loyalty_and_anonymous_receipts_coexist(trips):
    loyal = trips["customer_id"].is_not_null().mean()
    assert 0.5 < loyal < 0.75
    anonymous = trips.filter(pl.col("customer_id").is_null())
    assert (anonymous["kind"] == shopping.ANONYMOUS).all()


def test_customers_shop_mostly_at_their_two_nearest_stores(trips, world, assortment):
    stores = assortment.stores
    loyal = trips.filter(pl.col("customer_id").is_not_null()).join(
        world.customers.select("customer_id", "lat", "lon"), on="customer_id")
    near, miles = shopping.nearest_stores(loyal["lat"].to_numpy(), loyal["lon"].to_numpy(),
                                          stores["lat"].to_numpy(), stores["lon"].to_numpy(), k=2)
    at_two_nearest = (near == loyal["store_index"].to_numpy()[:, None]).any(axis=1).mean()
    assert 0.6 < at_two_nearest < 0.9


def test_segments_shape_the_trip_mix(trips):
    quick = trips.group_by("kind").agg((pl.col("trip_type") == 0).mean().alias("quick")).sort("kind")
    by_kind = dict(zip(quick["kind"].to_list(), quick["quick"].to_list()))
    budget, convenience = shopping.KINDS.index("budget"), shopping.KINDS.index("convenience")
    assert by_kind[convenience] > by_kind[budget] + 0.15
    bulk = trips.filter(pl.col("trip_type") == 3)["kind"]
    assert (bulk == budget).mean() > 0.4


def test_baskets_average_about_ten_products_with_a_long_tail(trips):
    sizes = shopping.basket_sizes(rng_for(1, "test", "sizes"), trips["trip_type"].to_numpy())
    assert 9 < sizes.mean() < 12
    assert sizes.min() == 1 and sizes.max() > 4 * sizes.mean()
    assert np.median(sizes) < sizes.mean()   # long right tail


def test_a_basket_holds_each_product_once_and_its_intended_size(trips, assortment):
    wanted = sales.basket_requests(rng_for(1, "test", "baskets"), trips.head(2_000), assortment)
    assert wanted.select(pl.struct("trip", "item").is_duplicated().sum()).item() == 0
    stores = assortment.items["store_index"].to_numpy()[wanted["item"].to_numpy()]
    assert (stores == trips["store_index"].to_numpy()[wanted["trip"].to_numpy()]).all()
    assert 8 < wanted.height / 2_000 < 12


def test_popular_products_carry_far_more_than_their_share_of_lines(trips, assortment):
    wanted = sales.basket_requests(rng_for(1, "test", "skew"), trips, assortment)
    product = assortment.items["product_id"].to_numpy()[wanted["item"].to_numpy()]
    counts = np.sort(np.bincount(product))[::-1]
    top = max(1, (counts > 0).sum() // 100)
    assert counts[:top].sum() / counts.sum() > 0.04


def test_promoted_products_sell_more_and_segments_shape_departments(assortment):
    rng = rng_for(1, "test", "promo")
    n = 60_000
    kind = np.full(n, shopping.KINDS.index("quality"))
    item = assortment.sample(rng, np.zeros(n, np.int64), kind, np.ones(n, np.int64))
    items = assortment.items
    store0 = items.filter(pl.col("store_index") == 0)
    promoted_share_of_range = store0["promotion_id"].is_not_null().mean()
    promoted_share_of_lines = items["promotion_id"].is_not_null().to_numpy()[item].mean()
    assert promoted_share_of_lines > promoted_share_of_range * 1.3
    budget_item = assortment.sample(rng, np.zeros(n, np.int64), np.zeros(n, np.int64), np.ones(n, np.int64))
    produce = (items["department"] == "Produce").to_numpy()
    assert produce[item].mean() > produce[budget_item].mean()


def test_line_money_adds_up_to_the_cent():
    priced = shopping.price_lines(np.array([3.49, 3.49, 0.99, 10.0]), np.array([3, 2, 1, 0]),
                                  np.array([1, 2, 2, 1]),   # percent, amount, amount, percent
                                  np.array([0.25, 1.0, 5.0, 0.5]), np.array([True, True, True, True]))
    assert priced.unit_cents.tolist() == [349, 349, 99, 1000]
    assert priced.discount_cents.tolist() == [3 * 87, 2 * 100, 49, 0]   # 25% of 3.49 rounds to 0.87
    assert (priced.line_cents == np.array([3, 2, 1, 0]) * priced.unit_cents - priced.discount_cents).all()
    assert priced.on_promotion.tolist() == [True, True, True, False]


def test_tax_applies_general_rate_to_taxable_items_and_grocery_rate_to_food(assortment):
    items = assortment.items.join(assortment.stores.select("store_id", "tax_rate", "grocery_tax_rate"),
                                  on="store_id", suffix="_store")
    taxable = items["taxable"].to_numpy()
    assert (items["tax_rate"].to_numpy()[taxable] == items["tax_rate_store"].to_numpy()[taxable]).all()
    assert (items["tax_rate"].to_numpy()[~taxable] == items["grocery_tax_rate"].to_numpy()[~taxable]).all()


def test_lines_the_shelf_could_not_serve_are_dropped_and_empty_baskets_leave_no_receipt(trips, assortment):
    few = trips.head(50)
    wanted = sales.basket_requests(rng_for(1, "test", "drop"), few, assortment)
    granted = wanted["quantity"].to_numpy().copy()
    granted[wanted["trip"].to_numpy() == 0] = 0        # trip 0 found nothing
    granted[1::3] = np.maximum(granted[1::3] - 1, 0)   # some lines got less
    prices = assortment.items["list_price"].to_numpy()[wanted["item"].to_numpy()]
    receipts, lines = sales.build_receipts(rng_for(1, "test", "receipts"), START, sales.RECEIPT_ID_STRIDE + 1, few,
                                           wanted, granted, prices,
                                           assortment, datetime(2025, 1, 2, 2))
    assert receipts.height == few.filter(pl.col("trip") != 0).join(
        wanted.filter(pl.Series(granted > 0)).select("trip").unique(), on="trip").height
    assert (lines["quantity"] >= 1).all() and lines["quantity"].sum() == granted.sum()
    assert receipts["receipt_id"].is_sorted() and receipts["receipt_ts"].is_sorted()
    per_receipt = lines.group_by("receipt_id").agg(pl.col("line_total").sum().round(2).alias("s"))
    joined = receipts.join(per_receipt, on="receipt_id")
    assert ((joined["subtotal"] - joined["s"]).abs() < 1e-9).all()


def test_holidays_and_weekdays_move_traffic_and_stores_differ_strongly(world, assortment):
    from grocery_pipeline.simulation import calendar

    eve = date(2025, 11, 26)                      # the day before Thanksgiving
    ordinary = date(2025, 11, 12)                 # a Wednesday two weeks before
    busy = [sales.plan_trips(rng_for(1, "test", d), world.customers, assortment,
                             3_000 * calendar.traffic_multiplier(d), False).frame.height for d in (eve, ordinary)]
    assert 1.75 < busy[0] / busy[1] < 2.0
    assert calendar.traffic_multiplier(date(2025, 11, 24)) < calendar.traffic_multiplier(date(2025, 11, 22))  # Mon < Sat



def test_store_volumes_are_strongly_uneven(tiny_settings, dictionaries):
    from grocery_pipeline.settings import replace

    small = replace(tiny_settings, preset="small", stores=10, customers=5_000, products=600, drivers=40)
    world = Dimensions().grow(Day(small, dictionaries, START))
    assortment = shopping.build_assortment(world.stores, world.store_products, world.products, world.promotions)
    trips = sales.plan_trips(rng_for(1, "test", "stores"), world.customers, assortment, 30_000, False).frame
    per_store = trips.group_by("store_id").len()["len"].to_numpy()
    assert len(per_store) == 10 and per_store.std() / per_store.mean() > 0.6
