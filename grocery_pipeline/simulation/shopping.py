"""How people shop, shared by the in-store and the delivery simulations: shopper kinds and trip
types, the hour of the day, which products land in a basket, and what a line costs.

Product choice is two-stage so it stays vectorized at any scale: a line first picks a shelf group
(department x brand tier) with odds that depend on the store's range, the shopper's segment and
the trip type, then a product of that group in proportion to its popularity, lifted when it is on
promotion. All money is computed in integer cents, so totals add up exactly.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime, time

import numpy as np
import polars as pl

from grocery_pipeline.simulation.geography import MILES_PER_DEGREE_LAT

# Shopper kinds: the four loyalty segments, then anonymous (no loyalty card scanned).
KINDS = ("budget", "convenience", "quality", "brand-loyal", "anonymous")
ANONYMOUS = 4
TRIP_TYPES = ("QUICK_TRIP", "WEEKLY_SHOP", "FAMILY_SHOP", "BULK_SHOP")
TIERS = ("VALUE", "NATIONAL", "PREMIUM", "PRIVATE_LABEL")

# Trip type odds by shopper kind (rows follow KINDS, columns TRIP_TYPES).
TRIP_MIX = np.array([
    [0.34, 0.38, 0.13, 0.15],   # budget: stock-up and bulk trips
    [0.64, 0.26, 0.07, 0.03],   # convenience: many small trips
    [0.42, 0.42, 0.13, 0.03],   # quality
    [0.42, 0.40, 0.13, 0.05],   # brand-loyal
    [0.62, 0.28, 0.07, 0.03],   # anonymous shoppers skew to quick trips
])
# Mean distinct products per basket by trip type (long-tailed around it) and mean extra units per
# line beyond the first.
TRIP_LINES = np.array([4.2, 14.5, 24.0, 12.0])
TRIP_EXTRA_UNITS = np.array([0.05, 0.10, 0.14, 0.70])
LINES_DISPERSION = 2.2  # negative-binomial shape: smaller = longer tail

# Brand tier preference by shopper kind (rows KINDS, columns TIERS).
TIER_PREFERENCE = np.array([
    [1.8, 0.8, 0.4, 1.9],
    [0.9, 1.2, 0.9, 0.8],
    [0.5, 1.0, 2.2, 0.7],
    [0.6, 1.6, 1.1, 0.5],
    [1.0, 1.0, 0.9, 1.0],
])
# Department tilts on top of the catalog's demand weights.
KIND_DEPARTMENT_TILT = {
    "budget": {"Pantry": 1.3, "Frozen": 1.2, "Household": 1.2, "Produce": 0.6, "Deli": 0.7},
    "convenience": {"Deli": 1.7, "Beverages": 1.4, "Snacks": 1.4, "Bakery": 1.2, "Pantry": 0.7, "Produce": 0.65},
    "quality": {"Produce": 1.05, "Meat & Seafood": 1.3, "Bakery": 1.2, "Snacks": 0.7, "Frozen": 0.8},
    "brand-loyal": {"Beverages": 1.2, "Snacks": 1.2, "Personal Care": 1.2, "Produce": 0.75},
    "anonymous": {"Beverages": 1.3, "Snacks": 1.3, "Deli": 1.2, "Produce": 0.7},
}
TRIP_DEPARTMENT_TILT = {
    "QUICK_TRIP": {"Beverages": 1.6, "Snacks": 1.4, "Dairy & Eggs": 1.3, "Bakery": 1.3, "Deli": 1.3,
                   "Household": 0.5, "Pantry": 0.7, "Baby": 0.6, "Pet": 0.6},
    "WEEKLY_SHOP": {},
    "FAMILY_SHOP": {"Meat & Seafood": 1.3, "Baby": 1.6, "Frozen": 1.2, "Snacks": 1.2},
    "BULK_SHOP": {"Pantry": 1.6, "Household": 1.8, "Beverages": 1.3, "Pet": 1.4, "Produce": 0.6,
                  "Deli": 0.5, "Bakery": 0.6},
}
# Cheaper products sell more units: demand falls with the price relative to the chain's median.
PRICE_ELASTICITY = 0.8
# Promotions lift demand until about this share of the products picked in a store are on deal
# (retail: 34-43% of lines), at most MAX_PROMO_LIFT times a product's usual rate; a store whose
# range is mostly on deal already gets no lift.
PROMOTED_PICK_SHARE = 0.44
DEAL_CODES = {"PERCENT": 1, "AMOUNT": 2}   # how a promotion discounts, as a small code on the shelf
MAX_PROMO_LIFT = 8.0
# Share of lines of a promoted product on which the shopper takes the deal (clips the coupon,
# scans the card), by kind.
PROMO_USE = np.array([0.97, 0.80, 0.85, 0.88, 0.70])

# Hour-of-day shapes (relative weights by hour 0..23).
INSTORE_HOURS = np.zeros(24)
INSTORE_HOURS[7:23] = [2.2, 4.2, 6.0, 7.6, 8.1, 8.4, 8.2, 8.0, 7.7, 8.1, 8.9, 7.9, 5.6, 3.7, 2.2, 1.1]
INSTORE_WEEKEND_HOURS = np.zeros(24)
INSTORE_WEEKEND_HOURS[7:23] = [1.4, 3.2, 5.6, 7.8, 8.8, 9.0, 8.8, 8.4, 7.9, 7.6, 7.4, 6.6, 4.8, 3.3, 2.0, 1.0]
DELIVERY_HOURS = np.zeros(24)
DELIVERY_HOURS[6:20] = [0.2, 0.6, 1.4, 2.6, 3.8, 4.5, 4.8, 4.6, 4.8, 5.8, 7.4, 9.0, 9.8, 8.8]

# Tender mix by channel (in-store cash skews to small baskets).
INSTORE_TENDERS = ("CREDIT", "DEBIT", "CASH", "MOBILE_WALLET", "EBT", "GIFT_CARD")
ONLINE_TENDERS = ("CREDIT", "DEBIT", "MOBILE_WALLET", "EBT", "GIFT_CARD")
ONLINE_TENDER_MIX = np.array([0.55, 0.24, 0.16, 0.03, 0.02])


def day_start(business_date: date) -> np.datetime64:
    return np.datetime64(datetime.combine(business_date, time()), "us")


def seconds_to_ts(business_date: date, seconds) -> np.ndarray:
    """Timestamps (microsecond numpy datetimes) at `seconds` after midnight of the date."""
    return day_start(business_date) + (np.asarray(seconds, dtype=np.int64) * 1_000_000).astype("timedelta64[us]")


def sample_seconds(rng: np.random.Generator, n: int, hour_weights: np.ndarray) -> np.ndarray:
    """Seconds after midnight, the hour drawn from the profile, uniform within the hour."""
    hours = rng.choice(24, size=n, p=hour_weights / hour_weights.sum())
    return hours * 3600 + rng.integers(0, 3600, n)


def basket_sizes(rng: np.random.Generator, trip: np.ndarray) -> np.ndarray:
    """Distinct products per basket: 1 + a long-tailed count around the trip type's mean."""
    mean_extra = TRIP_LINES[trip] - 1.0
    p = LINES_DISPERSION / (LINES_DISPERSION + mean_extra)
    return 1 + rng.negative_binomial(LINES_DISPERSION, p)


