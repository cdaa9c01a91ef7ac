"""The day's opening prices of the price book (a merge join when both sides are in id order), the
day's opening of the price state (only the rows listed since are overwritten; the class codes go
along to the state) and how the price lookup orders its keys and lines and counts change moments."""

from datetime import date

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.pricing import (
    LIST_PRICE, PriceState, _class_codes, _PriceLookup, empty_state, open_day, open_state,
)
from grocery_pipeline.storage.prices import opening_prices
from grocery_pipeline_tests.test_fast_prices import _opening_catalog
from grocery_pipeline_tests.test_pricing import _rules

DAY = date(2025, 1, 2)


def _hash_join(listed: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    return listed.join(snapshot, on="store_product_id", how="left", maintain_order="left") \
        .select("store_product_id", pl.coalesce("price", "list_price").alias("price"))


@pytest.mark.parametrize("ordered", [True, False], ids=["in id order", "shuffled"])
def test_opening_prices_are_the_left_join(ordered):
    """Rows missing from the snapshot, or with no price there, take their list price."""
    values = np.random.default_rng(11)  # test fixture values only
    ids = np.unique(values.integers(1, 10_000_000, 3_000))
    listed = pl.DataFrame({"store_product_id": ids, "list_price": np.round(values.uniform(1, 9, len(ids)), 2)})
    kept = np.sort(values.choice(ids, len(ids) - 300, replace=False))
    price = pl.Series(np.round(values.uniform(1, 9, len(kept)), 2)).scatter([0, 7, 99], None)
    snapshot = pl.DataFrame({"store_product_id": kept, "price": price, "msrp": 10.0})
    if not ordered:
        listed = listed.sample(fraction=1.0, shuffle=True, seed=3)
        snapshot = snapshot.sample(fraction=1.0, shuffle=True, seed=4)
    got = opening_prices(listed, snapshot)
    assert got.equals(_hash_join(listed, snapshot.select("store_product_id", "price")))
    assert got["price"].null_count() == 0 and got.height == listed.height


def test_opening_overwrites_only_the_rows_listed_since():
    """A store product not in yesterday's close starts at its list price, listing date and a fresh
    review; the carried rows keep their price, reason and review (nulls included)."""
    rules = _rules()
    first = open_day(rules, 1, DAY, empty_state(), _opening_catalog())
    kept = first.head(1).with_columns(price=pl.lit(2.29), last_reason=pl.lit(None, dtype=pl.String))
    carried = open_day(rules, 1, date(2025, 1, 3), kept, _opening_catalog())
    assert carried["store_product_id"].to_list() == first["store_product_id"].to_list()
    assert carried["price"].to_list() == [2.29, first["price"][1]]
    assert carried["last_reason"].to_list() == [None, LIST_PRICE]
    assert carried["price_since"].to_list() == first["price_since"].to_list()
    assert carried["next_review_at"][0] == first["next_review_at"][0]
    assert carried["next_review_at"][1] is not None and carried["next_review_at"][1] > first["price_since"][1]


def test_open_state_carries_the_class_codes_of_its_frame():
    """The codes the opening hands over are those the state would read from the class names; a
    state that has to sort its frame reads them itself."""
    rules = _rules()
    catalog = _opening_catalog()
    state = open_state(rules, 1, DAY, empty_state(), catalog)
    frame = state.frame()
    assert frame.equals(open_day(rules, 1, DAY, empty_state(), catalog))
    assert state._class_codes.tolist() == _class_codes(frame["volatility_class"]).tolist() == [0, 0]
    assert PriceState(frame.reverse(), np.array([0, 2]))._class_codes is None


@pytest.mark.parametrize("bound,runs", [(1_000, None), (2 ** 62, None), (1_000, 3), (2 ** 62, 40), (50, 1)],
                         ids=["packed", "no room to pack", "three runs", "forty runs, no room to pack", "sorted"])
def test_sort_with_order_is_the_stable_argsort(bound, runs):
    """Keys in a few ascending runs (a day's ticks one after another) are merged: the same order."""
    values = np.random.default_rng(7)  # test fixture values only
    key = values.integers(0, min(bound, 50), 5_000)
    if runs is not None:   # equal keys in several runs: ties keep their rows' order
        key = np.concatenate([np.sort(part) for part in np.array_split(key, runs)])
    expected = np.argsort(key, kind="stable")
    sorted_key = key.copy()
    assert shopping.sorted_with_order(sorted_key, bound).tolist() == expected.tolist()
    assert sorted_key.tolist() == key[expected].tolist()


@pytest.mark.parametrize("moments", [[0, 3_600, 7_200, 10_800], [0, 3_600, 10_800], [5_000], [-7, 0]],
                         ids=["hourly", "a tick with no change", "one moment", "two"])
def test_moments_up_to_counts_as_the_binary_search(moments):
    """Regular moments are counted by a division: the same counts as the search, ends included."""
    values = np.random.default_rng(9)  # test fixture values only
    moments = np.array(moments, dtype=np.int64) * 1_000_000 + 1_735_776_000_000_000
    lookup = _PriceLookup(pl.DataFrame({"store_product_id": [1], "price": [1.0]}),
                          pl.DataFrame({"store_product_id": [1] * len(moments),
                                        "valid_from": pl.Series(moments).cast(pl.Datetime("us")),
                                        "new_price": [2.0] * len(moments)}))
    near = np.concatenate([moments - 1, moments, moments + 1])
    at = np.concatenate([near, values.integers(moments[0] - 10**10, moments[-1] + 10**10, 200),
                         [np.iinfo(np.int64).min, np.iinfo(np.int64).max]])
    assert lookup._moments_up_to(at).tolist() == np.searchsorted(moments, at, side="right").tolist()
