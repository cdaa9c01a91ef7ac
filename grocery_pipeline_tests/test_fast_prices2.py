"""The day's opening prices of the price book: a merge join when both sides are in id order."""

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.storage.prices import opening_prices


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
        listed, snapshot = listed.sample(fraction=1.0, shuffle=True, seed=3), snapshot.sample(fraction=1.0, shuffle=True, seed=4)
    got = opening_prices(listed, snapshot)
    assert got.equals(_hash_join(listed, snapshot.select("store_product_id", "price")))
    assert got["price"].null_count() == 0 and got.height == listed.height
