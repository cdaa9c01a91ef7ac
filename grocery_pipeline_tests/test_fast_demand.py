"""The demand side's fast paths give the answers of the plain computations they replace: the k
nearest stores, the stable sort by small keys, ids found by table, the assortment built by
index from store products in any order, and its odds searched through a guide table."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.chain import Dimensions
from grocery_pipeline.simulation.context import Day

START = date(2025, 1, 1)


@pytest.fixture(scope="module")
def world(tiny_settings, dictionaries):
    return Dimensions().grow(Day(tiny_settings, dictionaries, START))


def _nearest_by_sorting(lat, lon, store_lat, store_lon, k):
    d = shopping.local_miles(lat[:, None], lon[:, None], store_lat[None, :], store_lon[None, :])
    order = np.lexsort((np.broadcast_to(np.arange(len(store_lat)), d.shape), d), axis=1)[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("k", [1, 2, 3, 5])
def test_nearest_stores_are_the_k_smallest_distances_nearest_first_ties_by_store(k):
    rng = np.random.default_rng(3)
    store_lat, store_lon = rng.uniform(30, 45, 300), rng.uniform(-120, -75, 300)
    store_lat[20:23], store_lon[20:23] = store_lat[5], store_lon[5]     # three stores on one spot
    lat, lon = rng.uniform(30, 45, 3_000), rng.uniform(-120, -75, 3_000)
    lat[:40], lon[:40] = store_lat[5], store_lon[5]                      # shoppers living on it
    idx, dist = shopping.nearest_stores(lat, lon, store_lat, store_lon, k=k)
    want_idx, want_dist = _nearest_by_sorting(lat, lon, store_lat, store_lon, k)
    assert np.array_equal(dist, want_dist)
    # a tie at the k-th place (the four stores on one spot) may pick any of the tied stores
    tie = want_dist[:, -1] == _nearest_by_sorting(lat, lon, store_lat, store_lon, k + 1)[1][:, -1]
    assert tie[:40].all() == (k < 4) and (~tie).sum() > 2_500
    assert np.array_equal(idx[~tie], want_idx[~tie])
    d = shopping.local_miles(lat[:, None], lon[:, None], store_lat[None, :], store_lon[None, :])
    assert np.array_equal(np.take_along_axis(d, idx, axis=1), dist)
    assert all(len(set(row)) == k for row in idx.tolist())


def test_nearest_stores_with_few_stores_missing_coordinates_and_no_points():
    store_lat, store_lon = np.array([40.0, 41.0]), np.array([-75.0, -74.0])
    lat, lon = np.array([40.1, np.nan, 41.0]), np.array([-75.0, -74.0, np.inf])
    idx, dist = shopping.nearest_stores(lat, lon, store_lat, store_lon, k=3)
    assert idx.shape == (3, 2) and idx[0].tolist() == [0, 1]
    assert np.isnan(dist[1]).all() and not np.isfinite(dist[2]).any()
    idx, dist = shopping.nearest_stores(lat[:0], lon[:0], store_lat, store_lon)
    assert idx.shape == (0, 2) and dist.shape == (0, 2)


@pytest.mark.parametrize("n_keys", [1, 7, 65_536, 65_537, 3_000_000])
def test_stable_order_is_numpys_stable_argsort(n_keys):
    key = np.random.default_rng(n_keys).integers(0, n_keys, 50_000)
    assert np.array_equal(shopping.stable_order(key, n_keys), np.argsort(key, kind="stable"))


def test_row_of_finds_small_and_large_ids_and_marks_missing_ones():
    ids = np.array([3, 8, -1, 5, 100, 101, 7, 10**12])
    assert shopping.row_of(np.array([3, 7, 8, 100]), ids).tolist() == [0, 2, -1, -1, 3, -1, 1, -1]
    assert shopping.row_of(np.array([7, 10**12]), ids).tolist() == [-1, -1, -1, -1, -1, -1, 0, 1]
    assert shopping.row_of(np.zeros(0, dtype=np.int64), ids).tolist() == [-1] * len(ids)


@pytest.mark.parametrize("table_from", [shopping.ROW_TABLE_FROM, 1])
def test_row_of_takes_ids_that_are_not_integers_by_search(monkeypatch, table_from):
    # a float NaN (a null id) is missing, also where the table by id would serve integer ids
    monkeypatch.setattr(shopping, "ROW_TABLE_FROM", table_from)
    ids = np.array([3.0, np.nan, 8.0, 4.0])
    assert shopping.row_of(np.array([3, 7, 8]), ids).tolist() == [0, -1, 2, -1]


@pytest.mark.parametrize("table_from", [shopping.ROW_TABLE_FROM, 1])
def test_row_of_many_store_product_ids_by_search_or_by_table_gives_the_same_rows(monkeypatch, table_from):
    monkeypatch.setattr(shopping, "ROW_TABLE_FROM", table_from)
    rng = np.random.default_rng(5)
    sorted_ids = np.sort(np.concatenate([s * 10 ** 6 + np.sort(rng.choice(900, 700, replace=False)) + 1
                                         for s in range(1, 60)]))
    ids = np.r_[rng.choice(sorted_ids, 3_000), sorted_ids + 1, 0, 10 ** 12, -3]
    expected = np.searchsorted(sorted_ids, ids)
    expected = np.where(sorted_ids[np.minimum(expected, len(sorted_ids) - 1)] == ids, expected, -1)
    assert shopping.row_of(sorted_ids, ids).tolist() == expected.tolist()


def test_assortment_of_shuffled_store_products_with_unknown_rows_is_the_sorted_ones(world):
    args = (world.stores, world.store_products, world.products, world.promotions)
    plain = shopping.build_assortment(*args)
    stray = world.store_products.head(2).with_columns(
        product_id=pl.Series([-5, world.store_products["product_id"][0]]),
        store_id=pl.Series([world.store_products["store_id"][0], 10**9]),
        store_product_id=pl.Series([10**12, 10**12 + 1]))
    shuffled = pl.concat([world.store_products, stray]).sample(fraction=1.0, shuffle=True, seed=4)
    other = shopping.build_assortment(world.stores, shuffled, world.products, world.promotions)
    assert plain.items.height == world.store_products.height
    assert other.items.equals(plain.items)
    assert np.array_equal(other.sorted_ids, plain.sorted_ids) and np.array_equal(other.sorted_rows, plain.sorted_rows)
    # the shelf order: by store, shelf group (department x brand tier) and id
    items = plain.items
    tier = items.join(world.products.select("product_id", "brand_tier"), on="product_id", how="left",
                      maintain_order="left")["brand_tier"].replace_strict(
        {t: i for i, t in enumerate(shopping.TIERS)}, return_dtype=pl.Int64).to_numpy()
    group = plain.shelf["department_index"] * len(shopping.TIERS) + tier
    order = np.lexsort((items["store_product_id"].to_numpy(), group, items["store_index"].to_numpy()))
    assert np.array_equal(order, np.arange(items.height))


@pytest.mark.parametrize("k", [1, 3])
def test_nearest_stores_by_map_cell_match_the_measure_against_every_store(k):
    rng = np.random.default_rng(11)
    metros = np.array([[40.7, -74.0], [41.9, -87.6], [33.7, -84.4]])
    store_metro, point_metro = rng.integers(0, 3, 200), rng.integers(0, 3, 20_000)
    store_lat = metros[store_metro, 0] + rng.normal(0, 0.3, 200)
    store_lon = metros[store_metro, 1] + rng.normal(0, 0.3, 200)
    lat = metros[point_metro, 0] + rng.normal(0, 0.4, 20_000)
    lon = metros[point_metro, 1] + rng.normal(0, 0.4, 20_000)
    lat[:30], lon[:30] = store_lat[:30], store_lon[:30]    # shoppers at a store's door
    lat[30], lon[31] = np.nan, np.inf
    assert len(shopping._map_cells(lat, lon, np.arange(32, 20_000))) * shopping.CELL_MIN_POINTS < 20_000
    idx, dist = shopping.nearest_stores(lat, lon, store_lat, store_lon, k=k)
    want_idx, want_dist = _nearest_by_sorting(lat, lon, store_lat, store_lon, k)
    on_map = np.r_[0:30, 32:20_000]
    assert np.array_equal(idx[on_map], want_idx[on_map]) and np.array_equal(dist[on_map], want_dist[on_map])
    assert (idx[:30, 0] == np.arange(30)).all() and (dist[:30, 0] == 0).all()
    assert not np.isfinite(dist[30:32]).any()


def test_ascending_order_puts_values_nearly_in_order_and_keeps_every_row():
    rng = np.random.default_rng(2)
    for values in (rng.random(10_000) * 50, rng.integers(-10**15, 10**15, 10_000),
                   np.array([3.0, np.nan, 1.0, np.inf, 0.0]), -rng.random(100), rng.random(100).astype(np.float32)):
        order = shopping.ascending_order(values)
        assert np.array_equal(np.sort(order), np.arange(len(values)))
        ordered = values[order]
        if values.dtype == np.int64:
            assert (np.diff(ordered) > -2**15).all()
        elif (values >= 0).all() and np.isfinite(values).all():
            assert (np.diff(ordered) >= -1e-9 * ordered[1:]).all()
        targets = rng.permutation(values)
        sorted_values = np.sort(rng.choice(values, 50))
        assert np.array_equal(shopping.search_sorted(sorted_values, targets, "right"),
                              np.searchsorted(sorted_values, targets, "right"))


@pytest.mark.parametrize("side", ["left", "right"])
def test_search_sorted_by_blocks_matches_numpy_on_floats_ints_duplicates_and_nan(side, monkeypatch):
    monkeypatch.setattr(shopping, "SEARCH_BLOCK", 64)
    rng = np.random.default_rng(8)
    floats = np.sort(np.round(rng.random(3_000) * 400, 1))           # many equal values
    targets = np.r_[rng.random(20_000) * 420 - 10, floats[::7], np.nan, np.inf, 0.0]
    for sorted_values, t in ((floats, rng.permutation(targets)),
                             (np.sort(rng.integers(-10**12, 10**12, 5_000)), rng.integers(-10**12, 10**12, 30_000))):
        assert np.array_equal(shopping.search_sorted(sorted_values, t, side), np.searchsorted(sorted_values, t, side))
        nearly = t[shopping.ascending_order(t)]
        assert np.array_equal(shopping._search_by_block(sorted_values, nearly, side),
                              np.searchsorted(sorted_values, nearly, side))
        # a few ascending runs one after another (a day's ticks), searched run by run
        runs = np.concatenate([np.sort(part) for part in np.array_split(t, 4)])
        assert np.array_equal(shopping.search_sorted(sorted_values, runs, side),
                              np.searchsorted(sorted_values, runs, side))
    with_nan = np.r_[np.sort(targets[:5_000]), 5.0, np.nan, 7.0, np.sort(targets[5_000:9_000])]  # NaN mid-run
    assert np.array_equal(shopping.search_sorted(floats, with_nan, side), np.searchsorted(floats, with_nan, side))


@pytest.mark.parametrize("per_group", [1, 3, 40, 300])
def test_cumulative_odds_search_is_numpys_right_search(per_group):
    """Groups of skewed weights, zero weights (equal values), empty groups and targets on the
    values themselves and on the unit edges: the guided search answers as the binary search."""
    rng = np.random.default_rng(11)
    units = 50
    sizes = rng.integers(0, 2 * per_group + 1, units)
    sizes[[3, 4, units - 1]] = 0                       # empty groups, the last one too
    weights = rng.pareto(1.2, sizes.sum()) * (rng.random(sizes.sum()) > 0.1)   # a tenth weigh nothing
    group = np.repeat(np.arange(units), sizes)
    cum = np.zeros(len(weights))
    for g in np.flatnonzero(sizes):                    # the layout build_assortment makes
        at = group == g
        share = np.cumsum(weights[at])
        cum[at] = g + share / (share[-1] if share[-1] > 0 else 1.0)
    odds = shopping.CumulativeOdds.of(cum, units)
    assert odds.per_unit & (odds.per_unit - 1) == 0 and odds.per_unit >= len(cum) / units
    targets = np.r_[rng.random(20_000) * units * (1 - 1e-12), cum[cum < units], np.arange(units, dtype=float),
                    np.nextafter(np.arange(1, units + 1, dtype=float), 0)]
    assert np.array_equal(odds.search_right(targets), np.searchsorted(cum, targets, "right"))


def test_price_factor_is_the_power_of_each_price_by_table_or_row():
    rng = np.random.default_rng(5)
    cents = np.round(rng.random(40_000) * 5_000 + 49) / 100
    for prices in (pl.Series(cents), pl.Series(cents + 1e-7), pl.Series(np.r_[cents, 0.1 + 0.2]),
                   pl.Series(np.r_[cents, np.nan]), pl.Series([1.5, None, 2.25]), pl.Series([], dtype=pl.Float64),
                   pl.Series([1.0, 2.0, 3.0, 4.0]), pl.Series([4.0, 2.0, 2.0, 1.0]), pl.Series([0.99, 5.0, 1.25]),
                   pl.Series([3.33])):
        plain = ((prices / prices.median()) ** -shopping.PRICE_ELASTICITY).to_numpy()
        factor = shopping.price_factor(prices)
        assert factor.dtype == np.float64 and np.array_equal(factor, plain, equal_nan=True)


def test_gather_rows_is_the_frame_gather():
    frame = pl.DataFrame({"a": [5, 6, 7, 8], "b": [0.5, 1.5, 2.5, 3.5], "c": [1, None, 3, 4],
                          "d": ["w", "x", "y", "z"], "e": [True, False, True, False]},
                         schema_overrides={"a": pl.Int32})
    rows = np.array([3, 0, 0, 2])
    gathered = shopping.gather_rows(frame, rows)
    assert gathered.schema == frame.schema and gathered.equals(frame[rows])


def test_distinct_picks_leave_out_the_excluded_pairs_and_keep_the_first_draws(world):
    assortment = shopping.build_assortment(world.stores, world.store_products, world.products, world.promotions)
    rng = np.random.default_rng(6)
    n = 400
    store = assortment.stocked_store_indexes[rng.integers(0, len(assortment.stocked_store_indexes), n)]
    kind, trip = rng.integers(0, 5, n), rng.integers(0, 4, n)
    sizes = shopping.basket_sizes(rng, trip)
    basket = np.arange(n)
    everything = shopping.distinct_picks(np.random.default_rng(1), assortment, basket, sizes, store, kind, trip,
                                         spare=1.5)
    drawn = everything.sample(fraction=0.3, seed=2)
    exclude = pl.concat([drawn, drawn.head(5), pl.DataFrame({"basket": [0, 1], "item": [10**6, 10**6 + 1]})])
    picks = shopping.distinct_picks(np.random.default_rng(1), assortment, basket, sizes, store, kind, trip,
                                    exclude=exclude, spare=1.5)
    # the same draws: the first of each product of a basket, in draw order, less the excluded pairs
    draws = np.ceil(sizes * 2.5).astype(np.int64) + 3
    item = assortment.sample(np.random.default_rng(1), np.repeat(store, draws), np.repeat(kind, draws),
                             np.repeat(trip, draws))
    pair = np.repeat(basket, draws) * assortment.items.height + item
    keep = np.sort(np.unique(pair, return_index=True)[1])
    banned = exclude["basket"].to_numpy() * assortment.items.height + exclude["item"].to_numpy()
    keep = keep[~np.isin(pair[keep], banned)]
    expected = pl.DataFrame({"basket": np.repeat(basket, draws)[keep], "item": item[keep]}) \
        .with_columns(size=pl.Series(sizes)[np.repeat(basket, draws)[keep]]) \
        .filter(pl.int_range(pl.len()).over("basket") < pl.col("size")).drop("size")
    assert picks.equals(expected)
    assert picks.join(drawn, on=["basket", "item"], how="semi").height == 0 and picks.height > 0


def test_local_miles_in_place_is_the_plain_formula_for_every_broadcast():
    rng = np.random.default_rng(12)

    def plain(lat1, lon1, lat2, lon2):
        lat1, lon1, lat2, lon2 = (np.asarray(v, dtype=np.float64) for v in (lat1, lon1, lat2, lon2))
        dy = (lat2 - lat1) * shopping.MILES_PER_DEGREE_LAT
        dx = (lon2 - lon1) * (shopping.MILES_PER_DEGREE_LAT * np.cos(np.radians(lat1)))
        return np.sqrt(dx * dx + dy * dy)

    for args in ((40.1, -74.0, 40.3, -73.9),
                 (40 + rng.random((30, 1)), -74 + rng.random((30, 1)), 40 + rng.random((1, 9)), -74 + rng.random((1, 9))),
                 (40.5, -74.2, 40 + rng.random(20), -74 + rng.random(20)),
                 (40 + rng.random((5, 1)), -74.0, 41.0, -74 + rng.random((1, 7))),
                 ([40.0, np.nan], [-74.0, -73.0], 40.2, -73.5)):
        miles = shopping.local_miles(*args)
        want = plain(*args)
        assert np.shape(miles) == np.shape(want) and np.array_equal(miles, want, equal_nan=True)
    assert isinstance(shopping.local_miles(40.1, -74.0, 40.3, -73.9), float)


def test_ragged_ranges_lay_the_ranges_end_to_end():
    from grocery_pipeline.simulation.shopping import ragged_ranges

    owner, position = ragged_ranges(np.array([5, 0, 9, 2]), np.array([2, 0, 3, 1]))
    assert owner.tolist() == [0, 0, 2, 2, 2, 3]
    assert position.tolist() == [5, 6, 9, 10, 11, 2]
    empty = ragged_ranges(np.array([], dtype=np.int64), np.array([], dtype=np.int64))
    assert len(empty[0]) == len(empty[1]) == 0
