"""Dimension tables: each daily partition holds the rows that came into being that day; the first
partition holds the initial population."""

from __future__ import annotations

import polars as pl

from grocery_pipeline.tables import BUSINESS_DATE, LOADED_AT, Column, Table

GROUP = "dimensions"
I64, F64, STR, BOOL, DATE = pl.Int64(), pl.Float64(), pl.String(), pl.Boolean(), pl.Date()

CALENDAR = Table(
    "calendar", GROUP,
    "One row per business date: weekday, holiday, season and the traffic multiplier that scales "
    "every store's footfall and delivery demand that day.",
    (
        Column("date", DATE, "The calendar date (equal to business_date)."),
        Column("day_of_week", I64, "ISO day of week, 1 = Monday ... 7 = Sunday."),
        Column("day_name", STR, "Weekday name, e.g. Saturday."),
        Column("is_weekend", BOOL, "True on Saturday and Sunday."),
        Column("holiday_name", STR, "Holiday or shopping event on this date, if any.", nullable=True),
        Column("season", STR, "WINTER, SPRING, SUMMER or FALL."),
        Column("traffic_multiplier", F64, "Expected traffic relative to an average day (1.0)."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("date",),
)

DISTRIBUTION_CENTERS = Table(
    "distribution_centers", "dimensions",
    "Distribution centers that replenish the stores, placed at the chain's population centres.",
    (
        Column("dc_id", I64, "Distribution center id."),
        Column("name", STR, "Distribution center name."),
        Column("geo_id", I64, "Town the DC is in.", references=None),
        Column("city", STR, "Town name."),
        Column("state", STR, "Two-letter state code."),
        Column("lat", F64, "Latitude (degrees)."),
        Column("lon", F64, "Longitude (degrees)."),
        Column("capacity_cases", I64, "Storage capacity in cases."),
        Column("opened_on", DATE, "Date the DC opened."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("dc_id",),
)

STORES = Table(
    "stores", GROUP,
    "Stores of the chain: banner, address, coordinates, format profile, size, tax rates and the "
    "distribution center that serves them. A store's profile drives its traffic.",
    (
        Column("store_id", I64, "Store id."),
        Column("banner", STR, "Store banner (brand of the store)."),
        Column("name", STR, "Store name."),
        Column("address", STR, "Synthetic street address."),
        Column("geo_id", I64, "Town the store is in."),
        Column("city", STR, "Town name."),
        Column("state", STR, "Two-letter state code."),
        Column("county", STR, "County (tax jurisdiction)."),
        Column("zip", STR, "Zip code."),
        Column("region", STR, "Region of the country."),
        Column("lat", F64, "Latitude (degrees)."),
        Column("lon", F64, "Longitude (degrees)."),
        Column("profile", STR, "Format profile: FLAGSHIP, HIGH, MEDIUM, LOW or KIOSK."),
        Column("square_feet", I64, "Selling area in square feet."),
        Column("opened_on", DATE, "Date the store opened."),
        Column("tax_rate", F64, "General merchandise sales tax rate of the jurisdiction."),
        Column("grocery_tax_rate", F64, "Sales tax rate on grocery food in the jurisdiction."),
        Column("dc_id", I64, "Serving distribution center.", references=("distribution_centers", "dc_id")),
        Column("traffic_weight", F64, "Relative footfall of the store (profile, size and catchment)."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("store_id",),
)

TRUCKS = Table(
    "trucks", GROUP,
    "The truck fleet of each distribution center, refrigerated or dry, with capacity.",
    (
        Column("truck_id", I64, "Truck id."),
        Column("dc_id", I64, "Home distribution center.", references=("distribution_centers", "dc_id")),
        Column("license_plate", STR, "Synthetic license plate."),
        Column("refrigerated", BOOL, "True for reefer trucks that may carry refrigerated products."),
        Column("capacity_cases", I64, "Capacity in cases."),
        Column("in_service_on", DATE, "Date the truck entered service."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("truck_id",),
)

PRODUCTS = Table(
    "products", GROUP,
    "The chain-wide catalog of SKUs: a generic product from the dictionary made by a synthetic "
    "brand, with its hierarchy, chain prices, cost and lifecycle dates.",
    (
        Column("product_id", I64, "Product (SKU) id."),
        Column("sku", STR, "Stock keeping unit code."),
        Column("base_product_id", I64, "Generic product of the catalog dictionary."),
        Column("product_name", STR, "Product name as shown to shoppers."),
        Column("brand", STR, "Synthetic brand."),
        Column("company", STR, "Synthetic company that owns the brand."),
        Column("brand_tier", STR, "VALUE, NATIONAL, PREMIUM or PRIVATE_LABEL."),
        Column("department", STR, "Department, e.g. Produce."),
        Column("category", STR, "Category within the department."),
        Column("subcategory", STR, "Subcategory within the category."),
        Column("unit_size", STR, "Pack size, e.g. 12 oz."),
        Column("base_price", F64, "Chain base shelf price (USD)."),
        Column("msrp", F64, "Manufacturer's suggested retail price (USD); no sale price exceeds it."),
        Column("unit_cost", F64, "Unit cost to the chain (USD); always below any sale price."),
        Column("taxable", BOOL, "True when general sales tax applies (non-food)."),
        Column("refrigerated", BOOL, "True when it must travel and be stored refrigerated."),
        Column("perishable", BOOL, "True for perishable goods (higher shrink)."),
        Column("popularity", F64, "Relative demand weight of the SKU (heavily skewed)."),
        Column("launched_on", DATE, "Date the SKU entered the catalog."),
        Column("discontinued_on", DATE, "Planned date the SKU leaves the catalog, if any.", nullable=True),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("product_id",),
)

STORE_PRODUCTS = Table(
    "store_products", GROUP,
    "Store-level assortment: which SKUs each store carries, at what list price (within the "
    "configured spread of the chain base price) and with which replenishment levels.",
    (
        Column("store_product_id", I64, "Store product id (store_id * 1,000,000 + product_id)."),
        Column("store_id", I64, "Store.", references=("stores", "store_id")),
        Column("product_id", I64, "Product (SKU).", references=("products", "product_id")),
        Column("list_price", F64, "Store list price before price ticks and promotions (USD)."),
        Column("reorder_point", I64, "On-hand units at or below which a replenishment is ordered."),
        Column("order_up_to", I64, "Target on-hand units after replenishment."),
        Column("initial_on_hand", I64, "On-hand units when the product joined the store's assortment."),
        Column("listed_on", DATE, "Date the store started carrying the product."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("store_product_id",),
)

CUSTOMERS = Table(
    "customers", GROUP,
    "Loyalty customers: synthetic identity and contact, home location near the chain's stores, "
    "shopping segment and propensity to order for home delivery.",
    (
        Column("customer_id", I64, "Customer id."),
        Column("first_name", STR, "Synthetic given name.", held=False),
        Column("last_name", STR, "Synthetic surname.", held=False),
        Column("email", STR, "Synthetic e-mail address (reserved example domains).", held=False),
        Column("phone", STR, "Synthetic phone number (555 exchange).", held=False),
        Column("address", STR, "Synthetic home street address.", held=False),
        Column("geo_id", I64, "Home town.", held=False),
        Column("city", STR, "Home town name.", held=False),
        Column("state", STR, "Two-letter state code.", held=False),
        Column("zip", STR, "Home zip code.", held=False),
        Column("lat", F64, "Home latitude (degrees)."),
        Column("lon", F64, "Home longitude (degrees)."),
        Column("segment", STR, "Shopping segment: budget, convenience, quality or brand-loyal."),
        Column("signup_date", DATE, "Date the customer joined the loyalty program."),
        Column("loyalty_id", STR, "Loyalty card number.", held=False),
        Column("delivery_propensity", F64, "Probability that a shopping trip is a delivery order."),
        Column("home_store_id", I64, "Nearest store to home when the customer signed up.",
               references=("stores", "store_id")),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("customer_id",),
)

DRIVERS = Table(
    "drivers", GROUP,
    "Delivery drivers: synthetic identity, the store zone they work from, vehicle and tenure.",
    (
        Column("driver_id", I64, "Driver id."),
        Column("first_name", STR, "Synthetic given name."),
        Column("last_name", STR, "Synthetic surname."),
        Column("home_store_id", I64, "Store zone the driver works from.", references=("stores", "store_id")),
        Column("lat", F64, "Home latitude (degrees)."),
        Column("lon", F64, "Home longitude (degrees)."),
        Column("vehicle", STR, "car, van, e-bike or scooter."),
        Column("hired_on", DATE, "Date the driver was hired."),
        Column("left_on", DATE, "Planned last day of work, if the driver leaves.", nullable=True),
        Column("active", BOOL, "True while the driver has no leaving date."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("driver_id",),
)

PROMOTIONS = Table(
    "promotions", GROUP,
    "Promotions created on a day: mechanic, discount, product or category scope and the window "
    "in which they apply.",
    (
        Column("promotion_id", I64, "Promotion id."),
        Column("promo_code", STR, "Promotion code printed on receipts and order lines."),
        Column("promotion_type", STR, "Promotion type from the dictionary, e.g. Weekly Special."),
        Column("discount_kind", STR, "PERCENT or AMOUNT."),
        Column("discount_value", F64, "Fraction off (PERCENT) or dollars off per unit (AMOUNT)."),
        Column("scope", STR, "PRODUCT or CATEGORY."),
        Column("product_id", I64, "Promoted product when scope is PRODUCT.", nullable=True,
               references=("products", "product_id")),
        Column("department", STR, "Department of the promoted product or category."),
        Column("category", STR, "Promoted category (also set for PRODUCT scope)."),
        Column("start_date", DATE, "First day the promotion applies."),
        Column("end_date", DATE, "Last day the promotion applies."),
        BUSINESS_DATE, LOADED_AT,
    ),
    key=("promotion_id",),
)

TABLES = (CALENDAR, DISTRIBUTION_CENTERS, STORES, TRUCKS, PRODUCTS, STORE_PRODUCTS, CUSTOMERS,
          DRIVERS, PROMOTIONS)
