"""The day's price lookup (its key packing and its fallback give the prices of an as-of join) and the
day's opening of the price state."""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation.pricing import Catalog, Close, PriceBook, _PriceLookup, empty_state, open_day
from grocery_pipeline.storage import lake as lake_module, prices
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline_tests.test_pricing import _catalog, _rules

DAY = date(2025, 1, 2)
MIDNIGHT = datetime(2025, 1, 2)


def _as_of(opening: pl.DataFrame, changes: pl.DataFrame, ids: list[int], at: list[datetime]) -> list[float]:
    """Each line's latest change at or before it (the later row of two at one moment), else its opening."""
    latest = changes.with_row_index("row").sort("valid_from", "row")
    lines = pl.DataFrame({"store_product_id": ids, "at": at}).with_row_index("line")
    return (lines.sort("at").join_asof(latest, left_on="at", right_on="valid_from", by="store_product_id",
                                       strategy="backward")
            .join(opening, on="store_product_id", how="left").sort("line")
            .select(pl.coalesce("new_price", "price"))["new_price"].to_list())


@pytest.mark.parametrize("offset", [0, 2 ** 60], ids=["packed", "wide ids"])
def test_lookup_prices_match_an_as_of_join(offset):
    """Ids spanning 2**60 leave no room to pack positions into the key: the other sort must agree."""
    values = np.random.default_rng(5)  # test fixture values only
    ids = np.array([3, 4, 7, 9, 12]) + np.array([0, 0, 0, 0, offset])
    opening = pl.DataFrame({"store_product_id": ids, "price": [1.0, 2.0, 3.0, 4.0, 5.0]})
    changes = pl.DataFrame({
        "store_product_id": values.choice(ids, 12),
        "valid_from": [MIDNIGHT + timedelta(hours=int(h)) for h in values.integers(0, 3, 12)],
        "new_price": np.round(values.uniform(1, 9, 12), 2),
    })
    at = [MIDNIGHT + timedelta(minutes=int(m)) for m in values.integers(-30, 200, 40)]
    lines = values.choice(ids, 40).tolist()
    assert PriceBook(DAY, opening, changes).price_at(lines, at).tolist() == _as_of(opening, changes, lines, at)


@pytest.mark.parametrize("offset", [0, 2 ** 60], ids=["packed", "wide ids"])
def test_of_two_changes_at_one_moment_the_later_row_wins(offset):
    opening = pl.DataFrame({"store_product_id": [1, 2 + offset], "price": [1.0, 2.0]})
    changes = pl.DataFrame({"store_product_id": [1, 1, 1], "valid_from": [MIDNIGHT + timedelta(hours=1)] * 3,
                            "new_price": [1.5, 1.7, 1.6]})
    assert PriceBook(DAY, opening, changes).price_at([1, 1], [MIDNIGHT, MIDNIGHT + timedelta(hours=2)]).tolist() \
        == [1.0, 1.6]


def test_lookup_keys_are_sorted_behind_the_sentinel():
    opening = pl.DataFrame({"store_product_id": [5, 1, 3], "price": [5.0, 1.0, 3.0]})
    changes = pl.DataFrame({"store_product_id": [3, 1], "valid_from": [MIDNIGHT, MIDNIGHT], "new_price": [3.5, 1.5]})
    lookup = _PriceLookup(opening, changes)
    assert lookup.key[0] == -1 and np.isnan(lookup.price[0])
    assert (np.diff(lookup.key) > 0).all()
    assert lookup.price[1:].tolist() == [1.0, 1.5, 3.0, 3.5, 5.0]


def test_prepare_builds_the_lookup_once():
    book = PriceBook(DAY, pl.DataFrame({"store_product_id": [1], "price": [2.0]}),
                     pl.DataFrame({"store_product_id": [1], "valid_from": [MIDNIGHT], "new_price": [2.5]}))
    assert book.prepare() is book
    built = book.__dict__["_built"]
    assert book.price_at([1], [MIDNIGHT]).tolist() == [2.5]
    assert book.__dict__["_built"] is built


def test_a_lookup_prepared_beside_is_built_once_whoever_asks_first(monkeypatch):
    import threading

    from grocery_pipeline.simulation import pricing

    builds, started, release = [], threading.Event(), threading.Event()

    class SlowLookup(pricing._PriceLookup):
        def __init__(self, *args):
            builds.append(threading.current_thread().name)
            started.set()
            release.wait(5)
            super().__init__(*args)

    monkeypatch.setattr(pricing, "_PriceLookup", SlowLookup)
    book = PriceBook(DAY, pl.DataFrame({"store_product_id": [1], "price": [2.0]}),
                     pl.DataFrame({"store_product_id": [1], "valid_from": [MIDNIGHT], "new_price": [2.5]}))
    book.prepare_beside()
    assert started.wait(5)
    threading.Timer(0.2, release.set).start()
    assert book.price_at([1], [MIDNIGHT]).tolist() == [2.5]  # waits for the build under way
    assert builds == ["price_lookup"]


