"""Fast paths of the shelf give what their plain forms give: the day's demand put in (hour, slot,
time) order by one sort, and served line by line in time order."""

import numpy as np
import pytest

from grocery_pipeline.simulation import inventory
from grocery_pipeline.simulation.rng import rng_for


@pytest.mark.parametrize("n,n_slots", [(1, 1), (50, 3), (5_000, 40), (5_000, 100_000)])
def test_hour_slot_order_is_the_stable_sort_of_each_hour_by_slot(n, n_slots):
    rng = rng_for(1, "test", "hour slot order", n, n_slots)
    seconds = rng.integers(6 * 3600, 23 * 3600, n) // 7 * 7      # many lines share a second
    slots = rng.integers(0, n_slots, n)
    by_time = np.argsort(seconds, kind="stable")
    hour = seconds[by_time] // inventory.SECONDS_PER_HOUR
    expected = np.concatenate([by_time[hour == h][np.argsort(slots[by_time[hour == h]], kind="stable")]
                               for h in np.unique(hour)])
    assert np.array_equal(inventory.hour_slot_order(seconds, slots, n_slots), expected)


def test_serving_by_hour_serves_each_line_in_time_order_and_reports_shortfalls_in_time_order():
    rng = rng_for(1, "test", "serve by hour")
    n, n_slots = 3_000, 25
    ids = np.arange(n_slots) * 10
    opening = rng.integers(0, 40, n_slots)
    seconds = rng.integers(7 * 3600, 22 * 3600, n) // 60 * 60
    slots = rng.integers(0, n_slots, n)
    qty = rng.integers(1, 5, n)
    arrival = (np.array([9 * 3600 + 5, 15 * 3600]), ids[[3, 7]], np.array([50, 80]))
    shorts = []
    ledger = inventory.StockLedger(ids, opening.copy())
    granted = inventory.serve_by_hour(ledger, seconds, None, qty, *arrival, demand_slots=slots,
                                      on_shortfall=lambda short, got, _: shorts.append((short, got)))
    # Line by line: each hour in time order, trucks unloaded after the hour.
    stock = opening.copy()
    expected = np.zeros(n, dtype=np.int64)
    expected_short = []
    by_time = np.argsort(seconds, kind="stable")
    for hour in range(24):
        lines = [i for i in by_time if seconds[i] // 3600 == hour]
        for i in lines:
            expected[i] = min(stock[slots[i]], qty[i])
            stock[slots[i]] -= expected[i]
        short = [i for i in lines if expected[i] < qty[i]]
        if short:
            expected_short.append(short)
        for when, sp, units in zip(*arrival):
            if when // 3600 == hour:
                stock[sp // 10] += units
    assert np.array_equal(granted, expected)
    assert np.array_equal(ledger.on_hand, stock)
    assert [s.tolist() for s, _ in shorts] == expected_short
    assert all(np.array_equal(got, expected[s]) for s, got in shorts)
    assert len(expected_short) > 3


@pytest.mark.parametrize("customers,products", [(1, 3), (30, 60), (400, 2_000)])
def test_kept_habits_by_packed_keys_match_the_frame_operations(customers, products):
    from datetime import date

    import polars as pl

    from grocery_pipeline.simulation import delivery

    rng = rng_for(1, "test", "kept habits", customers, products)
    today = date(2025, 3, 1)
    n = customers * 45
    held = pl.DataFrame({"customer_id": rng.integers(0, customers, n) * 7 + 3,
                         "product_id": rng.integers(0, products, n),
                         "times_bought": rng.integers(1, 6, n),
                         "last_bought_on": pl.Series(18_000 + rng.integers(0, 40, n)).cast(pl.Int32).cast(pl.Date)}
                        ).unique(["customer_id", "product_id"], keep="first", maintain_order=True)
    received = pl.DataFrame({"customer_id": rng.integers(0, customers + 5, n // 2) * 7 + 3,
                             "product_id": rng.integers(0, products, n // 2)})
    kept = delivery._kept_habits(held, received, today)
    expected = delivery._kept_habits_by_frame(held, received, today)
    assert kept.equals(expected) and kept.schema == expected.schema
    if customers > 1:
        assert kept["habit_product_ids"].list.len().max() == delivery.HABIT_CAPACITY


@pytest.mark.parametrize("n", [0, 1, 7, 5_000])
def test_first_lines_keep_what_unique_keeps(n):
    import polars as pl

    from grocery_pipeline.simulation import delivery

    rng = rng_for(1, "test", "first lines", n)
    lines = pl.DataFrame({"order": rng.integers(0, max(n // 20, 1), n), "item": rng.integers(0, 30, n),
                          "cart_key": rng.random(n)}).sort("order", "cart_key")
    kept = delivery.first_lines(lines)
    assert kept.equals(lines.unique(["order", "item"], keep="first", maintain_order=True))
    if n > 100:
        assert kept.height < n