def line_quantities(rng: np.random.Generator, trip: np.ndarray) -> np.ndarray:
    return 1 + rng.poisson(TRIP_EXTRA_UNITS[trip])


def distinct_picks(rng: np.random.Generator, assortment: "Assortment", basket: np.ndarray, sizes: np.ndarray,
                   store_index: np.ndarray, kind: np.ndarray, trip: np.ndarray,
                   exclude: pl.DataFrame | None = None, spare: float = 0.7) -> pl.DataFrame:
    """`sizes[i]` distinct products for each basket (row `item` of the assortment), in pick order,
    none of the (basket, item) pairs in `exclude`.

    Popular products would be drawn twice in one basket; drawing `spare` x size extra candidates
    and keeping the first distinct ones gives each basket its intended number of products.
    """
    draws = np.ceil(np.asarray(sizes) * (1 + spare)).astype(np.int64) + 3
    item = assortment.sample(rng, np.repeat(store_index, draws), np.repeat(kind, draws), np.repeat(trip, draws))
    drawn_in = np.repeat(basket, draws)
    n_items = assortment.items.height
    pair = drawn_in * n_items + item
    drawn, first = unique_first(pair, (int(np.max(basket, initial=-1)) + 1) * n_items)
    if exclude is not None and exclude.height and len(drawn):   # the excluded pairs looked up among the drawn
        excluded = exclude["basket"].to_numpy() * n_items + exclude["item"].to_numpy()
        at, found = _searched(drawn, excluded)
        allowed = np.ones(len(drawn), dtype=bool)
        allowed[at[found]] = False
        first = first[allowed]
    # the first draw of each product, in draw order: marked, not sorted (0.9M draws: 2 ms against
    # 55-74 ms; 9.3M: 25 ms against 0.58-0.70 s)
    kept = np.zeros(len(item), dtype=bool)
    kept[first] = True
    keep = np.flatnonzero(kept)
    drawn_in, item = drawn_in[keep], item[keep]
    want = np.zeros(int(np.max(basket, initial=-1)) + 1, dtype=np.int64)
    want[basket] = sizes
    within = within_group_rank(drawn_in)
    chosen = within < want[drawn_in]
    return pl.DataFrame({"basket": drawn_in[chosen], "item": item[chosen]})