def test_a_lookup_that_fails_beside_fails_where_a_price_is_asked_for():
    book = PriceBook(DAY, pl.DataFrame({"store_product_id": [1], "price": [2.0]}),
                     pl.DataFrame({"store_product_id": [2**62], "valid_from": [MIDNIGHT], "new_price": [2.5]}))
    book.prepare_beside()
    with pytest.raises(ValueError, match="too wide a range"):
        book.price_at([1], [MIDNIGHT])


def _opening_catalog(volatility: str = "HIGH") -> Catalog:
    """The pricing tests' catalog with its store products out of id order (product 2 is discontinued
    on the day, so its row leaves) and Produce in the given class."""
    catalog = _catalog()
    return Catalog(catalog.store_products.reverse(), catalog.products, catalog.stores, catalog.promotions,
                   catalog.departments.with_columns(volatility_class=pl.Series([volatility, "LOW"])))


def test_opening_sorts_the_rows_and_drops_store_products_of_products_gone():
    rules = _rules()
    state = open_day(rules, 1, DAY, empty_state(), _opening_catalog())
    assert state["store_product_id"].to_list() == [1_000_001, 2_000_001]
    assert state["volatility_class"].to_list() == ["HIGH", "HIGH"]
    carried = open_day(rules, 1, date(2025, 1, 3), state.with_columns(price=pl.lit(2.29)), _opening_catalog())
    assert carried["price"].to_list() == [2.29, 2.29]
    assert carried["next_review_at"].to_list() == state["next_review_at"].to_list()


def test_opening_fails_naming_a_class_with_no_figures():
    rules = _rules()
    with pytest.raises(ValueError, match="'WILD' is not one of"):
        open_day(rules, 1, DAY, empty_state(), _opening_catalog("WILD"))


def _publish_catalog(lake: Lake, day: date, catalog: Catalog) -> None:
    """A day's partitions of the catalog's tables: the rows of each frame with that business date."""
    for table in ("store_products", "products", "stores", "promotions"):
        frame = getattr(catalog, table)
        if "business_date" not in frame.columns:
            frame = frame.with_columns(business_date=pl.lit(DAY - timedelta(days=1)))
        path = lake.partition_path(table, day)
        path.parent.mkdir(parents=True, exist_ok=True)
        frame.filter(pl.col("business_date") == day).write_parquet(path)


def test_the_ticks_catalog_read_through_the_next_day_is_the_catalog_of_the_day(tmp_path, dictionaries):
    """A day's ticks price the catalog published through the day before. With the day's own
    dimensions published too, it is the same rows, and one history is held: read cold (a nightly
    run), the history through the day, which the day's audits and operations read next; held
    already (a window's ticks), the history as it is, neither advanced nor set back."""
    first, before = DAY - timedelta(days=1), _catalog()
    listed = pl.DataFrame({"store_product_id": [1_000_003, 2_000_002], "store_id": [1, 2], "product_id": [3, 2],
                           "list_price": [1.99, 6.49], "listed_on": [DAY, DAY]})
    store_products = pl.concat([before.store_products, listed]).with_columns(
        business_date=pl.when(pl.col("listed_on") == DAY).then(pl.lit(DAY)).otherwise(pl.lit(first)))
    catalog = Catalog(store_products, before.products, before.stores, before.promotions, before.departments)
    alone, cold, warm = Lake(tmp_path / "alone"), Lake(tmp_path / "cold"), Lake(tmp_path / "warm")
    for lake, days in ((alone, [first]), (cold, [first, DAY]), (warm, [first, DAY])):
        for day in days:
            _publish_catalog(lake, day, catalog)
    expected = prices.catalog_as_of(alone, dictionaries, first)
    assert expected.store_products["store_product_id"].to_list() == [1_000_001, 1_000_002, 2_000_001]
    through = [str(warm.partition_path("store_products", d)) for d in (first, DAY)]
    for lake, held_before, held_after in ((cold, None, 5), (warm, through[:1], 3), (warm, through, 5)):
        if held_before is not None:
            lake_module.read_files_cached(lake, "store_products", held_before)
        got = prices.catalog_as_of(lake, dictionaries, first)
        held = lake_module._AS_OF_CACHE[(lake.root, "store_products")]
        assert held.frame.height == held_after and held.ahead == []
        for table in ("store_products", "products", "stores", "promotions"):
            assert getattr(got, table).equals(getattr(expected, table)), table


def test_a_close_handed_to_the_opening_is_taken_once():
    rules = _rules()
    state = open_day(rules, 1, DAY, empty_state(), _opening_catalog())
    close = Close(state.with_columns(price=pl.lit(2.29)))
    opened = open_day(rules, 1, date(2025, 1, 3), close, _opening_catalog())
    assert opened.equals(open_day(rules, 1, date(2025, 1, 3), state.with_columns(price=pl.lit(2.29)),
                                  _opening_catalog()))
    with pytest.raises(RuntimeError, match="handed to an opening already"):
        open_day(rules, 1, date(2025, 1, 4), close, _opening_catalog())
