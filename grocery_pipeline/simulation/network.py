"""The physical network: distribution centers at population centres, stores placed by population
near them, and each DC's truck fleet."""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.simulation import geography, growth, identity
from grocery_pipeline.simulation.context import Day, shift_days

PROFILES = np.array(["FLAGSHIP", "HIGH", "MEDIUM", "LOW", "KIOSK"])
# Share of stores per profile (by rank of catchment size) and their footfall and size.
PROFILE_SHARES = np.array([0.06, 0.20, 0.36, 0.28, 0.10])
PROFILE_TRAFFIC = {"FLAGSHIP": 3.2, "HIGH": 1.8, "MEDIUM": 1.0, "LOW": 0.55, "KIOSK": 0.22}
PROFILE_SQFT = {"FLAGSHIP": (65_000, 90_000), "HIGH": (45_000, 65_000), "MEDIUM": (30_000, 45_000),
                "LOW": (18_000, 30_000), "KIOSK": (3_000, 8_000)}
DC_REACH_MILES = 180.0


def generate_distribution_centers(day: Day) -> pl.DataFrame:
    """The DCs, all opened before the first day, at the most populous towns (one per town)."""
    n = day.settings.distribution_centers if day.is_initial else 0
    geos = day.dictionaries.geographies
    rng = day.rng("distribution_centers")
    weights = geos["population"].to_numpy().astype(np.float64)
    picks = rng.choice(geos.height, size=min(n, geos.height), replace=False, p=weights / weights.sum())
    chosen = geos[picks]
    ids = np.arange(1, len(picks) + 1)
    opened = shift_days(day.settings.start_date, -rng.integers(400, 4000, len(picks)))
    return _dc_frame(day, chosen, ids, opened, rng)


def _dc_frame(day: Day, chosen: pl.DataFrame, ids: np.ndarray, opened, rng) -> pl.DataFrame:
    return pl.DataFrame({
        "dc_id": ids,
        "name": chosen["city"] + " Distribution Center",
        "geo_id": chosen["geo_id"],
        "city": chosen["city"],
        "state": chosen["state"],
        "lat": chosen["lat"],
        "lon": chosen["lon"],
        "capacity_cases": rng.integers(150_000, 400_000, len(ids)),
        "opened_on": opened,
        "business_date": day.business_date,
        "_loaded_at": day.loaded_at(),
    })


def generate_stores(day: Day, distribution_centers: pl.DataFrame) -> pl.DataFrame:
    """Stores born on the day: placed in towns weighted by population and nearness to a DC."""
    settings, dicts = day.settings, day.dictionaries
    n = growth.rows_born(settings, "stores", day.business_date)
    first = growth.first_id(settings, "stores", day.business_date)
    rng = day.rng("stores")
    geos = dicts.geographies
    dc_lat, dc_lon = distribution_centers["lat"].to_numpy(), distribution_centers["lon"].to_numpy()
    _, dc_miles = geography.nearest(geos["lat"].to_numpy(), geos["lon"].to_numpy(), dc_lat, dc_lon)
    weights = geos["population"].to_numpy() ** 0.9 * np.exp(-dc_miles / DC_REACH_MILES)
    town = rng.choice(geos.height, size=n, p=weights / weights.sum())
    t = geos[town]
    lat, lon = geography.scatter_around(t["lat"].to_numpy(), t["lon"].to_numpy(), rng, 1.5)

    # Profile by catchment rank: bigger towns (plus noise) get the bigger formats.
    score = np.log(t["population"].to_numpy().astype(np.float64)) + rng.normal(0, 0.8, n)
    rank_share = (np.argsort(np.argsort(-score)) + 0.5) / max(n, 1)
    profile = PROFILES[np.searchsorted(np.cumsum(PROFILE_SHARES), rank_share)]
    sqft_lo = pl.Series(profile).replace_strict({k: v[0] for k, v in PROFILE_SQFT.items()}, return_dtype=pl.Int64).to_numpy()
    sqft_hi = pl.Series(profile).replace_strict({k: v[1] for k, v in PROFILE_SQFT.items()}, return_dtype=pl.Int64).to_numpy()
    square_feet = (sqft_lo + rng.random(n) * (sqft_hi - sqft_lo)).round(-2).astype(np.int64)
    traffic = pl.Series(profile).replace_strict(PROFILE_TRAFFIC, return_dtype=pl.Float64).to_numpy() * rng.lognormal(0, 0.35, n)

    banners = dicts.banners
    banner = banners["banner"].gather(rng.integers(0, banners.height, n))
    dc_idx, _ = geography.nearest(lat, lon, dc_lat, dc_lon)
    taxes = dicts.tax_rates
    ids = np.arange(first, first + n)
    opened = shift_days(day.business_date, -rng.integers(200, 7000, n) if day.is_initial else np.zeros(n))
    frame = pl.DataFrame({
        "store_id": ids,
        "banner": banner,
        "geo_id": t["geo_id"],
        "city": t["city"],
        "state": t["state"],
        "county": t["county"],
        "zip": t["zip"],
        "region": t["region"],
        "lat": lat,
        "lon": lon,
        "profile": profile,
        "square_feet": square_feet,
        "opened_on": opened,
        "dc_id": distribution_centers["dc_id"].to_numpy()[dc_idx] if n else np.array([], dtype=np.int64),
        "traffic_weight": np.round(traffic, 4),
        "address": identity.street_addresses(dicts, n, rng),
    })
    frame = frame.join(taxes.rename({"general_rate": "tax_rate", "grocery_rate": "grocery_tax_rate"}),
                       on=["state", "county"], how="left")
    return frame.with_columns(
        name=pl.format("{} {} #{}", "banner", "city", "store_id"),
        business_date=pl.lit(day.business_date),
        _loaded_at=pl.lit(day.loaded_at()),
    ).sort("store_id")


def generate_trucks(day: Day, distribution_centers: pl.DataFrame) -> pl.DataFrame:
    """The fleet of each DC opened on the day: ~40% refrigerated, capacity in cases."""
    dcs = distribution_centers.filter(pl.col("business_date") == day.business_date) \
        if "business_date" in distribution_centers.columns else distribution_centers
    per_dc = day.settings.trucks_per_dc
    rng = day.rng("trucks")
    dc_ids = np.repeat(dcs["dc_id"].to_numpy(), per_dc)
    states = dcs["state"].gather(np.repeat(np.arange(dcs.height), per_dc))
    n = len(dc_ids)
    refrigerated = rng.random(n) < 0.4
    capacity = np.where(refrigerated, rng.integers(1_600, 2_200, n), rng.integers(2_000, 2_800, n))
    in_service = shift_days(day.settings.start_date, -rng.integers(30, 2500, n))
    first = (dcs["dc_id"].to_numpy() - 1) * per_dc + 1 if n else np.array([], dtype=np.int64)
    ids = (np.repeat(first, per_dc) + np.tile(np.arange(per_dc), len(dcs))) if n else np.array([], dtype=np.int64)
    return pl.DataFrame({
        "truck_id": ids.astype(np.int64),
        "dc_id": dc_ids.astype(np.int64),
        "license_plate": identity.license_plates(states, rng),
        "refrigerated": refrigerated,
        "capacity_cases": capacity.astype(np.int64),
        "in_service_on": in_service,
        "business_date": day.business_date,
        "_loaded_at": day.loaded_at(),
    }, schema_overrides={"business_date": pl.Date})
