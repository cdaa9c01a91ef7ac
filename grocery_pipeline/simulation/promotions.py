"""Promotions: each day the merchandising team creates product and category deals from the
dictionary's promotion types, seasonal ones only in their season."""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.simulation import calendar
from grocery_pipeline.simulation.context import Day, shift_days

MAX_LEAD_DAYS = 6
ID_STRIDE = 10_000  # promotion ids: day index * stride + sequence, so ids need no earlier partition


def _season_ok(types: pl.DataFrame, day: Day) -> pl.DataFrame:
    season = calendar.season(day.business_date)
    holiday_window = day.business_date.month in (11, 12)
    return types.filter((pl.col("season") == "") | (pl.col("season") == season)
                        | ((pl.col("season") == "HOLIDAY") & holiday_window))


def generate_promotions(day: Day, products: pl.DataFrame) -> pl.DataFrame:
    """Promotions created on the day. On the first day, also the deals already running and those
    announced on earlier days to start within the lead time, so coverage does not dip while the
    daily flow of new deals ramps up."""
    d = day.business_date
    rng = day.rng("promotions")
    types = _season_ok(day.dictionaries.promotion_types, day)
    active = products.filter((pl.col("launched_on") <= d)
                             & (pl.col("discontinued_on").is_null() | (pl.col("discontinued_on") > d)))
    departments = active["department"].n_unique()
    mean_days = float(((types["min_days"] + types["max_days"]) / 2).mean())
    # Concurrent promotions: a share of the active catalog (product scope) and some per department.
    concurrent = (active.height * day.settings.promotion_product_share
                  + departments * day.settings.promotion_categories_per_department)
    per_day = concurrent / mean_days
    # Announced before the first day to start on day s: created with a lead of at least s + 1 days.
    announced = int(round(per_day * (MAX_LEAD_DAYS - 1) / 2)) if day.is_initial else 0
    n = int(round(concurrent)) + announced if day.is_initial else int(rng.poisson(per_day))
    n = min(n, ID_STRIDE - 1)
    w = types["weight"].to_numpy()
    kind = types[rng.choice(types.height, size=n, p=w / w.sum())]
    lo, hi = kind["min_discount"].to_numpy(), kind["max_discount"].to_numpy()
    percent = kind["discount_kind"].to_numpy() == "PERCENT"
    raw = lo + rng.random(n) * (hi - lo)
    value = np.where(percent, np.round(raw * 20) / 20, np.round(raw * 4) / 4)
    value = np.clip(value, np.maximum(lo, 0.01), hi)
    days = kind["min_days"].to_numpy() + np.floor(rng.random(n) * (kind["max_days"] - kind["min_days"] + 1).to_numpy())
    days = days.astype(np.int64)
    if day.is_initial:
        running = np.arange(n) < n - announced
        future = np.arange(1, MAX_LEAD_DAYS)
        odds = (MAX_LEAD_DAYS - future) / (MAX_LEAD_DAYS - future).sum()
        lead = np.where(running, -np.floor(rng.random(n) * days), rng.choice(future, size=n, p=odds)).astype(np.int64)
    else:
        lead = rng.integers(1, MAX_LEAD_DAYS + 1, n)
    start = shift_days(d, lead)
    end = shift_days(d, lead + days - 1)

    # Promoted products lean to the popular ones; category deals pick a category of the catalog.
    pop = active["popularity"].to_numpy()
    product_pick = active[rng.choice(active.height, size=n, p=pop / pop.sum())]
    product_scope = kind["scope"].to_numpy() == "PRODUCT"
    ids = day.index * ID_STRIDE + np.arange(1, n + 1, dtype=np.int64)
    frame = pl.DataFrame({
        "promotion_id": ids,
        "promotion_type": kind["promotion_type"],
        "discount_kind": kind["discount_kind"],
        "discount_value": value,
        "scope": kind["scope"],
        "product_id": pl.Series(np.where(product_scope, product_pick["product_id"].to_numpy(), 0)),
        "department": product_pick["department"],
        "category": product_pick["category"],
        "start_date": start,
        "end_date": end,
    })
    return frame.with_columns(
        product_id=pl.when(pl.col("scope") == "PRODUCT").then(pl.col("product_id")).otherwise(None),
        promo_code=pl.format("{}{}", pl.col("promotion_type").str.replace_all(r"[^A-Za-z]", "")
                             .str.slice(0, 4).str.to_uppercase(),
                             pl.Series(ids).cast(pl.String).str.zfill(6)),
        business_date=pl.lit(d),
        _loaded_at=pl.lit(day.loaded_at()),
    )
