"""Fast paths give exactly what the plain definitions give: the key audit's packed integer keys,
constant key columns and sorted keys; retail price endings by counting instead of searching."""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.checks.keys import duplicated_keys
from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.catalog import PRICE_ENDINGS, price_point


def _reference(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    return frame.filter(pl.struct(key).is_duplicated())


def _frame(rng: np.random.Generator, n: int, with_nulls: bool) -> pl.DataFrame:
    ids = rng.integers(0, max(n // 2, 1), n)
    frame = pl.DataFrame({
        "receipt_id": ids,
        "line_number": rng.integers(1, 4, n),
        "business_date": [date(2025, 1, 1)] * n,
        "tick_at": [datetime(2025, 1, 1) + timedelta(hours=int(h)) for h in rng.integers(0, 3, n)],
        "store_product_id": rng.integers(1_000_000, 1_000_000_000, n),
        "name": rng.choice(["a", "b", "c"], n),
    })
    if with_nulls:
        frame = frame.with_columns(line_number=pl.when(pl.Series(rng.random(n) < 0.1)).then(None)
                                   .otherwise(pl.col("line_number")))
    return frame


@pytest.mark.parametrize("key", [["receipt_id"], ["receipt_id", "line_number"], ["store_product_id", "business_date"],
                                 ["business_date"], ["store_product_id", "tick_at"], ["name", "line_number"]])
@pytest.mark.parametrize("with_nulls", [False, True])
def test_duplicate_keys_match_the_plain_definition(key, with_nulls):
    rng = np.random.default_rng(7)
    for n in (0, 1, 2, 50, 2_000):
        frame = _frame(rng, n, with_nulls)
        assert duplicated_keys(frame, key).equals(_reference(frame, key)), (key, n)
        unique = frame.unique(subset=key, keep="first", maintain_order=True)
        assert duplicated_keys(unique, key).equals(_reference(unique, key)), (key, n)
        assert duplicated_keys(unique.sort(key), key).height == 0


def test_price_points_match_the_search_over_endings():
    rng = np.random.default_rng(11)
    cents = np.arange(0, 100_000) / 100
    prices = np.concatenate([rng.lognormal(1, 1.5, 200_000), cents, cents + 1e-9, cents - 1e-9, [0.0, -3.0, 0.995]])
    clipped = np.maximum(prices, 0.29)
    dollars = np.floor(clipped)
    idx = np.searchsorted(PRICE_ENDINGS, clipped - dollars - 1e-9)
    ending = PRICE_ENDINGS[np.minimum(idx, len(PRICE_ENDINGS) - 1)]
    expected = np.round(np.where(idx >= len(PRICE_ENDINGS), dollars + 1 + PRICE_ENDINGS[0], dollars + ending), 2)
    assert np.array_equal(price_point(prices), expected)


def test_sorted_unique_is_numpys_unique():
    rng = np.random.default_rng(5)
    for values in (rng.integers(-50, 50, 1000), np.arange(10) * 3, np.array([], dtype=np.int64),
                   np.array([4, 4, 4]), rng.permutation(500)):
        assert np.array_equal(shopping.sorted_unique(values), np.unique(values))


def test_unique_first_is_numpys_unique_with_the_first_index():
    rng = np.random.default_rng(6)
    for values, bound in ((rng.integers(0, 50, 1000), 50), (rng.integers(0, 2**40, 5000), None),
                          (np.array([], dtype=np.int64), 1), (np.array([4, 4, 4]), 5), (rng.permutation(500), 500),
                          (rng.integers(0, 2**61, 300), None)):  # too wide to pack: a stable argsort
        expected = np.unique(values, return_index=True)
        got = shopping.unique_first(values.copy(), bound)
        assert all(np.array_equal(a, b) for a, b in zip(got, expected))
