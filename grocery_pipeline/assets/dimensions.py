"""Dimension assets: each day's partition holds the rows born that day; the first partition holds
the initial population. Upstream dimensions are read from the lake as of the same day."""

from __future__ import annotations

from grocery_pipeline.assets.dictionaries import dictionary_key
from grocery_pipeline.assets.factory import daily_tables_asset
from grocery_pipeline.partitions import DAILY
from grocery_pipeline.simulation import calendar, catalog, network, people, promotions
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.tables import dimensions as t


def _calendar(day: Day, lake: Lake):
    return {"calendar": calendar.generate_calendar(day.business_date)}


def _distribution_centers(day: Day, lake: Lake):
    return {"distribution_centers": network.generate_distribution_centers(day)}


def _stores(day: Day, lake: Lake):
    dcs = lake.read_as_of("distribution_centers", day.business_date)
    return {"stores": network.generate_stores(day, dcs)}


def _trucks(day: Day, lake: Lake):
    dcs = lake.read_partition("distribution_centers", day.business_date)
    return {"trucks": network.generate_trucks(day, dcs)}


def _products(day: Day, lake: Lake):
    return {"products": catalog.generate_products(day)}


def _store_products(day: Day, lake: Lake):
    stores = lake.read_as_of("stores", day.business_date)
    products = lake.read_as_of("products", day.business_date)
    return {"store_products": catalog.generate_store_products(day, stores, products)}


def _customers(day: Day, lake: Lake):
    return {"customers": people.generate_customers(day, lake.read_as_of("stores", day.business_date))}


def _drivers(day: Day, lake: Lake):
    return {"drivers": people.generate_drivers(day, lake.read_as_of("stores", day.business_date))}


def _promotions(day: Day, lake: Lake):
    return {"promotions": promotions.generate_promotions(day, lake.read_as_of("products", day.business_date))}


def _dims(*names: str):
    return [dictionary_key(n) for n in names]


calendar_asset = daily_tables_asset("calendar", [t.CALENDAR], _calendar, DAILY)
distribution_centers_asset = daily_tables_asset(
    "distribution_centers", [t.DISTRIBUTION_CENTERS], _distribution_centers, DAILY,
    deps=_dims("geographies"), self_dependent=True)
stores_asset = daily_tables_asset(
    "stores", [t.STORES], _stores, DAILY, self_dependent=True,
    deps=["distribution_centers", "calendar", *_dims("geographies", "tax_rates", "banners", "street_names",
                                                     "street_types")])
trucks_asset = daily_tables_asset("trucks", [t.TRUCKS], _trucks, DAILY, deps=["distribution_centers"],
                                  self_dependent=True)
products_asset = daily_tables_asset(
    "products", [t.PRODUCTS], _products, DAILY, self_dependent=True,
    deps=["calendar", *_dims("products", "brands", "departments")])
store_products_asset = daily_tables_asset(
    "store_products", [t.STORE_PRODUCTS], _store_products, DAILY, deps=["stores", "products"],
    self_dependent=True)
customers_asset = daily_tables_asset(
    "customers", [t.CUSTOMERS], _customers, DAILY, self_dependent=True,
    deps=["stores", "calendar", *_dims("first_names", "last_names", "street_names", "street_types")])
drivers_asset = daily_tables_asset(
    "drivers", [t.DRIVERS], _drivers, DAILY, self_dependent=True,
    deps=["stores", "calendar", *_dims("first_names", "last_names")])
promotions_asset = daily_tables_asset(
    "promotions", [t.PROMOTIONS], _promotions, DAILY, deps=["products", *_dims("promotion_types")],
    self_dependent=True)

DIMENSION_ASSETS = [calendar_asset, distribution_centers_asset, stores_asset, trucks_asset, products_asset,
                    store_products_asset, customers_asset, drivers_asset, promotions_asset]
