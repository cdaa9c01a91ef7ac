"""In-store sales: who walks into which store when, what they put in the basket, and the receipt
they leave with once the shelf has had its say."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl

from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.shopping import ANONYMOUS, KINDS, Assortment

LOYALTY_SHARE = 0.62          # receipts on which a loyalty card is scanned
# Where a loyalty customer shops: nearest, second and third nearest store; else anywhere (near
# work, visiting), in proportion to store traffic.
STORE_RANK_ODDS = np.array([0.42, 0.13, 0.11])
KIND_TRIP_RATE = {"budget": 1.0, "convenience": 1.35, "quality": 1.0, "brand-loyal": 1.0}
# Loyalty coupon: share of loyalty baskets of at least $50 that redeem $5 off.
COUPON_SHARE, COUPON_MIN_CENTS, COUPON_CENTS = 0.10, 5_000, 500
RECEIPT_ID_STRIDE = 10_000_000


@dataclass(frozen=True)
class Trips:
    """Shopping trips of the day, one row per trip (trip = 0..n-1)."""

    frame: pl.DataFrame  # trip, store_index, store_id, customer_id, kind, trip_type, seconds


def kind_index(segments: pl.Series) -> np.ndarray:
    return segments.replace_strict({k: i for i, k in enumerate(KINDS)}, return_dtype=pl.Int64).to_numpy()


def plan_trips(rng: np.random.Generator, customers: pl.DataFrame, assortment: Assortment, expected: float,
               weekend: bool) -> Trips:
    """The day's in-store trips: loyalty customers at stores near home, anonymous shoppers in
    proportion to store traffic, at times that follow the day's hourly rhythm."""
    stores = assortment.stores
    stocked = assortment.stocked_store_indexes
    n = int(rng.poisson(expected)) if len(stocked) else 0
    loyal = rng.random(n) < LOYALTY_SHARE if customers.height else np.zeros(n, dtype=bool)
    n_loyal = int(loyal.sum())

    traffic = stores["traffic_weight"].to_numpy()[stocked]
    anywhere = stocked[rng.choice(len(stocked), size=n, p=traffic / traffic.sum())] if n else np.zeros(0, np.int64)
    store_index = anywhere.copy()
    customer_id = np.full(n, -1, dtype=np.int64)
    kind = np.full(n, ANONYMOUS, dtype=np.int64)
    if n_loyal:
        segment = customers["segment"]
        rate = (1.0 - customers["delivery_propensity"].to_numpy()) * segment.replace_strict(
            KIND_TRIP_RATE, return_dtype=pl.Float64).to_numpy()
        who = rng.choice(customers.height, size=n_loyal, p=rate / rate.sum())
        shoppers = customers.select("customer_id", "segment", "lat", "lon")[who]
        near, _ = shopping.nearest_stores(shoppers["lat"].to_numpy(), shoppers["lon"].to_numpy(),
                                          stores["lat"].to_numpy()[stocked], stores["lon"].to_numpy()[stocked])
        odds = STORE_RANK_ODDS[: near.shape[1]]
        rank = rng.choice(near.shape[1] + 1, size=n_loyal, p=np.r_[odds, 1 - odds.sum()])
        nearby = stocked[near[np.arange(n_loyal), np.minimum(rank, near.shape[1] - 1)]]
        store_index[loyal] = np.where(rank < near.shape[1], nearby, anywhere[loyal])
        customer_id[loyal] = shoppers["customer_id"].to_numpy()
        kind[loyal] = kind_index(shoppers["segment"])
    u = rng.random(n)
    trip_type = (u[:, None] > np.cumsum(shopping.TRIP_MIX[kind], axis=1)[:, :-1]).sum(axis=1) if n else np.zeros(0, np.int64)
    hours = shopping.INSTORE_WEEKEND_HOURS if weekend else shopping.INSTORE_HOURS
    seconds = shopping.sample_seconds(rng, n, hours)
    frame = pl.DataFrame({
        "trip": np.arange(n, dtype=np.int64),
        "store_index": store_index.astype(np.int64),
        "store_id": stores["store_id"].to_numpy()[store_index] if n else np.zeros(0, np.int64),
        "customer_id": pl.Series(customer_id).replace(-1, None),
        "kind": kind,
        "trip_type": trip_type.astype(np.int64),
        "seconds": seconds.astype(np.int64),
    })
    return Trips(frame)


def basket_requests(rng: np.random.Generator, trips: pl.DataFrame, assortment: Assortment) -> pl.DataFrame:
    """What each shopper means to buy: distinct products (row `item` of the assortment) and units."""
    trip_type = trips["trip_type"].to_numpy()
    sizes = shopping.basket_sizes(rng, trip_type)
    picks = shopping.distinct_picks(rng, assortment, trips["trip"].to_numpy(), sizes, trips["store_index"].to_numpy(),
                                    trips["kind"].to_numpy(), trip_type)
    trip = picks["basket"].to_numpy()
    return pl.DataFrame({
        "trip": trip,
        "item": picks["item"],
        "quantity": shopping.line_quantities(rng, trip_type[trip]),
        "kind": trips["kind"].to_numpy()[trip],
        "seconds": trips["seconds"].to_numpy()[trip],
    })


