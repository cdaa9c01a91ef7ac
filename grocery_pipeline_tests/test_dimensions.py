"""Dimension generators on the tiny preset: keys, references, geography and prices."""

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import calendar, catalog, geography, growth, network, people, promotions
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.settings import replace


@pytest.fixture
def world(tiny_day):
    dcs = network.generate_distribution_centers(tiny_day)
    stores = network.generate_stores(tiny_day, dcs)
    products = catalog.generate_products(tiny_day)
    return {
        "distribution_centers": dcs,
        "stores": stores,
        "trucks": network.generate_trucks(tiny_day, dcs),
        "products": products,
        "store_products": catalog.generate_store_products(tiny_day, stores, products),
        "customers": people.generate_customers(tiny_day, stores),
        "drivers": people.generate_drivers(tiny_day, stores),
        "promotions": promotions.generate_promotions(tiny_day, products),
    }


def test_initial_population_matches_the_preset(world, tiny_settings):
    assert world["stores"].height == tiny_settings.stores
    assert world["distribution_centers"].height == tiny_settings.distribution_centers
    assert world["products"].height == tiny_settings.products
    assert world["customers"].height == tiny_settings.customers
    assert world["drivers"].height == tiny_settings.drivers
    assert world["trucks"].height == tiny_settings.trucks_per_dc * tiny_settings.distribution_centers


@pytest.mark.parametrize("table, key", [("stores", "store_id"), ("products", "product_id"),
                                        ("customers", "customer_id"), ("drivers", "driver_id"),
                                        ("store_products", "store_product_id"), ("trucks", "truck_id"),
                                        ("promotions", "promotion_id")])
def test_keys_are_unique(world, table, key):
    frame = world[table]
    assert frame[key].n_unique() == frame.height and frame[key].null_count() == 0


def test_store_prices_within_spread_of_base_and_below_msrp(world):
    joined = world["store_products"].join(world["products"], on="product_id")
    assert joined.height > 0
    assert (joined["list_price"] >= joined["base_price"] * 0.85 - 1e-9).all()
    assert (joined["list_price"] <= joined["base_price"] * 1.15 + 1e-9).all()
    assert (joined["list_price"] <= joined["msrp"]).all()
    assert (joined["unit_cost"] < joined["list_price"]).all()
    assert (joined["unit_cost"] > 0).all()


def test_same_product_is_priced_differently_across_stores(world):
    spread = world["store_products"].group_by("product_id").agg(pl.col("list_price").n_unique().alias("n"))
    assert (spread["n"] > 1).mean() > 0.5


def test_assortment_is_about_85_percent_of_the_catalog(world):
    share = world["store_products"].height / (world["stores"].height * world["products"].height)
    assert 0.6 < share < 0.95


def test_references_resolve(world):
    assert world["stores"]["dc_id"].is_in(world["distribution_centers"]["dc_id"].implode()).all()
    assert world["trucks"]["dc_id"].is_in(world["distribution_centers"]["dc_id"].implode()).all()
    assert world["store_products"]["store_id"].is_in(world["stores"]["store_id"].implode()).all()
    assert world["store_products"]["product_id"].is_in(world["products"]["product_id"].implode()).all()
    assert world["customers"]["home_store_id"].is_in(world["stores"]["store_id"].implode()).all()
    assert world["drivers"]["home_store_id"].is_in(world["stores"]["store_id"].implode()).all()
    promo_products = world["promotions"]["product_id"].drop_nulls()
    assert promo_products.is_in(world["products"]["product_id"].implode()).all()


def test_coordinates_are_plausible_and_customers_live_near_stores(world):
    for table in ("stores", "customers", "drivers", "distribution_centers"):
        frame = world[table]
        assert frame["lat"].is_between(18, 72).all() and frame["lon"].is_between(-180, -60).all()
    stores, customers = world["stores"], world["customers"]
    _, miles = geography.nearest(customers["lat"].to_numpy(), customers["lon"].to_numpy(),
                                 stores["lat"].to_numpy(), stores["lon"].to_numpy())
    assert np.median(miles) < 6
    assert (miles < 10).mean() > 0.85


def test_every_store_has_a_driver_and_the_right_tax(world, dictionaries):
    assert set(world["drivers"]["home_store_id"]) == set(world["stores"]["store_id"])
    joined = world["stores"].join(dictionaries.tax_rates, on=["state", "county"])
    assert (joined["tax_rate"] == joined["general_rate"]).all()


def test_catalog_has_skewed_popularity_and_synthetic_contacts(world):
    pop = world["products"]["popularity"].sort(descending=True).to_numpy()
    top = max(1, len(pop) // 100)
    assert pop[:top].sum() / pop.sum() > 0.02 * 2
    emails = world["customers"]["email"]
    assert emails.str.contains(r"@(mail\.)?example\.(com|net|org)$").all()
    assert world["customers"]["phone"].str.contains(r"^\(\d{3}\) 555-\d{4}$").all()


def test_later_days_add_rows_with_continuous_ids(tiny_settings, dictionaries):
    settings = replace(tiny_settings, customer_signup_rate=0.02)
    ids = []
    for offset in range(4):
        d = settings.start_date + timedelta(days=offset)
        n = growth.rows_born(settings, "customers", d)
        first = growth.first_id(settings, "customers", d)
        ids.extend(range(first, first + n))
    assert ids == list(range(1, len(ids) + 1))
    assert len(ids) > settings.customers


def test_generators_are_deterministic(tiny_settings, dictionaries):
    day = Day(tiny_settings, dictionaries, tiny_settings.start_date)
    a = people.generate_customers(day, network.generate_stores(day, network.generate_distribution_centers(day)))
    b = people.generate_customers(day, network.generate_stores(day, network.generate_distribution_centers(day)))
    assert a.equals(b)
    other = Day(replace(tiny_settings, seed=7), dictionaries, tiny_settings.start_date)
    c = people.generate_customers(other, network.generate_stores(other, network.generate_distribution_centers(other)))
    assert not a.equals(c)


def test_calendar_rhythm_and_holidays():
    from datetime import date
    assert calendar.holiday_name(date(2025, 11, 26)) == "Day Before Thanksgiving"
    assert calendar.holiday_name(date(2025, 11, 27)) == "Thanksgiving"
    assert calendar.holiday_name(date(2025, 4, 20)) == "Easter Sunday"
    normal_wed = calendar.traffic_multiplier(date(2025, 11, 19))
    assert 1.80 <= calendar.traffic_multiplier(date(2025, 11, 26)) / normal_wed <= 1.95
    assert calendar.traffic_multiplier(date(2025, 3, 8)) > calendar.traffic_multiplier(date(2025, 3, 10))  # Sat > Mon
    frame = calendar.generate_calendar(date(2025, 12, 24))
    assert frame["holiday_name"][0] == "Christmas Eve" and frame["season"][0] == "WINTER"
