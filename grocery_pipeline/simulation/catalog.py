"""The catalog: generic products from the dictionary made into branded SKUs with chain prices,
and each store's assortment with list prices and replenishment levels."""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.simulation import growth
from grocery_pipeline.simulation.context import Day, shift_days

TIER_PRICE = {"VALUE": 0.82, "NATIONAL": 1.0, "PREMIUM": 1.32, "PRIVATE_LABEL": 0.78}
TIER_WEIGHT = {"VALUE": 1.0, "NATIONAL": 2.2, "PREMIUM": 0.9, "PRIVATE_LABEL": 1.4}
# Pack variants: (name suffix, size factor, price factor)
PACKS = (("", 1.0, 1.0), ("Family Size", 2.0, 1.7), ("Value Pack", 3.0, 2.3), ("Snack Size", 0.5, 0.6))
PACK_WEIGHTS = np.array([0.64, 0.16, 0.10, 0.10])
PRICE_ENDINGS = np.array([0.29, 0.49, 0.79, 0.99])
POPULARITY_EXPONENT = 0.85
# Store price position by format: flagships and kiosks charge for the experience or convenience,
# low-traffic stores sharpen prices. Multiplied by the banner's price index from the dictionary.
PROFILE_PRICE = {"FLAGSHIP": 1.05, "HIGH": 1.02, "MEDIUM": 1.0, "LOW": 0.97, "KIOSK": 1.07}
ASSUMED_LEAD_DAYS = 2


# The ending to take by how many endings lie below the cents; past .99 it is .29 of the next dollar.
_ENDING_AFTER = np.append(PRICE_ENDINGS, 1 + PRICE_ENDINGS[0])


def price_point(price: np.ndarray) -> np.ndarray:
    """Round prices to retail endings (.29/.49/.79/.99) at or just above the value."""
    price = np.maximum(np.asarray(price, dtype=np.float64), 0.29)
    dollars = np.floor(price)
    cents = price - dollars - 1e-9
    # counting the endings below (what searchsorted finds) with a few comparisons is much cheaper
    below = np.zeros(price.shape, dtype=np.intp)
    for ending in PRICE_ENDINGS:
        below += cents > ending
    return np.round(dollars + _ENDING_AFTER[below], 2)


def generate_products(day: Day) -> pl.DataFrame:
    """SKUs launched on the day (the initial catalog on the first day)."""
    settings, dicts = day.settings, day.dictionaries
    n = growth.rows_born(settings, "products", day.business_date)
    first = growth.first_id(settings, "products", day.business_date)
    rng = day.rng("products")
    base = dicts.products.join(dicts.departments.select("department", "demand_weight"), on="department")
    dept_size = base.group_by("department").len()
    base = base.join(dept_size, on="department").with_columns(
        pick_weight=pl.col("demand_weight") / pl.col("len"))
    weights = base["pick_weight"].to_numpy()
    weights = weights / weights.sum()
    if day.is_initial and n >= base.height:
        # Every generic product at least once, the rest as extra brands and packs.
        picks = np.concatenate([rng.permutation(base.height),
                                rng.choice(base.height, size=n - base.height, p=weights)])
    elif day.is_initial:
        picks = rng.choice(base.height, size=n, replace=False, p=weights)
    else:
        picks = rng.choice(base.height, size=n, p=weights)
    chosen = base[picks]

    # A brand of the product's department, national brands most often.
    brands = dicts.brands.with_columns(w=pl.col("tier").replace_strict(TIER_WEIGHT, return_dtype=pl.Float64))
    u = rng.random(n)
    brand_rows = _pick_within_group(brands, "department", chosen["department"], u)
    pack = rng.choice(len(PACKS), size=n, p=PACK_WEIGHTS)
    pack_suffix = np.array([p[0] for p in PACKS])[pack]
    pack_price = np.array([p[2] for p in PACKS])[pack]
    tier = brand_rows["tier"]
    tier_price = tier.replace_strict(TIER_PRICE, return_dtype=pl.Float64).to_numpy()

    base_price = price_point(chosen["base_price"].to_numpy() * pack_price * tier_price * rng.lognormal(0, 0.05, n))
    msrp = price_point(base_price * rng.uniform(1.02, 1.15, n))
    msrp = np.maximum(msrp, np.round(base_price * 1.16, 2))  # room above every store's list price
    # 58-72% of base keeps cost at 50-85% of any store list price (base +-15%)
    unit_cost = np.round(base_price * rng.uniform(0.58, 0.72, n), 2)

    # Heavily skewed popularity within each department, scaled to the department's demand share.
    zipf = (rng.permutation(n) + 1.0) ** -POPULARITY_EXPONENT
    ids = np.arange(first, first + n, dtype=np.int64)
    launched = shift_days(day.business_date, -rng.integers(30, 3000, n) if day.is_initial else np.zeros(n))
    discontinue = rng.random(n) < settings.product_discontinue_share
    discontinued = shift_days(day.business_date, rng.integers(30, 540, n)).to_frame("d").select(
        pl.when(pl.Series(discontinue)).then(pl.col("d")).otherwise(None))["d"]
    frame = pl.DataFrame({
        "product_id": ids,
        "base_product_id": chosen["base_product_id"],
        "brand": brand_rows["brand"],
        "company": brand_rows["company"],
        "brand_tier": tier,
        "department": chosen["department"],
        "category": chosen["category"],
        "subcategory": chosen["subcategory"],
        "generic_name": chosen["product_name"],
        "pack": pack_suffix,
        "unit_size": chosen["unit_size"],
        "base_price": base_price,
        "msrp": msrp,
        "unit_cost": unit_cost,
        "taxable": chosen["taxable"],
        "refrigerated": chosen["refrigerated"],
        "perishable": chosen["perishable"],
        "zipf": zipf,
        "demand_weight": chosen["demand_weight"],
        "launched_on": launched,
        "discontinued_on": discontinued,
    })
    return frame.with_columns(
        sku=pl.format("SKU-{}", pl.col("product_id").cast(pl.String).str.zfill(6)),
        product_name=pl.when(pl.col("pack") == "")
        .then(pl.format("{} {}", "brand", "generic_name"))
        .otherwise(pl.format("{} {} ({})", "brand", "generic_name", "pack")),
        popularity=(pl.col("demand_weight") * pl.col("zipf") / pl.col("zipf").sum().over("department")
                    * 1000).round(6),
        business_date=pl.lit(day.business_date),
        _loaded_at=pl.lit(day.loaded_at()),
    ).drop("generic_name", "pack", "zipf", "demand_weight")