def build_receipts(rng: np.random.Generator, business_date: date, first_id: int, trips: pl.DataFrame,
                   lines: pl.DataFrame, granted: np.ndarray, unit_price: np.ndarray, assortment: Assortment,
                   loaded_at: datetime) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Receipts and their lines from what the shelf granted; a basket left empty leaves no receipt.
    The sold lines are put in receipt order first and each column is gathered once, in that order;
    within a receipt they stay in pick order, so the sums by receipt add the lines as drawn."""
    shelf = assortment.shelf
    granted = np.asarray(granted)
    sold = np.flatnonzero(granted > 0)
    trip = lines["trip"].to_numpy()[sold]
    takes_deal = rng.random(len(sold)) < shopping.PROMO_USE[lines["kind"].to_numpy()[sold]]
    # Receipt ids (from `first_id` on) follow checkout time; trips left with nothing are not numbered.
    sold_in = np.zeros(trips.height, dtype=bool)
    sold_in[trip] = True
    kept = trips.filter(pl.Series(sold_in[trips["trip"].to_numpy()])).sort("seconds", "trip")
    receipt_ids = first_id + np.arange(kept.height, dtype=np.int64)
    kept = kept.with_columns(receipt_id=receipt_ids, basket=np.arange(kept.height, dtype=np.int64))
    basket_of_trip = np.full(trips.height, -1, dtype=np.int64)
    basket_of_trip[kept["trip"].to_numpy()] = kept["basket"].to_numpy()
    basket = basket_of_trip[trip]
    n = kept.height
    line = shopping.stable_order(basket, n)   # lines by receipt, in basket order within one
    row, basket, takes_deal = sold[line], basket[line], takes_deal[line]
    del sold, trip, line, basket_of_trip
    item = lines["item"].to_numpy()[row]
    quantity = granted[row].astype(np.int64, copy=False)
    money = shopping.price_lines(np.asarray(unit_price, dtype=np.float64)[row], quantity, shelf["deal"][item],
                                 shelf["deal_value"][item], takes_deal)
    promotion_id, promo_code = assortment.promotion_columns(item, money.on_promotion)
    receipt_lines = pl.DataFrame({
        "receipt_id": receipt_ids[basket],
        "store_product_id": shelf["store_product_id"][item],
        "product_id": shelf["product_id"][item],
        "priced_at": shopping.seconds_to_ts(business_date, lines["seconds"].to_numpy()[row]),
        "quantity": quantity,
        "unit_price": shopping.cents(money.unit_cents),
        "discount": shopping.cents(money.discount_cents),
        "line_total": shopping.cents(money.line_cents),
        "promotion_id": promotion_id,
        "promo_code": promo_code,
        "line_number": shopping.within_group_rank(basket) + 1,
    })
    del row, promotion_id, promo_code

    subtotal = np.bincount(basket, weights=money.line_cents, minlength=n).astype(np.int64)
    tax = shopping.tax_cents(money.line_cents, shelf["tax_rate"][item], basket)
    tax = np.pad(tax, (0, n - len(tax)))
    line_count = np.bincount(basket, minlength=n)
    item_count = np.bincount(basket, weights=quantity, minlength=n).astype(np.int64)
    loyal = kept["customer_id"].is_not_null().to_numpy()
    coupon = np.where(loyal & (subtotal >= COUPON_MIN_CENTS) & (rng.random(n) < COUPON_SHARE), COUPON_CENTS, 0)
    receipts = pl.DataFrame({
        "receipt_id": kept["receipt_id"],
        "store_id": kept["store_id"],
        "customer_id": kept["customer_id"],
        "receipt_ts": shopping.seconds_to_ts(business_date, kept["seconds"].to_numpy()),
        "trip_type": shopping.labels(shopping.TRIP_TYPES, kept["trip_type"].to_numpy()),
        "tender_type": instore_tenders(rng, subtotal, kept["kind"].to_numpy()),
        "line_count": line_count.astype(np.int64),
        "item_count": item_count,
        "subtotal": shopping.cents(subtotal),
        "basket_discount": shopping.cents(coupon),
        "tax": shopping.cents(tax),
        "total": shopping.cents(subtotal - coupon + tax),
    })
    stamp = {"business_date": pl.lit(business_date), "_loaded_at": pl.lit(loaded_at)}
    return receipts.with_columns(**stamp), receipt_lines.with_columns(**stamp)


def instore_tenders(rng: np.random.Generator, subtotal_cents: np.ndarray, kind: np.ndarray) -> pl.Series:
    """Cash for small baskets, cards for big ones, EBT mostly among budget shoppers."""
    n = len(subtotal_cents)
    small = subtotal_cents < 2_000
    cash = np.where(small, 0.30, 0.12)
    ebt = np.where(kind == 0, 0.09, 0.02)
    odds = np.stack([np.full(n, 0.40), np.full(n, 0.29), cash, np.full(n, 0.08), ebt, np.full(n, 0.02)], axis=1)
    cum = np.cumsum(odds / odds.sum(axis=1, keepdims=True), axis=1)
    pick = (rng.random(n)[:, None] > cum[:, :-1]).sum(axis=1)
    return shopping.labels(shopping.INSTORE_TENDERS, pick)
