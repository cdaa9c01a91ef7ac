"""Price ticks as pure simulation: how a review moves a price, and how prices are read back."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.settings import PRICE_CLASSES, SettingsError, load_settings
from grocery_pipeline.simulation.pricing import (
    STATE_SCHEMA, Catalog, PriceBook, PricingRules, apply_changes, empty_state, open_day, price_mismatches,
    price_tick, tick_price_point,
)

DAY = date(2025, 1, 2)
N = 4000


def _rules(**overrides) -> PricingRules:
    return PricingRules.from_settings(load_settings(env={}, **overrides))


def _state(review_at: datetime, n: int = N, promotion_until: date | None = None) -> pl.DataFrame:
    """n store products at their list price, all due for review at `review_at`, classes in turn."""
    values = np.random.default_rng(7)  # test fixture values only
    base = np.round(values.uniform(0.8, 25, n), 2)
    list_price = tick_price_point(base * values.uniform(0.9, 1.1, n))
    return pl.DataFrame({
        "store_product_id": np.arange(n) + 1_000_000, "store_id": np.ones(n, dtype=np.int64),
        "product_id": np.arange(n), "price": list_price, "price_since": [datetime(2025, 1, 1)] * n,
        "last_reason": ["LIST_PRICE"] * n, "next_review_at": [review_at] * n,
        "promotion_until": pl.Series([promotion_until] * n, dtype=pl.Date), "list_price": list_price,
        "msrp": np.round(base * 1.25, 2), "unit_cost": np.round(base * 0.62, 2),
        "volatility_class": np.array(PRICE_CLASSES)[np.arange(n) % len(PRICE_CLASSES)],
    }, schema=STATE_SCHEMA)


def _run_day(rules: PricingRules, state: pl.DataFrame, seed: int = 1) -> pl.DataFrame:
    changes = []
    for tick_at in rules.ticks_of(DAY):
        made, state = price_tick(rules, seed, tick_at, state)
        changes.append(made)
    return pl.concat(changes)


@pytest.fixture(scope="module")
def day_of_changes() -> pl.DataFrame:
    """A day of ticks over store products whose reviews were due at midnight."""
    return _run_day(_rules(), _state(datetime.combine(DAY, datetime.min.time())))


def test_tick_is_identical_when_repeated_and_depends_on_its_seed():
    rules, at = _rules(), datetime(2025, 1, 2, 10)
    first, _ = price_tick(rules, 1, at, _state(at))
    again, _ = price_tick(rules, 1, at, _state(at))
    other_seed, _ = price_tick(rules, 2, at, _state(at))
    assert first.equals(again)
    assert not first.equals(other_seed)


def test_no_tick_moves_a_price_by_more_than_the_bound(day_of_changes):
    assert day_of_changes.height > N  # most store products changed at least once
    move = (day_of_changes["new_price"] / day_of_changes["old_price"] - 1).abs()
    assert move.max() <= 0.15 + 1e-9
    tight = _run_day(_rules(price_max_change=0.04), _state(datetime.combine(DAY, datetime.min.time())))
    assert (tight["new_price"] / tight["old_price"] - 1).abs().max() <= 0.04 + 1e-9


def test_prices_stay_above_unit_cost_and_at_most_msrp(day_of_changes):
    reference = _state(datetime(2025, 1, 2)).select("store_product_id", "msrp", "unit_cost")
    joined = day_of_changes.join(reference, on="store_product_id")
    assert (joined["unit_cost"] > 0).all()
    assert (joined["new_price"] > joined["unit_cost"]).all()
    assert (joined["new_price"] <= joined["msrp"]).all()
    share = joined["unit_cost"] / joined["new_price"]
    assert share.min() >= 0.50 - 0.01 and share.max() <= 0.85 + 0.01


def test_rush_hours_push_prices_up_and_late_night_down():
    """Median change by hour, every store product reviewed at each hour from the same prices."""
    rules = _rules()
    median = {}
    for hour in (3, 8, 12, 15, 19):
        at = datetime(2025, 1, 2, hour)
        changes, _ = price_tick(rules, 1, at, _state(at))
        median[hour] = changes["change_pct"].median()
    assert median[8] > 0 and median[19] > 0
    assert median[3] < 0
    assert min(median[8], median[19]) > max(median[12], median[15]) > median[3]


def test_rush_and_late_night_hours_are_settings():
    at = datetime(2025, 1, 2, 12)
    changes, _ = price_tick(_rules(price_rush_hours="11-13"), 1, at, _state(at))
    assert "RUSH_HOUR" in changes["reason"].to_list()
    assert changes["change_pct"].median() > 0


def test_volatile_classes_change_more_often_and_by_more(day_of_changes):
    classes = _state(datetime(2025, 1, 2)).select("store_product_id", "volatility_class")
    by_class = (day_of_changes.join(classes, on="store_product_id").group_by("volatility_class")
                .agg(pl.len().alias("changes"), pl.col("change_pct").abs().median().alias("size")))
    stats = {row["volatility_class"]: row for row in by_class.iter_rows(named=True)}
    assert stats["HIGH"]["changes"] > stats["MEDIUM"]["changes"] > stats["LOW"]["changes"] > stats["VERY_LOW"]["changes"]
    assert stats["HIGH"]["size"] >= stats["VERY_LOW"]["size"]


def test_discounts_and_surges_are_about_15_and_5_percent_of_changes(day_of_changes):
    share = day_of_changes["reason"].value_counts(normalize=True)
    shares = dict(zip(share["reason"], share["proportion"]))
    assert 0.11 <= shares["DISCOUNT"] <= 0.19
    assert 0.03 <= shares["SURGE"] <= 0.08
    discounts = day_of_changes.filter(pl.col("reason") == "DISCOUNT")
    assert (discounts["change_pct"] < 0).mean() > 0.95


def test_every_change_moves_the_price_to_a_retail_price_point(day_of_changes):
    market = day_of_changes.filter(pl.col("reason") != "PROMOTION_START")
    assert (market["new_price"] != market["old_price"]).all()
    above_a_dollar = market.filter(pl.col("new_price") >= 1.0)
    ends_in_nine = ((above_a_dollar["new_price"] * 100).round().cast(pl.Int64) % 10 == 9).mean()
    assert ends_in_nine > 0.9


def test_valid_to_is_the_next_change_of_the_same_store_product(day_of_changes):
    chained = day_of_changes.sort("store_product_id", "valid_from").with_columns(
        next_from=pl.col("valid_from").shift(-1).over("store_product_id"))
    followed = chained.filter(pl.col("next_from").is_not_null())
    assert followed.height > 0
    assert (followed["valid_to"] == followed["next_from"]).all()
    last = chained.filter(pl.col("next_from").is_null())
    assert (last["valid_to"] > datetime(2025, 1, 2, 23)).all()  # the next change is after this day's last tick


def test_a_promotion_pins_the_price_to_the_list_price_until_it_ends():
    rules, at = _rules(), datetime(2025, 1, 2, 10)
    state = _state(at, n=200, promotion_until=date(2025, 1, 5))
    started, state = price_tick(rules, 1, at, state)
    assert set(started["reason"]) == {"PROMOTION_START"}
    reference = _state(at, n=200).select("store_product_id", "list_price")
    assert (started.join(reference, on="store_product_id").select(
        pl.col("new_price") == pl.col("list_price")).to_series()).all()
    assert (started["valid_to"] == datetime(2025, 1, 6)).all()
    quiet, _ = price_tick(rules, 1, datetime(2025, 1, 4, 12), state)
    assert quiet.height == 0
    ended, _ = price_tick(rules, 1, datetime(2025, 1, 6), state.frame().with_columns(promotion_until=pl.lit(None, pl.Date)))
    assert set(ended["reason"]) == {"PROMOTION_END"} and ended.height == 200


def test_state_after_a_tick_is_the_state_rebuilt_from_its_changes():
    rules, at = _rules(), datetime(2025, 1, 2, 10)
    state = _state(at)
    changes, after = price_tick(rules, 1, at, state)
    assert after.frame().equals(apply_changes(state, changes).sort("store_product_id"))


def test_changes_applied_to_some_columns_of_a_state_in_any_order_give_those_columns_in_id_order():
    rules, at = _rules(), datetime(2025, 1, 2, 10)
    state = _state(at)
    changes, _ = price_tick(rules, 1, at, state)
    changes = pl.concat([changes, price_tick(rules, 1, at + timedelta(hours=1), state)[0]])  # a product changed twice
    whole = apply_changes(state, changes)
    assert whole["store_product_id"].is_sorted() and whole.columns == list(STATE_SCHEMA)
    carried = ["store_product_id", "price", "price_since", "last_reason", "next_review_at"]
    shuffled = state.select(carried).sample(fraction=1.0, shuffle=True, seed=3)
    some = apply_changes(shuffled, changes.select("store_product_id", "new_price", "reason", "valid_from", "valid_to"))
    assert some.equals(whole.select(carried))
    assert not some.equals(state.select(carried))  # the changes changed something
    # a change of a store product the state does not hold is ignored; a null leaves the value as it was
    first = changes.head(1)
    odd = pl.concat([first.with_columns(pl.col("store_product_id") + 10**9),
                     first.with_columns(pl.lit(None, dtype=pl.Datetime("us")).alias("valid_to"))])
    once = apply_changes(state, odd)
    row = state["store_product_id"].to_list().index(first["store_product_id"][0])
    assert once.height == state.height and once["price"][row] == first["new_price"][0]
    assert once["next_review_at"][row] == state["next_review_at"][row]


def test_carried_state_reprices_like_a_state_rebuilt_from_the_lake_at_every_tick():
    """The state carried through ticks (updated in place, queued by tick per day) selects and prices
    exactly what the frame rebuilt from the opening and the changes so far would, across midnight
    and off the tick grid."""
    rules = _rules(price_tick_cron="*/30 * * * *")
    midnight = datetime.combine(DAY, datetime.min.time())
    opened = _state(midnight, n=600).with_columns(
        next_review_at=pl.Series([midnight + timedelta(minutes=2 * i) for i in range(600)]))
    carried, rebuilt, made = opened, opened, []
    day_ticks = rules.ticks_of(DAY)
    ticks = [*day_ticks[:2], midnight + timedelta(minutes=45), *day_ticks[2:],
             *rules.ticks_of(DAY + timedelta(days=1))[:6], datetime(2025, 1, 3, 3, 10)]
    for tick_at in ticks:
        changes, carried = price_tick(rules, 1, tick_at, carried)
        again, _ = price_tick(rules, 1, tick_at, rebuilt)
        assert changes.equals(again), tick_at
        made.append(changes)
        rebuilt = apply_changes(rebuilt, changes)
        assert carried.frame().equals(rebuilt), tick_at
    reviewed = pl.concat(made)["store_product_id"]
    assert reviewed.n_unique() == 600 and reviewed.len() > 600  # every one reviewed, some again
    assert opened.equals(_state(midnight, n=600).with_columns(
        next_review_at=pl.Series([midnight + timedelta(minutes=2 * i) for i in range(600)])))  # left as it was


def _catalog(promotions: pl.DataFrame | None = None) -> Catalog:
    return Catalog(
        store_products=pl.DataFrame({"store_product_id": [1_000_001, 1_000_002, 2_000_001],
                                     "store_id": [1, 1, 2], "product_id": [1, 2, 1],
                                     "list_price": [2.49, 5.99, 2.59], "listed_on": [date(2024, 12, 1)] * 3}),
        products=pl.DataFrame({"product_id": [1, 2], "department": ["Produce", "Pantry"],
                               "category": ["Fruit", "Pasta"], "msrp": [3.29, 7.49], "unit_cost": [1.55, 3.89],
                               "launched_on": [date(2024, 1, 1)] * 2,
                               "discontinued_on": pl.Series([None, date(2025, 1, 2)], dtype=pl.Date)}),
        stores=pl.DataFrame({"store_id": [1, 2], "opened_on": [date(2024, 1, 1), date(2024, 1, 1)]}),
        promotions=promotions if promotions is not None else pl.DataFrame(schema={
            "promotion_id": pl.Int64, "scope": pl.String, "product_id": pl.Int64, "department": pl.String,
            "category": pl.String, "start_date": pl.Date, "end_date": pl.Date}),
        departments=pl.DataFrame({"department": ["Produce", "Pantry"], "volatility_class": ["HIGH", "VERY_LOW"]}),
    )


def test_opening_lists_new_store_products_at_list_price_and_drops_discontinued_ones():
    state = open_day(_rules(), 1, DAY, empty_state(), _catalog())
    assert state["store_product_id"].to_list() == [1_000_001, 2_000_001]  # product 2 leaves on the 2nd
    assert state["price"].to_list() == [2.49, 2.59]
    assert (state["next_review_at"] > datetime(2025, 1, 2)).all()
    carried = open_day(_rules(), 1, DAY, state.with_columns(price=pl.lit(2.29)), _catalog())
    assert carried["price"].to_list() == [2.29, 2.29]


def test_next_opening_from_a_carried_state_equals_the_one_from_its_frame():
    rules, next_day = _rules(), DAY + timedelta(days=1)
    opened = open_day(rules, 1, DAY, empty_state(), _catalog())
    for tick_at in rules.ticks_of(DAY):
        _, opened = price_tick(rules, 1, tick_at, opened)
    closed = opened.frame()
    assert closed["last_reason"].is_in(["LIST_PRICE"]).not_().any()  # every one was repriced at least once
    expected = open_day(rules, 1, next_day, closed, _catalog())
    assert open_day(rules, 1, next_day, opened, _catalog()).equals(expected)
    assert expected["price"].to_list() == closed["price"].to_list()


def test_opening_marks_products_under_a_category_promotion():
    promotions = pl.DataFrame({"promotion_id": [7], "scope": ["CATEGORY"], "product_id": pl.Series([None], dtype=pl.Int64),
                               "department": ["Produce"], "category": ["Fruit"],
                               "start_date": [date(2025, 1, 1)], "end_date": [date(2025, 1, 9)]})
    state = open_day(_rules(), 1, DAY, empty_state(), _catalog(promotions))
    assert state["promotion_until"].to_list() == [date(2025, 1, 9)] * 2


def test_opening_fails_naming_a_department_without_volatility_class():
    catalog = _catalog()
    catalog = Catalog(catalog.store_products, catalog.products, catalog.stores, catalog.promotions,
                      catalog.departments.head(1))
    with pytest.raises(ValueError, match="Pantry"):
        open_day(_rules(), 1, date(2025, 1, 1), empty_state(), catalog)


def _book() -> PriceBook:
    return PriceBook(DAY, pl.DataFrame({"store_product_id": [1, 2], "price": [2.49, 5.99]}),
                     pl.DataFrame({"store_product_id": [1, 1], "valid_from": [datetime(2025, 1, 2, 8), datetime(2025, 1, 2, 12)],
                                   "new_price": [2.59, 2.29]}))


def test_price_in_effect_is_the_latest_change_at_or_before_the_moment():
    at = [datetime(2025, 1, 2, 7, 59), datetime(2025, 1, 2, 8), datetime(2025, 1, 2, 11, 59),
          datetime(2025, 1, 2, 18), datetime(2025, 1, 2, 18)]
    assert _book().price_at([1, 1, 1, 1, 2], at).tolist() == [2.49, 2.59, 2.59, 2.29, 5.99]


def test_price_in_effect_matches_an_as_of_join_however_the_changes_are_ordered():
    """Changes out of time order, store products changed without an opening price, lines at the very
    moment of a change or before the day: each line gets the latest change at or before it, else
    its opening price."""
    values = np.random.default_rng(11)  # test fixture values only
    day_start = datetime.combine(DAY, datetime.min.time())
    midnight = np.datetime64(day_start, "us")
    opening = pl.DataFrame({"store_product_id": np.arange(1, 40), "price": np.round(values.uniform(1, 9, 39), 2)}) \
        .filter(pl.col("store_product_id") != 20)  # 20: no price at all, though 21 changes at midnight
    changes = pl.concat([pl.DataFrame({
        "store_product_id": values.integers(1, 50, 300),
        "valid_from": midnight + values.integers(0, 24, 300).astype("timedelta64[h]").astype("timedelta64[us]"),
        "new_price": np.round(values.uniform(1, 9, 300), 2),
    }), pl.DataFrame({"store_product_id": [21], "valid_from": [day_start], "new_price": [5.55]})]) \
        .filter(pl.col("store_product_id") != 20).unique(["store_product_id", "valid_from"]) \
        .sample(fraction=1.0, shuffle=True, seed=3)
    lines = pl.DataFrame({
        "store_product_id": np.concatenate([values.choice(opening["store_product_id"].to_numpy(), 400),
                                            changes["store_product_id"][:100]]),
        "at": np.concatenate([midnight + values.integers(-3_600, 25 * 3_600, 400).astype("timedelta64[s]")
                              .astype("timedelta64[us]"), changes["valid_from"][:100].to_numpy()]),
    }).with_row_index("line")
    expected = (lines.sort("at").join_asof(changes.sort("valid_from"), left_on="at", right_on="valid_from",
                                           by="store_product_id", strategy="backward")
                .join(opening, on="store_product_id", how="left").sort("line")
                .select(pl.coalesce("new_price", "price"))["new_price"])
    book = PriceBook(DAY, opening, changes)
    assert expected.null_count() == 0
    assert book.price_at(lines["store_product_id"], lines["at"]).tolist() == expected.to_list()
    with pytest.raises(KeyError, match="store_product_id 20"):
        book.price_at([1, 20], [datetime(2025, 1, 2, 9)] * 2)


def test_line_price_audit_finds_a_line_not_at_the_price_in_effect():
    lines = pl.DataFrame({"store_product_id": [1, 1, 2, 3],
                          "priced_at": [datetime(2025, 1, 2, 9), datetime(2025, 1, 2, 13), datetime(2025, 1, 2, 9),
                                        datetime(2025, 1, 2, 9)],
                          "unit_price": [2.59, 2.59, 5.99, 1.00]})
    wrong = price_mismatches(lines, _book(), "priced_at")
    assert sorted(wrong["store_product_id"].to_list()) == [1, 3]  # 13:00 sells at 2.29; 3 has no price at all


def test_line_price_audit_prices_only_the_store_products_of_the_opening():
    """A store product with the day's changes but no opening price (not listed that day), an
    unknown one and a null one offend with no price in effect; the others are priced, a null
    moment at the opening price; offenders come priced first, then unpriced, each in line order."""
    book = PriceBook(DAY, pl.DataFrame({"store_product_id": [1, 2, 4], "price": [2.49, 5.99, 1.50]}),
                     pl.DataFrame({"store_product_id": [1, 1, 3], "new_price": [2.59, 2.29, 9.99],
                                   "valid_from": [datetime(2025, 1, 2, 8), datetime(2025, 1, 2, 12),
                                                  datetime(2025, 1, 2, 8)]}))
    lines = pl.DataFrame({
        "line": [0, 1, 2, 3, 4, 5, 6, 7],
        "store_product_id": [3, 1, None, 2, 99, 4, 1, 0],
        "priced_at": [datetime(2025, 1, 2, 9), datetime(2025, 1, 2, 13), datetime(2025, 1, 2, 9), None,
                      datetime(2025, 1, 2, 9), datetime(2025, 1, 2, 9), datetime(2025, 1, 2, 9), datetime(2025, 1, 2, 9)],
        "unit_price": [9.99, 2.59, 1.00, 5.99, 1.00, 1.49, 2.59, 1.00]})
    wrong = price_mismatches(lines, book, "priced_at")
    assert wrong["line"].to_list() == [1, 5, 0, 2, 4, 7]
    assert wrong["price_in_effect"].to_list() == [2.29, 1.50, None, None, None, None]
    assert price_mismatches(lines.filter(pl.col("line").is_in([3, 6])), book, "priced_at").height == 0


@pytest.mark.parametrize("field, value, message", [
    ("price_tick_cron", "0 9-17 * * *", "uneven"),
    ("price_tick_cron", "30 * * * *", "00:00"),
    ("price_change_rate", "HIGH=0.5,MEDIUM=0.1", "LOW, VERY_LOW"),
    ("price_volatility", "PRODUCE=0.8", "CLASS=number"),
    ("price_rush_hours", "7-7", "hour range"),
    ("price_discount_depth", "0.2-0.1", "range of fractions"),
    ("price_cost_share", "0.5-1.0", "strictly between"),
    ("price_max_change", "0.9", "out of range"),
])
def test_bad_pricing_settings_fail_naming_the_setting(field, value, message):
    with pytest.raises(SettingsError, match=message) as error:
        load_settings(env={}, **{field: value})
    assert field in str(error.value)


def test_tick_grid_follows_the_cron():
    rules = _rules(price_tick_cron="*/15 * * * *")
    ticks = rules.ticks_of(DAY)
    assert len(ticks) == 96 and ticks[1] - ticks[0] == timedelta(minutes=15)


def test_store_list_prices_follow_store_format_and_stay_within_the_spread(tiny_day):
    from grocery_pipeline.simulation import catalog

    products = catalog.generate_products(tiny_day)
    banner = tiny_day.dictionaries.banners.filter(pl.col("price_index") == 1.0)["banner"][0]
    stores = pl.DataFrame({"store_id": [1, 2, 3], "traffic_weight": [1.0, 1.0, 1.0],
                           "profile": ["FLAGSHIP", "LOW", "KIOSK"], "banner": [banner] * 3,
                           "business_date": [tiny_day.business_date] * 3})
    listed = catalog.generate_store_products(tiny_day, stores, products).join(
        products.select("product_id", "base_price", "msrp", "unit_cost"), on="product_id")
    ratio = dict(listed.group_by("store_id").agg((pl.col("list_price") / pl.col("base_price")).mean()).iter_rows())
    assert ratio[1] > ratio[2] and ratio[3] > ratio[2]  # flagship and kiosk above the low-price format
    assert ((listed["list_price"] - listed["base_price"]).abs() <= 0.15 * listed["base_price"] + 0.005).all()
    share = listed["unit_cost"] / listed["list_price"]
    assert share.min() >= 0.50 and share.max() <= 0.85
    same_product = listed.filter(pl.col("product_id").is_in(listed.filter(pl.col("store_id") == 3)["product_id"].implode()))
    assert same_product.group_by("product_id").agg(pl.col("list_price").n_unique())["list_price"].mean() > 1.5
