"""People: loyalty customers who live near the chain's stores, and drivers who work from a
store's zone."""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.simulation import geography, growth, identity
from grocery_pipeline.simulation.context import Day, shift_days

SEGMENTS = np.array(["budget", "convenience", "quality", "brand-loyal"])
SEGMENT_SHARES = np.array([0.35, 0.25, 0.20, 0.20])
# Beta(a, b) of the share of trips a customer makes as delivery orders, by segment.
DELIVERY_PROPENSITY = {"budget": (1.5, 9.0), "convenience": (4.0, 6.0), "quality": (3.0, 7.0),
                       "brand-loyal": (2.5, 8.0)}
CUSTOMER_MEAN_MILES = 3.2
VEHICLES = np.array(["car", "van", "e-bike", "scooter"])
VEHICLE_SHARES = np.array([0.60, 0.15, 0.15, 0.10])


def _born_near_stores(day: Day, stores: pl.DataFrame, table: str):
    """The day's new people of `table`: their first id, random stream, the open stores, and for
    each person the index of the store they live or work near (busier stores draw more)."""
    n = growth.rows_born(day.settings, table, day.business_date)
    first = growth.first_id(day.settings, table, day.business_date)
    rng = day.rng(table)
    open_stores = stores.filter(pl.col("opened_on") <= day.business_date).sort("store_id")
    weights = open_stores["traffic_weight"].to_numpy()
    anchor = rng.choice(open_stores.height, size=n, p=weights / weights.sum())
    return n, first, rng, open_stores, anchor


def generate_customers(day: Day, stores: pl.DataFrame) -> pl.DataFrame:
    """Customers who sign up on the day, living around stores in proportion to store traffic."""
    dicts = day.dictionaries
    n, first, rng, open_stores, anchor = _born_near_stores(day, stores, "customers")
    home = open_stores[anchor]
    lat, lon = geography.scatter_around(home["lat"].to_numpy(), home["lon"].to_numpy(), rng,
                                        CUSTOMER_MEAN_MILES)
    first_name, last_name = identity.person_names(dicts, n, rng)
    ids = np.arange(first, first + n, dtype=np.int64)
    segment = SEGMENTS[rng.choice(len(SEGMENTS), size=n, p=SEGMENT_SHARES)]
    a = pl.Series(segment).replace_strict({k: v[0] for k, v in DELIVERY_PROPENSITY.items()}, return_dtype=pl.Float64).to_numpy()
    b = pl.Series(segment).replace_strict({k: v[1] for k, v in DELIVERY_PROPENSITY.items()}, return_dtype=pl.Float64).to_numpy()
    signup = shift_days(day.business_date, -rng.integers(0, 1500, n) if day.is_initial else np.zeros(n))
    loyalty = pl.Series(identity.scrambled_number(ids, 10).astype(np.int64)).cast(pl.String).str.zfill(10)
    return pl.DataFrame({
        "customer_id": ids,
        "first_name": first_name,
        "last_name": last_name,
        "email": identity.emails(first_name, last_name, ids, rng),
        "phone": identity.phones(n, rng),
        "address": identity.street_addresses(dicts, n, rng),
        "geo_id": home["geo_id"],
        "city": home["city"],
        "state": home["state"],
        "zip": home["zip"],
        "lat": lat,
        "lon": lon,
        "segment": segment,
        "signup_date": signup,
        "loyalty_id": "LY" + loyalty,
        "delivery_propensity": np.round(rng.beta(a, b), 4) if n else np.array([], dtype=np.float64),
        "home_store_id": home["store_id"],
        "business_date": day.business_date,
        "_loaded_at": day.loaded_at(),
    }, schema_overrides={"business_date": pl.Date})


def generate_drivers(day: Day, stores: pl.DataFrame) -> pl.DataFrame:
    """Drivers hired on the day: the initial crew covers every store, busier stores get more."""
    dicts = day.dictionaries
    n, first, rng, open_stores, zone = _born_near_stores(day, stores, "drivers")
    if day.is_initial:
        zone[: min(n, open_stores.height)] = np.arange(min(n, open_stores.height))
    home = open_stores[zone]
    lat, lon = geography.scatter_around(home["lat"].to_numpy(), home["lon"].to_numpy(), rng, 4.0)
    first_name, last_name = identity.person_names(dicts, n, rng)
    hired = shift_days(day.business_date, -rng.integers(0, 1000, n) if day.is_initial else np.zeros(n))
    leaves = rng.random(n) < 0.25
    left = shift_days(day.business_date, rng.integers(30, 400, n)).to_frame("d").select(
        pl.when(pl.Series(leaves)).then(pl.col("d")).otherwise(None))["d"]
    return pl.DataFrame({
        "driver_id": np.arange(first, first + n, dtype=np.int64),
        "first_name": first_name,
        "last_name": last_name,
        "home_store_id": home["store_id"],
        "lat": lat,
        "lon": lon,
        "vehicle": VEHICLES[rng.choice(len(VEHICLES), size=n, p=VEHICLE_SHARES)],
        "hired_on": hired,
        "left_on": left,
        "active": ~leaves,
        "business_date": day.business_date,
        "_loaded_at": day.loaded_at(),
    }, schema_overrides={"business_date": pl.Date})