def _pick_within_group(options: pl.DataFrame, group: str, wanted: pl.Series, u: np.ndarray) -> pl.DataFrame:
    """For each wanted group value, the option row at quantile u of that group's weights `w`."""
    opts = options.sort(group, "brand").with_columns(
        cum=pl.col("w").cum_sum().over(group) / pl.col("w").sum().over(group))
    picks = pl.DataFrame({group: wanted, "u": u, "i": np.arange(len(wanted))})
    joined = picks.sort("u").join_asof(opts.sort("cum"), left_on="u", right_on="cum", check_sortedness=False,
                                       by=group, strategy="forward")
    # u beyond the last cumulative weight (floating error) takes the group's last option
    fallback = opts.group_by(group).agg(pl.all().last())
    missing = joined.filter(pl.col("brand").is_null()).select(group, "u", "i").join(fallback, on=group)
    joined = pl.concat([joined.filter(pl.col("brand").is_not_null()), missing.select(joined.columns)])
    return joined.sort("i")


def generate_store_products(day: Day, stores: pl.DataFrame, products: pl.DataFrame) -> pl.DataFrame:
    """Assortment rows that begin on the day: every store opened today, every product launched
    today, each carried with the configured share (kiosks carry a narrow range)."""
    settings = day.settings
    d = day.business_date
    active_products = products.filter((pl.col("launched_on") <= d)
                                      & (pl.col("discontinued_on").is_null() | (pl.col("discontinued_on") > d)))
    new_store = pl.col("business_date") == d
    banner_index = dict(day.dictionaries.banners.select("banner", "price_index").iter_rows())
    # Store figures are worked out once per store and joined to its pairs: an xl first day has
    # millions of pairs, and repeating a store's strings on each costs memory and time.
    store_figures = stores.select(
        "store_id", "traffic_weight", kiosk=pl.col("profile") == "KIOSK",
        position=pl.col("profile").replace_strict(PROFILE_PRICE, return_dtype=pl.Float64)
        * pl.col("banner").replace_strict(banner_index, default=1.0, return_dtype=pl.Float64))
    pairs = pl.concat([
        stores.filter(new_store).select("store_id").join(active_products.select("product_id"), how="cross"),
        stores.filter(~new_store).select("store_id")
        .join(active_products.filter(pl.col("business_date") == d).select("product_id"), how="cross"),
    ]).sort("store_id", "product_id").join(store_figures, on="store_id", how="left", maintain_order="left")
    rng = day.rng("store_products")
    n = pairs.height
    share = np.where(pairs["kiosk"].to_numpy(), settings.store_assortment_share * 0.45,
                     settings.store_assortment_share)
    pairs = pairs.filter(pl.Series(rng.random(n) < share))
    n = pairs.height
    spread = settings.store_price_spread
    prices = pairs.join(active_products.select("product_id", "base_price", "msrp", "unit_cost", "popularity"),
                        on="product_id", how="left")
    base = prices["base_price"].to_numpy()
    low = np.ceil(base * (1 - spread) * 100 - 1e-6) / 100
    high = np.floor(np.minimum(base * (1 + spread), prices["msrp"].to_numpy()) * 100 + 1e-6) / 100
    raw = price_point(base * prices["position"].to_numpy() * rng.uniform(1 - spread * 0.5, 1 + spread * 0.5, n))
    list_price = np.clip(raw, low, high)

    # Replenishment levels from the expected unit sales of the pair.
    daily_lines = settings.receipts_per_day * 10 + settings.delivery_orders_per_day * 12
    store_share = (prices["traffic_weight"] / stores["traffic_weight"].sum()).to_numpy()
    product_share = (prices["popularity"] / active_products["popularity"].sum()).to_numpy()
    expected = daily_lines * store_share * product_share * 1.3
    reorder_point = np.ceil(expected * (ASSUMED_LEAD_DAYS + 1) * 1.5 + 2).astype(np.int64)
    order_up_to = reorder_point + np.ceil(expected * 6 + 6).astype(np.int64)
    listed = shift_days(d, np.zeros(n))
    return pl.DataFrame({
        "store_product_id": prices["store_id"] * 1_000_000 + prices["product_id"],
        "store_id": prices["store_id"],
        "product_id": prices["product_id"],
        "list_price": np.round(list_price, 2),
        "reorder_point": reorder_point,
        "order_up_to": order_up_to,
        "initial_on_hand": order_up_to,
        "listed_on": listed,
        "business_date": d,
        "_loaded_at": day.loaded_at(),
    }, schema_overrides={"business_date": pl.Date})