def ragged_ranges(starts: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ranges [starts[i], starts[i] + counts[i]) laid end to end: for each element, the range it
    belongs to and its position (starts[i], starts[i] + 1, ...)."""
    owner = np.repeat(np.arange(len(counts)), counts)
    return owner, np.arange(len(owner)) - np.repeat(np.cumsum(counts) - counts - starts, counts)


def within_group_rank(group: np.ndarray) -> np.ndarray:
    """0, 1, 2, ... within each run of equal values (rows arrive grouped)."""
    n = len(group)
    if not n:
        return np.zeros(0, dtype=np.int64)
    starts = np.r_[True, group[1:] != group[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return np.arange(n) - first


def local_miles(lat1, lon1, lat2, lon2) -> np.ndarray:
    """Distance in miles on a flat map around the first point (equirectangular): within a metro
    area it is as good as the great circle and several times cheaper; arguments broadcast like
    numpy arrays, and the cosine is taken once per first point. The steps run in place on two
    arrays of the broadcast shape: the point-by-store matrices are large."""
    lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=np.float64) for v in (lat1, lon1, lat2, lon2))
    shape = np.broadcast_shapes(lat1.shape, lon1.shape, lat2.shape, lon2.shape)
    dy = np.subtract(lat2, lat1, out=np.empty(shape))
    dy *= MILES_PER_DEGREE_LAT
    dx = np.subtract(lon2, lon1, out=np.empty(shape))
    dx *= MILES_PER_DEGREE_LAT * np.cos(np.radians(lat1))
    dx *= dx
    dy *= dy
    dx += dy
    return np.sqrt(dx, out=dx)[()]   # a number for numbers


# The nearest stores are looked for among those that can be near: points go by map cells of this
# size (degrees), each with the stores that a bound on their distances lets in.
CELL_DEGREES = 0.2
CELL_MIN_POINTS = 32   # points per cell on average, else all points are measured against all stores


def nearest_stores(lat, lon, store_lat, store_lon, k: int = 3, chunk: int = 256):
    """The k nearest stores (indices into the store arrays) and distances (`local_miles`) for each
    point, nearest first, ties by store index.

    Points go by map cell, measured against the cell's candidate stores only (`_cell_candidates`);
    a point with a tie at the k-th place or a distance that is not a number, and every point when
    there are few stores, is measured against all stores, a few hundred points at a time so the
    point-by-store matrices stay in cache."""
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    store_lat = np.asarray(store_lat, dtype=np.float64)
    store_lon = np.asarray(store_lon, dtype=np.float64)
    n_stores = len(store_lat)
    k = min(k, n_stores)
    idx = np.empty((len(lat), k), dtype=np.int64)
    dist = np.empty((len(lat), k), dtype=np.float64)
    everywhere = np.ones(len(lat), dtype=bool)
    cells = []
    if n_stores > 8 * (k + 1) and np.isfinite(store_lat).all() and np.isfinite(store_lon).all():
        on_map = np.isfinite(lat) & np.isfinite(lon)
        cells = _map_cells(lat, lon, np.flatnonzero(on_map))
        if len(cells) * CELL_MIN_POINTS <= on_map.sum():   # else the cells cost more than they save
            everywhere = ~on_map
        else:
            cells = []
    for rows in cells:
        stores = _cell_candidates(lat, lon, store_lat, store_lon, k, rows)
        if len(stores) <= k:   # none to spare for the tie check
            everywhere[rows] = True
            continue
        for start in range(0, len(rows), 1_024):
            part = rows[start:start + 1_024]
            d = local_miles(lat[part, None], lon[part, None], store_lat[None, stores], store_lon[None, stores])
            near, near_d, tied = _k_smallest(d, k)
            idx[part], dist[part] = stores[near], near_d
            everywhere[part] = tied
    rows = np.flatnonzero(everywhere)
    for start in range(0, len(rows), chunk):
        part = rows[start:start + chunk]
        idx[part], dist[part], tied = _k_smallest(
            local_miles(lat[part, None], lon[part, None], store_lat[None], store_lon[None]), k)
        if tied.any():   # argpartition's own pick among the tied stores
            part = part[tied]
            d = local_miles(lat[part, None], lon[part, None], store_lat[None], store_lon[None])
            pick = np.argpartition(d, k - 1, axis=1)[:, :k]
            idx[part], dist[part] = _by_value(pick, np.take_along_axis(d, pick, axis=1))
    return idx, dist


def _map_cells(lat, lon, points: np.ndarray) -> list[np.ndarray]:
    """The points (indices) by map cell, in cell order."""
    if not len(points):
        return []
    cy = np.floor(lat[points] / CELL_DEGREES).astype(np.int64)
    cx = np.floor(lon[points] / CELL_DEGREES).astype(np.int64)
    cell = (cy - cy.min()) * (int(cx.max() - cx.min()) + 1) + (cx - cx.min())
    by_cell = np.argsort(cell, kind="stable")
    cell = cell[by_cell]
    return np.split(points[by_cell], np.flatnonzero(cell[1:] != cell[:-1]) + 1)


def _cell_candidates(lat, lon, store_lat, store_lon, k: int, rows: np.ndarray) -> np.ndarray:
    """In index order, every store that may be among the k nearest of one of the points of a map
    cell. The k stores nearest the cell's middle bound the k-th nearest distance of every point;
    a store farther than that bound from the points' bounding box is not a candidate."""
    p_lat, p_lon = lat[rows], lon[rows]
    lo_lat, hi_lat, lo_lon, hi_lon = p_lat.min(), p_lat.max(), p_lon.min(), p_lon.max()
    middle = local_miles((lo_lat + hi_lat) / 2, (lo_lon + hi_lon) / 2, store_lat, store_lon)
    some = np.argpartition(middle, k - 1)[:k]
    reach = local_miles(p_lat[:, None], p_lon[:, None], store_lat[some][None, :], store_lon[some][None, :]).max()
    d_lat = np.maximum(np.maximum(lo_lat - store_lat, store_lat - hi_lat), 0.0)
    d_lon = np.maximum(np.maximum(lo_lon - store_lon, store_lon - hi_lon), 0.0) \
        * np.cos(np.radians(max(abs(lo_lat), abs(hi_lat))))
    box_miles = MILES_PER_DEGREE_LAT * np.sqrt(d_lat * d_lat + d_lon * d_lon)
    return np.flatnonzero(box_miles <= reach * (1 + 1e-9) + 1e-9)   # a margin for rounding


def _k_smallest(d: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Columns and values of the k smallest values of each row, smallest first, ties by column,
    and whether the row is tied at the k-th place or holds a value that is not a number (then
    the set of the k smallest is not one); `d` is overwritten. k + 1 row minima find them several
    times faster than a partition of every row."""
    m, n = d.shape
    if k >= n:
        part = np.tile(np.arange(k), (m, 1))
        return *_by_value(part, np.take_along_axis(d, part, axis=1)), np.zeros(m, dtype=bool)
    rows = np.arange(m)
    picks = np.empty((m, k + 1), dtype=np.int64)
    values = np.empty((m, k + 1))
    for j in range(k + 1):
        picks[:, j] = d.argmin(axis=1)      # the first of equal minima, a NaN first of all
        values[:, j] = d[rows, picks[:, j]]
        d[rows, picks[:, j]] = np.inf
    tied = ~np.isfinite(values).all(axis=1) | (values[:, k] == values[:, k - 1])
    return picks[:, :k], values[:, :k], tied


def _by_value(part: np.ndarray, part_d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.lexsort((part, part_d), axis=1)   # nearest first, ties by store index
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_d, order, axis=1)


def weighted_sample_without_replacement(rng: np.random.Generator, weights: np.ndarray, n: int) -> np.ndarray:
    """Indices of n distinct items drawn with probability proportional to weight (exponential race)."""
    weights = np.asarray(weights, dtype=np.float64)
    eligible = np.flatnonzero(weights > 0)
    n = min(n, len(eligible))
    keys = rng.exponential(size=len(eligible)) / weights[eligible]
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    chosen = np.argpartition(keys, n - 1)[:n]
    return np.sort(eligible[chosen])


@dataclass(frozen=True)
class CumulativeOdds:
    """Cumulative odds laid out one unit per group (the group's number + the share of the group up
    to and including each entry, ascending), with a guide table: `guide[b]` counts the values up to
    `b / per_unit`. `search_right` answers exactly as `np.searchsorted(values, targets, "right")`,
    but starts each target at its bucket's count and steps forward over the few values between: no
    sort of random targets, no binary search. A medium day's draws of 0.3M and 0.6M lines
    (`Assortment.sample`): 0.02 and 0.04-0.06 s, against 0.05-0.06 and 0.11-0.13 s with the
    targets sorted for a search (`search_sorted`)."""

    values: np.ndarray   # the odds, then +inf, so a step never runs past the end
    guide: np.ndarray
    per_unit: int        # a power of two: `target * per_unit` is exact, so its bucket is too

    @classmethod
    def of(cls, values: np.ndarray, units: int) -> "CumulativeOdds":
        """`values` ascending in [0, units]; about one value per bucket (per_unit is the power of two
        at or above the values per unit)."""
        per_unit = 1 << int(np.ceil(np.log2(max(len(values) / max(units, 1), 1.0))))
        # a value v is at most b / per_unit exactly when ceil(v * per_unit) <= b
        counts = np.bincount(np.ceil(values * per_unit).astype(np.int64), minlength=units * per_unit + 1)
        guide = np.cumsum(counts, dtype=np.int64 if len(values) >= 2 ** 31 else np.int32)
        return cls(np.append(values, np.inf), guide, per_unit)

    def search_right(self, targets: np.ndarray) -> np.ndarray:
        """For each target in [0, units): how many values are at most it."""
        at = self.guide[(targets * self.per_unit).astype(np.int64)].astype(np.int64)
        step = np.flatnonzero(self.values[at] <= targets)
        while len(step):
            at[step] += 1
            step = step[self.values[at[step]] <= targets[step]]
        return at


def _tilt_matrix(tilts: dict[str, dict[str, float]], rows: tuple[str, ...], departments: list[str]) -> np.ndarray:
    return np.array([[tilts.get(r, {}).get(d, 1.0) for d in departments] for r in rows])


@dataclass(frozen=True)
class Assortment:
    """What each open store sells today, with the odds of every product landing in a basket.

    `items` holds one row per live store product (store_product_id, store_id, product_id,
    list_price, department, subcategory (as categories), taxable, promotion_id, store_index,
    tax_rate), sorted by shelf group; `shelf` holds the numeric columns the line pricing and the
    close need as arrays (promotion_id -1 and deal 0 where no deal runs).
    """

    stores: pl.DataFrame
    items: pl.DataFrame
    departments: list[str]
    item_cum: CumulativeOdds    # per item: its group key + cumulative weight share inside the group
    group_first: np.ndarray     # per group key (store x shelf group): first and last item row
    group_last: np.ndarray
    group_cum: CumulativeOdds   # per (store, kind, trip) row x shelf group: row + cumulative odds share
    sorted_ids: np.ndarray      # store_product_id sorted, and the item row of each
    sorted_rows: np.ndarray
    shelf: dict[str, np.ndarray]
    promo_codes: pl.DataFrame   # promotion_id, promo_code of the day's running promotions

    def promotion_columns(self, item: np.ndarray, on_promotion: np.ndarray) -> tuple[pl.Series, pl.Series]:
        """promotion_id and promo_code of each line, null where the line took no deal."""
        promotion = np.where(on_promotion, self.shelf["promotion_id"][item], -1)
        ids = pl.Series("promotion_id", promotion).replace(-1, None)
        row = row_of(self.promo_codes["promotion_id"].to_numpy(), promotion)   # the codes are by id, unique
        at = pl.select(pl.when(pl.Series(row >= 0)).then(pl.Series(row))).to_series()   # null: no code
        codes = self.promo_codes["promo_code"].gather(at)
        return ids, codes

    @property
    def store_product_ids(self) -> np.ndarray:
        return self.items["store_product_id"].to_numpy()

    @property
    def stocked_store_indexes(self) -> np.ndarray:
        """Stores that sell at least one product today (the others get no shoppers)."""
        return np.flatnonzero(np.bincount(self.items["store_index"].to_numpy(), minlength=self.stores.height))

    def sample(self, rng: np.random.Generator, store_index, kind, trip) -> np.ndarray:
        """One product (row index into `items`) per requested line."""
        store_index = np.asarray(store_index, dtype=np.int64)
        n_groups = len(self.departments) * len(TIERS)
        row = (store_index * len(KINDS) + np.asarray(kind)) * len(TRIP_TYPES) + np.asarray(trip)
        target = rng.random(len(row))
        target *= 1 - 1e-12
        target += row
        first = np.multiply(row, n_groups, out=row)             # the row's first group
        group_key = np.clip(self.group_cum.search_right(target), first, first + (n_groups - 1))
        group_key -= first
        group_key += store_index * n_groups
        target = rng.random(len(row), out=target)
        target *= 1 - 1e-12
        target += group_key
        item = self.item_cum.search_right(target)
        return np.clip(item, self.group_first[group_key], self.group_last[group_key], out=item)

    def positions(self, store_product_ids) -> tuple[np.ndarray, np.ndarray]:
        """Row index into `items` of each id, and whether the store sells it today."""
        ids = np.asarray(store_product_ids, dtype=np.int64)
        if not len(self.sorted_ids):
            return np.zeros(len(ids), dtype=np.int64), np.zeros(len(ids), dtype=bool)
        if np.array_equal(ids, self.sorted_ids):   # the day's stock is exactly what is sold today
            return self.sorted_rows, np.ones(len(ids), dtype=bool)
        pos = np.minimum(search_sorted(self.sorted_ids, ids), len(self.sorted_ids) - 1)
        return self.sorted_rows[pos], self.sorted_ids[pos] == ids


def strictly_increasing(values: np.ndarray) -> bool:
    """Whether the values are sorted and unique (ids in id order)."""
    return len(values) < 2 or bool((values[1:] > values[:-1]).all())


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """`np.unique` of integers (ascending, distinct) by a sort: numpy's own hashes them, which took
    about a second per million values here (8.6 s for xl's 8M store product ids)."""
    if strictly_increasing(values):
        return values
    ordered = np.sort(values)
    return ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered


def unique_first(values: np.ndarray, bound: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(values, return_index=True)` of non-negative int64 values (below `bound` when
    given): the distinct values and where each first occurs, by `sorted_with_order` (a sort of the
    values packed with their positions) instead of numpy's stable argsort. `values` is sorted in place."""
    order = sorted_with_order(values, bound)
    starts = np.r_[True, values[1:] != values[:-1]] if len(values) else np.zeros(0, dtype=bool)
    return values[starts], order[starts]


def search_sorted(sorted_values: np.ndarray, targets, side: str = "left") -> np.ndarray:
    """np.searchsorted of many targets, a block of them at a time in ascending order: the lookups
    then stay in cache, several times faster on large arrays. Targets in a few ascending runs (a
    day's price ticks, one after another) are searched run by run; targets in random order are
    sorted first. Each target's answer depends on its value alone, so any order that is nearly
    ascending does."""
    targets = np.asarray(targets)
    if len(targets) < 2:
        return np.searchsorted(sorted_values, targets, side=side).astype(np.int64, copy=False)
    starts = np.flatnonzero(targets[1:] < targets[:-1]) + 1  # where an ascending run starts
    if len(starts) * SEARCH_BLOCK <= len(targets):
        out = np.empty(len(targets), dtype=np.int64)
        for start, stop in zip([0, *starts.tolist()], [*starts.tolist(), len(targets)]):
            out[start:stop] = _search_by_block(sorted_values, targets[start:stop], side)
        return out
    order = ascending_order(targets)
    out = np.empty(len(targets), dtype=np.int64)
    out[order] = _search_by_block(sorted_values, targets[order], side)
    return out


SEARCH_BLOCK = 4_096


def _search_by_block(sorted_values: np.ndarray, targets: np.ndarray, side: str) -> np.ndarray:
    """np.searchsorted of nearly ascending targets, a block at a time inside the stretch of values
    between the answers of the block's smallest and largest target (a NaN's answer is the
    largest): each search then runs over a few cached values rather than the whole array."""
    starts = np.arange(0, len(targets), SEARCH_BLOCK)
    if len(starts) < 2:
        return np.searchsorted(sorted_values, targets, side=side).astype(np.int64, copy=False)
    lo = np.searchsorted(sorted_values, np.fmin.reduceat(targets, starts), side=side).tolist()
    hi = np.searchsorted(sorted_values, np.maximum.reduceat(targets, starts), side=side).tolist()
    out = np.empty(len(targets), dtype=np.int64)
    for start, first, last in zip(starts.tolist(), lo, hi):
        block = slice(start, start + SEARCH_BLOCK)
        out[block] = np.searchsorted(sorted_values[first:last], targets[block], side=side)
        out[block] += first
    return out


def ascending_order(values: np.ndarray) -> np.ndarray:
    """A permutation that puts int64 or non-negative float64 values in ascending order, but for
    values that differ only in their lowest bits. Their bits with the row number in place of the
    lowest ones sort as plain integers, several times faster than an argsort."""
    values = np.asarray(values)
    if values.dtype == np.float64 and not (values < 0).any():
        bits = values.view(np.int64)             # the bits of non-negative floats order like them
    elif values.dtype == np.int64:
        bits = values
    else:
        return np.argsort(values)
    low = max(len(values) - 1, 1).bit_length()
    packed = (bits >> low << low) | np.arange(len(values))
    packed.sort()
    packed &= (1 << low) - 1
    return packed


# From this many ids to look up, a table of the sorted ids by id (`IdRows`) costs less than
# searching them: an xl close rebuilt from the lake found the rows of 4M price changes among 8M
# store products in 0.08 s of samples against 0.74 s.
ROW_TABLE_FROM = 1 << 20


def row_of(sorted_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Row of each id in the sorted, unique ids; -1 where it is missing. Integer ids go through a
    table by id (`IdRows`), cheaper than a search per id, when the sorted ids span a small range
    beside the ids looked up (the dimensions' keys) or there are a million ids or more."""
    if not len(sorted_ids) or not len(ids):
        return np.full(len(ids), -1, dtype=np.int64)
    if ids.dtype.kind in "iu" and (len(ids) >= ROW_TABLE_FROM or sorted_ids[-1] - sorted_ids[0] < 4 * len(ids)):
        by_id = IdRows.of(sorted_ids)
        if by_id is not None:
            return by_id.rows(ids).astype(np.int64, copy=False)
    row, found = _searched(sorted_ids, ids)
    return np.where(found, row, -1)


class IdRows:
    """The row of each of a set of unique integer ids, looked up in a table with a slot per id
    instead of searched: two gathers per id against a binary search over millions. The ids' range
    is cut into blocks (at most a quarter as many as there are ids, or a million when that is
    more), and only the blocks that hold an id get slots, so ids clustered in ranges take a table
    not much larger than their count: xl's 8M store product ids (a range of a million ids per
    store, 10^9 in all) take blocks of 512 ids and about 10.5M slots (42 MB)."""

    def __init__(self, low: int, bits: int, block_start: np.ndarray, table: np.ndarray):
        self.low, self.bits, self.block_start, self.table = low, bits, block_start, table

    @classmethod
    def of(cls, ids: np.ndarray, slack: int = 4) -> "IdRows | None":
        """The table of `ids` (integers, each once), or None when an id repeats or the blocks
        holding them have more than `slack` slots per id (and over a quarter of a million). Each
        day-sized array is fresh memory (its page faults cost more than the arithmetic), so the
        build keeps to 32-bit offsets where they fit and works in place."""
        n = len(ids)
        if ids.dtype.kind not in "iu" or not n:
            return None
        low, high = int(ids.min()), int(ids.max())
        bits = max(6, ((high - low) // max(n // 4, 1 << 20)).bit_length())  # blocks: n / 4, a million at least
        limit = slack * n + (1 << 18)
        narrow = np.int32 if max(high - low, limit) < 2 ** 30 else np.int64  # offsets and slots
        offset = np.subtract(ids, low, out=np.empty(n, dtype=narrow), casting="unsafe")
        held = np.zeros(((high - low) >> bits) + 2, dtype=bool)  # the last block: ids out of range
        held[offset >> bits] = True
        blocks = int(np.count_nonzero(held))
        if blocks << bits > limit:
            return None
        block_start = np.cumsum(held, dtype=narrow) - 1
        block_start[~held] = blocks  # every empty block shares one block of empty slots past the others
        block_start <<= bits
        slots = cls._slots(offset, bits, block_start)
        table = np.full((blocks + 1) << bits, -1, dtype=narrow)
        table[slots] = np.arange(n, dtype=narrow)
        # ids in increasing order are each once; else as many slots hold a row as there are distinct ids
        if not strictly_increasing(ids) and np.count_nonzero(table >= 0) != n:
            return None
        return cls(low, bits, block_start, table)

    @staticmethod
    def _slots(offset: np.ndarray, bits: int, block_start: np.ndarray) -> np.ndarray:
        """The slot of each offset (id - low, of the block starts' type), computed in place."""
        block = offset >> bits
        np.take(block_start, block, out=block, mode="clip")  # every block is in range: no check, no buffer
        offset &= (1 << bits) - 1
        offset += block
        return offset

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """The row of each id, -1 where it is not among the table's ids."""
        ids = np.asarray(ids)
        if not len(ids):
            return np.zeros(0, dtype=self.table.dtype)
        outside = (len(self.block_start) - 1) << self.bits  # the first id of the last block, past every id
        if int(ids.min()) >= self.low and int(ids.max()) - self.low < outside:
            offset = np.subtract(ids, self.low, out=np.empty(len(ids), dtype=self.block_start.dtype), casting="unsafe")
        else:
            wide = np.subtract(ids, self.low, dtype=np.int64)
            wide[(wide < 0) | (wide >= outside)] = outside
            offset = wide.astype(self.block_start.dtype)
        return self.table[self._slots(offset, self.bits, self.block_start)]

    def rows_if_present(self, ids: np.ndarray) -> np.ndarray | None:
        """`rows` when every id is among the table's, else None."""
        rows = self.rows(ids)
        return None if len(rows) and rows.min() < 0 else rows


def _searched(sorted_ids: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each id would sit in the sorted ids (the last row past them) and whether it is there."""
    row = search_sorted(sorted_ids, ids)
    np.minimum(row, len(sorted_ids) - 1, out=row)
    return row, sorted_ids[row] == ids


# Up to this many places where a key is below the one before it, numpy's stable sort (a merge
# sort that finds the ascending runs and merges them) orders the keys faster than the packed sort:
# a medium day's 880k price entries (the opening, then 24 ticks each in id order) 0.02 s against
# 0.05-0.09 s; 4M keys in 16 runs 0.11 s against 0.39 s, in 64 runs 0.16 s against 0.33 s.
FEW_RUNS = 64


def packed_order(key: np.ndarray, bound: int | None = None) -> np.ndarray | None:
    """Sort the int64 `key` in place and return the position each value came from, ties in their
    original order (np.argsort(kind="stable")), by one plain sort of each value packed with its
    position in its low bits: several times cheaper than an argsort. Keys in a few ascending runs
    (`FEW_RUNS`) are merged by numpy's stable sort instead. `bound`, when given, is known to exceed
    every value (all non-negative), which spares a pass for the range. None, with `key` untouched,
    when the values are in many runs and span too wide a range to pack."""
    n = len(key)
    descents = int(np.count_nonzero(key[1:] < key[:-1])) if n > 1 else 0
    if descents < FEW_RUNS:
        if not descents:
            return np.arange(n, dtype=np.int64)
        order = np.argsort(key, kind="stable")
        key[:] = key[order]
        return order
    bits = n.bit_length()
    low = 0 if bound is not None or not n else int(key.min())
    span = bound if bound is not None else (int(key.max()) - low + 1 if n else 1)
    if (span - 1).bit_length() + bits > 62:
        return None
    order = np.arange(n, dtype=np.int64)
    if low:
        key -= low
    key <<= bits
    key |= order
    key.sort()
    np.bitwise_and(key, (1 << bits) - 1, out=order)
    key >>= bits
    if low:
        key += low
    return order


def sorted_with_order(key: np.ndarray, bound: int | None = None) -> np.ndarray:
    """`packed_order` (sort `key` in place, return where each value came from, ties in their
    original order), or a stable argsort when the values cannot be packed."""
    order = packed_order(key, bound)
    if order is None:
        order = np.argsort(key, kind="stable")
        key.sort()  # equal keys are equal values: sorting in place is gathering by `order`
    return order


def stable_order(key: np.ndarray, n_keys: int) -> np.ndarray:
    """np.argsort(key, kind="stable") of non-negative integer keys below n_keys, by 16-bit digits:
    numpy radix-sorts 16-bit keys, several times faster than its merge sort of wider ones."""
    order = None
    for shift in range(0, max(int(n_keys) - 1, 1).bit_length(), 16):
        digit = ((key if order is None else key[order]) >> shift).astype(np.uint16)   # keeps the low 16 bits
        order = np.argsort(digit, kind="stable") if order is None else order[np.argsort(digit, kind="stable")]
    return order


def price_factor(list_price: pl.Series) -> np.ndarray:
    """(list price / median list price) ** -PRICE_ELASTICITY of each row. List prices are whole
    cents: when each price is the one value of its cent amount, the median is read from the count
    of each amount (when its two middle prices are equal) and the power is taken once per amount
    and looked up (millions of powers cost a fifth of a second)."""
    prices = list_price.to_numpy()
    if len(prices) and not list_price.null_count():
        cents = np.round(prices * 100)
        top = cents.max()
        if 0 <= cents.min() and top < 4 * len(prices):   # no NaN, a table smaller than the rows
            cents = cents.astype(np.int64)
            table = np.zeros(int(top) + 1)
            table[cents] = prices
            if (table[cents] == prices).all():
                below = np.cumsum(np.bincount(cents, minlength=len(table)))
                middle = np.searchsorted(below, [(len(prices) - 1) // 2, len(prices) // 2], side="right")
                median = float(table[middle[0]]) if middle[0] == middle[1] else list_price.median()
                return ((pl.Series(table) / median) ** -PRICE_ELASTICITY).to_numpy()[cents]
    return ((list_price / list_price.median()) ** -PRICE_ELASTICITY).to_numpy()


def gather_rows(frame: pl.DataFrame, rows: np.ndarray) -> pl.DataFrame:
    """frame[rows]; numeric columns without nulls are gathered by numpy, several times cheaper than
    a frame gather of millions of rows."""
    return pl.DataFrame([
        pl.Series(column.name, column.to_numpy()[rows], dtype=column.dtype)
        if column.dtype.is_numeric() and not column.null_count() else column.gather(rows)
        for column in frame.iter_columns()])


def best_promotions(products: pl.DataFrame, promotions: pl.DataFrame) -> pl.DataFrame:
    """For each product, the running promotion worth the most at its base price, if any."""
    promo_cols = ["promotion_id", "discount_kind", "discount_value"]
    by_product = promotions.filter(pl.col("scope") == "PRODUCT").select("product_id", *promo_cols)
    by_category = promotions.filter(pl.col("scope") == "CATEGORY").select("department", "category", *promo_cols)
    candidates = pl.concat([
        products.select("product_id", "base_price").join(by_product, on="product_id"),
        products.select("product_id", "base_price", "department", "category")
        .join(by_category, on=["department", "category"]).drop("department", "category"),
    ])
    value = pl.when(pl.col("discount_kind") == "PERCENT").then(pl.col("base_price") * pl.col("discount_value")) \
        .otherwise(pl.min_horizontal(pl.col("discount_value"), pl.col("base_price") * 0.5))
    return (candidates.with_columns(value=value)
            .sort(["product_id", "value", "promotion_id"], descending=[False, True, False])
            .group_by("product_id", maintain_order=True).first()
            .select("product_id", "promotion_id", "discount_value",
                    deal=pl.col("discount_kind").replace_strict(DEAL_CODES, return_dtype=pl.Int8)))


# The last product catalog built, with the frames it was built from: the regions of a day share
# the day's products and promotions, so their assortments build it once.
_CATALOG: list[tuple[pl.DataFrame, pl.DataFrame, list[str], pl.DataFrame]] = []
_CATALOG_LOCK = threading.Lock()


def product_catalog(products: pl.DataFrame, promotions: pl.DataFrame) -> tuple[list[str], pl.DataFrame]:
    """The departments, and one row per product with what an assortment needs of it (its shelf
    group, its best running promotion), found for each store product by index (no joins of
    millions of rows); the names travel as categories: as strings, the names of 8M store products
    cost gigabytes at xl."""
    with _CATALOG_LOCK:
        if _CATALOG and _CATALOG[0][0] is products and _CATALOG[0][1] is promotions:
            return _CATALOG[0][2], _CATALOG[0][3]
    departments = sorted(products["department"].unique().to_list())
    dept_index = {d: i for i, d in enumerate(departments)}
    catalog = products.select(
        "product_id", "popularity", "taxable", "perishable",
        *(pl.col(name).cast(pl.Categorical) for name in ("department", "subcategory")),
        dept_index=pl.col("department").replace_strict(dept_index, return_dtype=pl.Int64),
        tier_index=pl.col("brand_tier").replace_strict({t: i for i, t in enumerate(TIERS)}, return_dtype=pl.Int64),
    ).join(best_promotions(products, promotions), on="product_id", how="left").sort("product_id")
    with _CATALOG_LOCK:
        _CATALOG[:] = [(products, promotions, departments, catalog)]
    return departments, catalog


def build_assortment(stores: pl.DataFrame, store_products: pl.DataFrame, products: pl.DataFrame,
                     promotions: pl.DataFrame) -> Assortment:
    """The day's assortment of the open stores, with promotion lift and shelf-group odds."""
    stores = stores.sort("store_id").with_row_index("store_index").with_columns(pl.col("store_index").cast(pl.Int64))
    departments, catalog = product_catalog(products, promotions)
    n_stores, n_groups = stores.height, len(departments) * len(TIERS)
    sold = store_products.select("store_product_id", "store_id", "product_id", "list_price")
    product = row_of(catalog["product_id"].to_numpy(), sold["product_id"].to_numpy())
    store = row_of(stores["store_id"].to_numpy(), sold["store_id"].to_numpy())
    listed = (product >= 0) & (store >= 0)
    if not listed.all():
        sold, product, store = sold.filter(pl.Series(listed)), product[listed], store[listed]
    weight = catalog["popularity"].to_numpy()[product] * price_factor(sold["list_price"])
    # Float sums by numpy in row order, so the odds are bit-identical whatever the thread count.
    promoted = catalog["promotion_id"].is_not_null().to_numpy()[product]
    on_deal = (np.bincount(store, weights=np.where(promoted, weight, 0.0), minlength=n_stores)
               / np.maximum(np.bincount(store, weights=weight, minlength=n_stores), 1e-300))
    with np.errstate(divide="ignore"):
        lift = np.clip(PROMOTED_PICK_SHARE * (1 - on_deal) / (on_deal * (1 - PROMOTED_PICK_SHARE)), 1.0, MAX_PROMO_LIFT)
    weight = np.where(promoted, weight * lift[store], weight)
    # By store, shelf group and id: a stable sort by (store, group) of rows in id order.
    by_id = sold["store_product_id"].to_numpy()
    key = store * n_groups + (catalog["dept_index"] * len(TIERS) + catalog["tier_index"]).to_numpy()[product]
    in_id_order = strictly_increasing(by_id)
    if in_id_order:
        shelf_order = stable_order(key, n_stores * n_groups)
    else:
        by_id_order = np.argsort(by_id, kind="stable")
        shelf_order = by_id_order[stable_order(key[by_id_order], n_stores * n_groups)]
    counts = np.bincount(key, minlength=n_stores * n_groups)
    key = np.repeat(np.arange(n_stores * n_groups), counts)
    store = np.repeat(np.arange(n_stores), counts.reshape(n_stores, n_groups).sum(axis=1))
    weight, product = weight[shelf_order], product[shelf_order]
    # Each store's grocery rate and general rate side by side: a taxable item takes the second.
    rates = np.stack([stores["grocery_tax_rate"].to_numpy(), stores["tax_rate"].to_numpy()], axis=1).ravel()
    tax_rate = rates[store * 2 + catalog["taxable"].to_numpy()[product]]
    items = pl.concat([
        gather_rows(sold, shelf_order),
        catalog.select("department", "subcategory", "taxable", "promotion_id")[product],
        pl.DataFrame({"store_index": store, "tax_rate": tax_rate}),
    ], how="horizontal")

    # Items: group key + cumulative weight share inside the (store, group), so one searchsorted finds them.
    n_keys = n_stores * n_groups
    group_first = np.cumsum(counts) - counts
    group_last = np.maximum(group_first + counts - 1, 0)
    within = np.cumsum(weight)
    stocked = counts > 0
    within -= np.repeat(within[group_first[stocked]] - weight[group_first[stocked]], counts[stocked])
    group_total = np.zeros(n_keys)
    group_total[stocked] = within[group_last[stocked]]
    within /= np.where(group_total > 0, group_total, 1.0)[key]
    item_cum = np.add(within, key, out=within)

    # Groups: odds per (store, kind, trip) = range mass x segment and trip tilts x tier preference.
    mass = group_total.reshape(n_stores, len(departments), len(TIERS))
    kind_tilt = _tilt_matrix(KIND_DEPARTMENT_TILT, KINDS, departments)           # K x D
    trip_tilt = _tilt_matrix(TRIP_DEPARTMENT_TILT, TRIP_TYPES, departments)      # T x D
    odds = (mass[:, None, None, :, :]
            * kind_tilt[None, :, None, :, None] * trip_tilt[None, None, :, :, None]
            * TIER_PREFERENCE[None, :, None, None, :])
    odds = odds.reshape(n_stores * len(KINDS) * len(TRIP_TYPES), n_groups)
    running = np.cumsum(odds, axis=1)
    totals = running[:, -1:]  # the same summation as the running share, so the last group ends at 1.0
    group_cum = (np.arange(odds.shape[0])[:, None] + running / np.where(totals > 0, totals, 1.0)).ravel()
    ids = items["store_product_id"].to_numpy()
    if in_id_order:   # store products come in id order: invert the sort
        sorted_ids, sorted_rows = by_id, np.empty(len(by_id), dtype=np.int64)
        sorted_rows[shelf_order] = np.arange(len(by_id))
    else:
        sorted_rows = np.argsort(ids, kind="stable")
        sorted_ids = ids[sorted_rows]
    shelf = {   # gathered from the catalog's columns, a few thousand values each
        "store_product_id": ids, "product_id": items["product_id"].to_numpy(),
        "promotion_id": catalog["promotion_id"].fill_null(-1).to_numpy()[product],
        "deal": catalog["deal"].fill_null(0).to_numpy()[product],
        "deal_value": catalog["discount_value"].fill_null(0.0).to_numpy()[product],
        "tax_rate": tax_rate,
        "department_index": catalog["dept_index"].to_numpy()[product], "perishable": catalog["perishable"].to_numpy()[product],
    }
    return Assortment(
        stores, items, departments, CumulativeOdds.of(item_cum, n_keys), group_first, group_last,
        CumulativeOdds.of(group_cum, odds.shape[0]), sorted_ids, sorted_rows, shelf,
        promotions.select("promotion_id", "promo_code").unique("promotion_id").sort("promotion_id"))


@dataclass(frozen=True)
class PricedLines:
    unit_cents: np.ndarray
    discount_cents: np.ndarray
    line_cents: np.ndarray
    on_promotion: np.ndarray


def price_lines(unit_price, quantity, deal, deal_value, takes_deal) -> PricedLines:
    """Line money in cents: line = quantity x unit price - promotion discount on those units.

    `deal` is 0 (none), 1 (percent off: the share of the unit price) or 2 (amount off: at most half
    of the unit price, so a promoted price never reaches zero).
    """
    unit = np.round(np.asarray(unit_price, dtype=np.float64) * 100).astype(np.int64)
    qty = np.asarray(quantity, dtype=np.int64)
    deal = np.asarray(deal)
    value = np.nan_to_num(np.asarray(deal_value, dtype=np.float64))
    percent_off = np.round(unit * value).astype(np.int64)
    amount_off = np.minimum(np.round(value * 100).astype(np.int64), unit // 2)
    per_unit = np.where(deal == DEAL_CODES["PERCENT"], percent_off, np.where(deal == DEAL_CODES["AMOUNT"], amount_off, 0))
    on_promo = np.asarray(takes_deal, dtype=bool) & (per_unit > 0) & (qty > 0)
    discount = np.where(on_promo, per_unit * qty, 0)
    return PricedLines(unit, discount, qty * unit - discount, on_promo)


def tax_cents(line_cents, tax_rate, basket) -> np.ndarray:
    """Tax per basket, rounded once at the basket level (baskets numbered 0..n-1)."""
    basket = np.asarray(basket, dtype=np.int64)
    n = int(basket.max()) + 1 if len(basket) else 0
    raw = np.bincount(basket, weights=np.asarray(line_cents, dtype=np.float64) * np.asarray(tax_rate), minlength=n)
    return np.round(raw).astype(np.int64)


def labels(names: tuple[str, ...], codes) -> pl.Series:
    """The names at the given codes as a string column; much cheaper than converting a numpy array
    of strings."""
    return pl.Series(names, dtype=pl.String).gather(np.asarray(codes, dtype=np.int64))


def cents(values) -> pl.Series:
    return pl.Series(np.asarray(values, dtype=np.int64) / 100.0, dtype=pl.Float64)
