"""The audits' fast paths (packed integer keys, constant key columns, sorted keys) find exactly
the rows the plain definitions find."""

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.checks.keys import duplicated_keys


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
