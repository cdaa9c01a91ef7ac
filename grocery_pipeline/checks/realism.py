"""Audits: realism targets (SPEC "Realism targets"), measured on each day's partition and reported
with severity WARN: a miss is worth a look in the UI, never a reason to withhold the data.

Each check reports the measured value beside its target band and published anchor. A measure
needs a minimum sample to mean anything; history-dependent measures (reorder share, days between
orders) also need the chain to have run long enough for customers to have histories. Below
either, the check passes and says so in its metadata (`evaluated: false` with the reason).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding
from grocery_pipeline.simulation.geography import haversine_miles
from grocery_pipeline.storage.lake import MissingPartitionError
from grocery_pipeline.storage.world import read_as_of_cached

WARM_UP_DAYS = 60  # before this, few customers have a delivery history to reorder from
# Visits measured against every open store at most, per day: an evenly spaced sample of the day's
# loyalty receipts beyond it (a share's standard error stays under 0.25 points; an xl day has 300k).
NEAREST_SAMPLE = 40_000


@dataclass(frozen=True)
class Target:
    name: str
    table: str
    description: str
    low: float
    high: float
    anchor: str
    measure: Callable[[AuditContext], tuple[float | None, int]]  # (value, sample size)
    reads: dict[str, tuple[str, ...]]  # the columns of the day's tables it measures
    sample_of: str = "rows"  # what the sample counts: the unit whose number makes the measure stable
    min_sample: int = 100
    needs_history: bool = False


def evaluate(target: Target, ctx: AuditContext) -> Finding:
    detail = {"target": [target.low, target.high], "anchor": target.anchor}
    days_in = (ctx.business_date - ctx.settings.start_date).days
    if target.needs_history and days_in < WARM_UP_DAYS:
        return Finding(0, [], {**detail, "evaluated": False,
                               "reason": f"warming up: day {days_in + 1} of {WARM_UP_DAYS}"})
    value, sample = target.measure(ctx)
    detail.update(sample=sample, sample_of=target.sample_of,
                  measured=None if value is None else round(float(value), 4))
    if value is None or sample < target.min_sample:
        return Finding(0, [], {**detail, "evaluated": False,
                               "reason": f"{sample} {target.sample_of} is under the {target.min_sample} "
                                         "needed for a stable measure"})
    inside = target.low <= value <= target.high
    return Finding(0 if inside else sample, [] if inside else [ctx.business_date.isoformat()],
                   {**detail, "evaluated": True})


# -- measures ------------------------------------------------------------------------------------

def _rows(ctx: AuditContext, table: str) -> pl.DataFrame:
    frame = ctx.same_day(table)
    return frame if frame is not None else pl.DataFrame()


def _mean(ctx: AuditContext, table: str, column: str, where: pl.Expr | None = None):
    frame = _rows(ctx, table)
    if frame.is_empty():
        return None, 0
    if where is not None:
        frame = frame.filter(where)
    return (frame[column].mean() if frame.height else None), frame.height


def _share(ctx: AuditContext, table: str, condition: pl.Expr, where: pl.Expr | None = None):
    frame = _rows(ctx, table)
    if frame.is_empty():
        return None, 0
    if where is not None:
        frame = frame.filter(where)
    return (frame.select(condition.mean()).item() if frame.height else None), frame.height


def _sold_lines(ctx: AuditContext) -> pl.DataFrame:
    """Every line that sold at least a unit, in store and delivered: product and value (gathered
    once for the several measures that read them)."""
    return ctx.shared(("sold_lines",), lambda: _gather_sold_lines(ctx))


# what the measures of sold lines read of the day's line tables
SOLD_LINES = {table: ("product_id", "line_total", "promotion_id", "quantity")
              for table in ("receipt_lines", "order_items")}


def _gather_sold_lines(ctx: AuditContext) -> pl.DataFrame:
    parts = []
    for table in SOLD_LINES:
        frame = ctx.same_day(table)
        if frame is not None and frame.height:
            # only the three columns are gathered by the filter
            parts.append(frame.select("product_id", "line_total", "promotion_id").filter(frame["quantity"] > 0))
    return pl.concat(parts) if parts else pl.DataFrame(
        schema={"product_id": pl.Int64, "line_total": pl.Float64, "promotion_id": pl.Int64})


def _as_of(ctx: AuditContext, table: str) -> pl.DataFrame | None:
    try:
        return read_as_of_cached(ctx.lake, table, ctx.business_date)
    except MissingPartitionError:
        return None


def _promotion_share(ctx: AuditContext):
    """Share of sold lines (in store and delivered) that carry a promotion; its stability rests on
    how many promotions ran that day, so that is the sample."""
    lines = _sold_lines(ctx)
    if lines.is_empty():
        return None, 0
    return lines["promotion_id"].is_not_null().mean(), len(_counts_by_id(lines["promotion_id"].drop_nulls()))


def _produce_share(ctx: AuditContext):
    lines = _sold_lines(ctx)
    products = _as_of(ctx, "products")
    if products is None or lines.is_empty():
        return None, lines.height
    if products["product_id"].n_unique() == products.height:
        # one product per id: each line meets at most one product, so the line totals need no join
        produce_ids = products.filter(pl.col("department") == "Produce")["product_id"]
        total = lines["line_total"].sum()
        produce = lines.filter(pl.col("product_id").is_in(produce_ids.implode()))["line_total"].sum()
        return (produce / total if total else None), lines.height
    joined = lines.join(products.select("product_id", "department"), on="product_id", how="left")
    total = joined["line_total"].sum()
    produce = joined.filter(pl.col("department") == "Produce")["line_total"].sum()
    return (produce / total if total else None), joined.height


def _top_sku_share(ctx: AuditContext):
    lines = _sold_lines(ctx)
    if lines.is_empty():
        return None, 0
    per_sku = _counts_by_id(lines["product_id"])
    products = _as_of(ctx, "products")
    catalog_size = products.height if products is not None else len(per_sku)
    top = max(1, int(np.ceil(0.01 * catalog_size)))
    return int(np.sort(per_sku)[::-1][:top].sum()) / lines.height, lines.height


def _counts_by_id(ids: pl.Series) -> np.ndarray:
    """How many times each distinct id occurs (null counts as one id), by counting over the ids
    when they are small non-negative integers (catalog and promotion ids are), else by a group-by."""
    if ids.dtype.is_integer() and not ids.null_count() and ids.len() and 0 <= ids.min() and ids.max() < 2 ** 24:
        counts = np.bincount(ids.to_numpy())
        return counts[counts > 0]
    return ids.to_frame().group_by(ids.name).len()["len"].to_numpy()


def _store_volume_spread(ctx: AuditContext):
    receipts = _rows(ctx, "receipts")
    if receipts.is_empty():
        return None, 0
    # a coefficient of variation over a handful of stores says nothing: the stores are the sample
    per_store = receipts.group_by("store_id").len()["len"].cast(pl.Float64)
    return per_store.std() / per_store.mean(), per_store.len()


def _visits_at_two_nearest(ctx: AuditContext):
    receipts = _rows(ctx, "receipts")
    stores, customers = _as_of(ctx, "stores"), _as_of(ctx, "customers")
    if receipts.is_empty() or stores is None or customers is None:
        return None, 0
    stores = stores.filter(pl.col("opened_on") <= ctx.business_date).sort("store_id")
    if stores.height < 3:  # with two stores or fewer every visit is at one of the two nearest: no measure
        return None, 0
    visits = receipts.select("customer_id", "store_id").filter(pl.col("customer_id").is_not_null())
    visits = visits.gather_every(-(-visits.height // NEAREST_SAMPLE)) if visits.height > NEAREST_SAMPLE else visits
    visits = visits.join(customers.select("customer_id", "lat", "lon"), on="customer_id", how="inner")
    if visits.is_empty():
        return None, 0
    at_near = _at_two_nearest(visits["lat"].to_numpy(), visits["lon"].to_numpy(), stores["lat"].to_numpy(),
                              stores["lon"].to_numpy(), stores["store_id"].to_numpy(), visits["store_id"].to_numpy())
    return float(at_near.mean()), visits.height


# Stores within this many miles north or south of a visitor are measured one by one; a visitor who
# went further is measured against every store only when fewer than two of those are nearer.
NEAREST_BAND_MILES = 25.0


def _at_two_nearest(lat, lon, store_lat, store_lon, store_ids, visited, chunk: int = 4096) -> np.ndarray:
    """Whether each visited store is one of the two `nearest_stores` of the visitor. Counting the
    stores nearer than the visited one answers it without ordering every visitor's stores; only a
    tie for second place (or a distance that is not a number) takes `nearest_stores`' own pick.

    A store can be as near as the visited one only within that distance north or south of the
    visitor, so most visitors are measured against the few stores of a band of latitude. Two
    stores of the band strictly nearer settle a visitor beyond it (not at the two nearest); the
    rest are measured against every store, by chunks whose distance matrix stays in the cache."""
    from grocery_pipeline.simulation.geography import MILES_PER_DEGREE_LAT
    from grocery_pipeline.simulation.shopping import (
        local_miles, nearest_stores, ragged_ranges, row_of, strictly_increasing,
    )

    # the visited store's column, and finite distances (else, or with ids out of order: ask)
    measurable = bool(strictly_increasing(store_ids) and np.isfinite(store_lat).all() and np.isfinite(store_lon).all())
    position = row_of(store_ids, visited) if measurable else np.full(len(visited), -1, dtype=np.int64)
    known = (position >= 0) & np.isfinite(lat) & np.isfinite(lon)
    by_lat = np.argsort(store_lat, kind="stable")
    sorted_lat = store_lat[by_lat]
    out = np.zeros(len(lat), dtype=bool)
    for start in range(0, len(lat), chunk):
        rows = np.arange(start, min(start + chunk, len(lat)))
        sure = rows[known[rows]]
        own = local_miles(lat[sure], lon[sure], store_lat[position[sure]], store_lon[position[sure]])
        # |dy| <= distance: a store further north or south than `reach` is further (the band is
        # widened far beyond any rounding of the distances)
        reach = np.minimum(own, NEAREST_BAND_MILES) / MILES_PER_DEGREE_LAT * (1 + 1e-6) + 1e-9
        low = np.searchsorted(sorted_lat, lat[sure] - reach, side="left")
        counts = np.searchsorted(sorted_lat, lat[sure] + reach, side="right") - low
        visitor, in_band = ragged_ranges(low, counts)
        store = by_lat[in_band]
        d = local_miles(lat[sure][visitor], lon[sure][visitor], store_lat[store], store_lon[store])
        level = np.bincount(visitor, weights=d <= own[visitor], minlength=len(sure))
        nearer = np.bincount(visitor, weights=d < own[visitor], minlength=len(sure))
        whole = own <= NEAREST_BAND_MILES  # the band holds every store as near as the visited one
        out[sure] = whole & (level <= 2)
        # beyond second place, only a tie for it (fewer than two stores strictly nearer) is unsure
        tied = sure[whole & (level > 2) & (nearer < 2)]
        wide = sure[~whole & (nearer < 2)]
        if len(wide):
            every = local_miles(lat[wide, None], lon[wide, None], store_lat[None, :], store_lon[None, :])
            visited_miles = every[np.arange(len(wide)), position[wide]][:, None]
            beyond = np.count_nonzero(every <= visited_miles, axis=1) > 2
            out[wide] = ~beyond
            nearer = np.count_nonzero(every[beyond] < visited_miles[beyond], axis=1)
            tied = np.union1d(tied, wide[beyond][nearer < 2])
        ask = np.union1d(rows[~known[rows]], tied) - start
        if len(ask):
            chunk_rows = slice(start, start + chunk)
            near, _ = nearest_stores(lat[chunk_rows][ask], lon[chunk_rows][ask], store_lat, store_lon, k=2)
            out[start + ask] = (store_ids[near] == visited[chunk_rows][ask, None]).any(axis=1)
    return out


def _trip_miles(ctx: AuditContext):
    receipts = _rows(ctx, "receipts")
    stores, customers = _as_of(ctx, "stores"), _as_of(ctx, "customers")
    if receipts.is_empty() or stores is None or customers is None:
        return None, 0
    trips = (receipts.select("customer_id", "store_id").filter(pl.col("customer_id").is_not_null())
             .join(customers.select("customer_id", "lat", "lon"), on="customer_id")
             .join(stores.select("store_id", pl.col("lat").alias("s_lat"), pl.col("lon").alias("s_lon")),
                   on="store_id"))
    if trips.is_empty():
        return None, 0
    miles = haversine_miles(trips["lat"].to_numpy(), trips["lon"].to_numpy(), trips["s_lat"].to_numpy(),
                            trips["s_lon"].to_numpy())
    return float((miles < 10).mean()), trips.height


def _hour_shape(ctx: AuditContext):
    """Share of in-store receipts in the 10:00-15:00 plateau over the share from 7:00 to 9:59,
    per hour: above 1 when traffic builds from the morning to the midday plateau."""
    receipts = _rows(ctx, "receipts")
    if receipts.is_empty():
        return None, 0
    hours = receipts["receipt_ts"].dt.hour()
    plateau = hours.is_between(10, 15).sum() / 6
    morning = hours.is_between(7, 9).sum() / 3
    return (plateau / morning if morning else None), receipts.height


TARGETS: tuple[Target, ...] = (
    Target("receipts_items_per_basket", "receipts", "Products per in-store basket average about 10.",
           7.0, 14.0, "Instacart: 10.1 products per order", lambda c: _mean(c, "receipts", "line_count"),
           {"receipts": ("line_count",)}, sample_of="receipts"),
    Target("receipts_basket_value", "receipts", "In-store baskets average about $42.",
           30.0, 56.0, "FMI: $42.07 average transaction", lambda c: _mean(c, "receipts", "total"),
           {"receipts": ("total",)}, sample_of="receipts"),
    Target("order_items_reorder_share", "order_items", "55-62% of delivery lines are reorders.",
           0.50, 0.67, "Instacart: ~59% of lines reordered",
           lambda c: _share(c, "order_items", pl.col("reordered").cast(pl.Float64)),
           {"order_items": ("reordered",)}, sample_of="order lines", needs_history=True),
    Target("orders_days_between_orders", "orders",
           "Days between a customer's delivery orders are capped at 30 and average about 17.",
           12.0, 22.0, "Instacart: days_since_prior_order capped at 30, mean ~17",
           lambda c: _mean(c, "orders", "days_since_prior_order", pl.col("days_since_prior_order").is_not_null()),
           {"orders": ("days_since_prior_order",)}, sample_of="repeat orders", needs_history=True),
    Target("receipts_hour_of_day_builds_to_midday", "receipts",
           "Traffic builds from 7:00 to a 10:00-15:00 plateau: plateau hours busier than early-morning hours.",
           1.1, 10.0, "grocery traffic curves (FMI, Instacart order_hour_of_day)", _hour_shape,
           {"receipts": ("receipt_ts",)}, sample_of="receipts"),
    Target("receipt_lines_promotion_share", "receipt_lines",
           "34-43% of sold lines (in store and delivered) carry a promotion.",
           0.30, 0.47, "retail promotion share 34-43% of units", _promotion_share, SOLD_LINES,
           sample_of="promotions applied", min_sample=25),
    Target("receipt_lines_produce_share", "receipt_lines", "Produce is about 10% of sales.",
           0.05, 0.16, "FMI: produce ~10% of grocery sales", _produce_share, SOLD_LINES, sample_of="sold lines"),
    Target("receipt_lines_top_sku_share", "receipt_lines",
           "Heavy popularity skew: the top 1% of SKUs take far more than 2% of lines.",
           0.04, 1.0, "long-tail retail demand (Instacart product order counts)", _top_sku_share, SOLD_LINES,
           sample_of="sold lines"),
    Target("receipts_store_volume_spread", "receipts",
           "Store volumes vary widely: coefficient of variation of receipts per store above 0.6.",
           0.6, 10.0, "retail big-data generator store profiles", _store_volume_spread,
           {"receipts": ("store_id",)}, sample_of="stores", min_sample=5),
    Target("receipts_visits_at_two_nearest_stores", "receipts",
           "About 70% of a loyalty customer's visits are at one of their two nearest stores.",
           0.60, 0.97, "shopper studies: ~70% of trips to the two nearest stores", _visits_at_two_nearest,
           {"receipts": ("customer_id", "store_id")}, sample_of="loyalty receipts"),
    Target("receipts_trips_under_10_miles", "receipts", "Most shopping trips are under 10 miles.",
           0.5, 1.0, "NHTS: most grocery trips under 10 miles", _trip_miles,
           {"receipts": ("customer_id", "store_id")}, sample_of="loyalty receipts"),
)

AUDITS: list[Audit] = [
    Audit(t.name, t.table, f"{t.description} Target {t.low:g}-{t.high:g} ({t.anchor}). Warns only.",
          (lambda target: lambda ctx: evaluate(target, ctx))(t), blocking=False, day_reads=t.reads)
    for t in TARGETS
]
