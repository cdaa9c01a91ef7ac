"""The audits' shortcuts against their plain definitions, on data large enough to reach every
branch (yesterday's rows with and without new items, small and huge quantities)."""

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.checks.inventory import balances, conservation_breaks
from grocery_pipeline.simulation.shopping import IdRows

KEY = ["store_product_id"]


def _stock(rng: np.random.Generator, n: int, new: int, moves: int, big: bool = False) -> dict[str, pl.DataFrame]:
    """Two days of stock that balance: n items yesterday, `new` more today (ids in ranges of a million,
    as store product ids are), and the day's movements (huge quantities when `big`)."""
    store = rng.choice(np.arange(1, 1_000) * 10 ** 6, 40, replace=False)
    product = rng.choice(40 * 1_000, n + new, replace=False)  # about half of a thousand products each
    ids = np.sort(store[product // 1_000] + product % 1_000 + 1)
    fresh = np.zeros(n + new, dtype=bool)
    fresh[rng.choice(n + new, new, replace=False)] = True
    previous = pl.DataFrame({"store_product_id": ids[~fresh], "on_hand": rng.integers(0, 50, n)})
    opening = pl.DataFrame({"store_product_id": ids[fresh], "initial": rng.integers(0, 9, new)})
    quantity = rng.integers(-2 ** 40, 2 ** 40, moves) if big else rng.integers(-30, 31, moves)
    moved = pl.DataFrame({"store_product_id": rng.choice(ids, moves), "quantity": quantity})
    sums = moved.group_by(KEY).agg(pl.col("quantity").sum())
    today = (pl.concat([previous, opening.rename({"initial": "on_hand"})]).join(sums, on=KEY, how="left")
             .select(*KEY, pl.col("on_hand") + pl.col("quantity").fill_null(0)).sort(KEY))
    return {"today": today, "previous": previous, "opening": opening, "moves": moved}


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("big", [False, True])
def test_conservation_shortcut_agrees_with_the_plain_check_at_scale(seed, big):
    rng = np.random.default_rng(seed)
    day = _stock(rng, 20_000, 300 if seed else 0, 30_000, big)
    today, previous, opening, moves = day["today"], day["previous"], day["opening"], day["moves"]
    row = pl.int_range(pl.len()) == int(rng.integers(0, today.height))
    variants = {
        "sound": (today, previous, moves),
        "one unit off": (today.with_columns(on_hand=pl.col("on_hand") + row), previous, moves),
        "row dropped": (today.filter(~row), previous, moves),
        "yesterday's row missing today": (today.filter(~pl.col("store_product_id").is_in(
            previous["store_product_id"].gather([int(rng.integers(0, previous.height))]).implode())), previous, moves),
        "movement of an unknown item": (today, previous, pl.concat([moves, pl.DataFrame(
            {"store_product_id": [7], "quantity": [1]})])),
        "one movement changed": (today, previous, moves.with_columns(
            quantity=pl.col("quantity") + (pl.int_range(pl.len()) == 0))),
    }
    for name, (t, p, m) in variants.items():
        new = t.join(p, on=KEY, how="anti").select(KEY)
        breaks = conservation_breaks(t, p, opening.join(new, on=KEY, how="semi"), m, KEY)
        fast = balances(t, p, lambda items: opening.join(items, on=KEY, how="semi"), m, KEY)
        assert fast == breaks.is_empty(), name
        assert fast == (name == "sound"), name


@pytest.mark.parametrize("seed", range(4))
def test_id_rows_find_each_id_of_clustered_ids_or_minus_one(seed):
    rng = np.random.default_rng(seed)
    # store product ids: a range of a million per store, a few thousand products each
    ids = np.concatenate([s * 10 ** 6 + np.sort(rng.choice(9_000, 6_000, replace=False)) + 1
                          for s in rng.choice(np.arange(1, 900), 40, replace=False)])
    rng.shuffle(ids)
    table = IdRows.of(ids)
    assert table is not None and len(table.table) <= 2 * len(ids)
    asked = np.r_[ids[rng.choice(len(ids), 5_000)], ids.min() - 1, ids.max() + 1, 10 ** 12, -5, ids[0] + 500_000]
    expected = {int(i): row for row, i in enumerate(ids)}
    assert table.rows(asked).tolist() == [expected.get(int(i), -1) for i in asked]
    assert np.array_equal(table.rows_if_present(ids[::-1]), np.arange(len(ids))[::-1])
    assert table.rows_if_present(asked) is None
    in_order = np.sort(ids)
    rank = {int(i): row for row, i in enumerate(in_order)}
    assert IdRows.of(in_order).rows(asked).tolist() == [rank.get(int(i), -1) for i in asked]
    assert IdRows.of(np.r_[ids, ids[7]]) is None  # an id twice
    assert IdRows.of(np.sort(np.r_[ids, ids[7]])) is None
    assert IdRows.of(rng.choice(10 ** 12, 100_000, replace=False)) is None  # too scattered
    assert IdRows.of(np.zeros(0, dtype=np.int64)) is None


def test_id_rows_of_ids_over_a_range_past_32_bits_use_64_bit_slots():
    rng = np.random.default_rng(9)
    ids = np.concatenate([c * 2 ** 28 + np.sort(rng.choice(4_000, 3_000, replace=False)) for c in range(12)])
    rng.shuffle(ids)
    table = IdRows.of(ids)
    assert table is not None and table.table.dtype == np.int64
    asked = np.r_[ids[:500], ids.max() + 1, -1, 2 ** 28 + 3_999 + 1]
    expected = {int(i): row for row, i in enumerate(ids)}
    assert table.rows(asked).tolist() == [expected.get(int(i), -1) for i in asked]


def _plain_basket_totals(baskets: pl.DataFrame, lines: pl.DataFrame, key: str) -> pl.DataFrame:
    from grocery_pipeline.checks.totals import _offending_baskets

    sums = lines.group_by(key).agg(pl.len().alias("_lines"), pl.col("quantity").sum().alias("_units"),
                                   pl.col("line_total").sum().alias("_lines_total"))
    return _offending_baskets(baskets.join(sums, on=key, how="left"), ())


@pytest.mark.parametrize("seed", range(3))
def test_basket_totals_by_runs_find_what_the_group_by_finds(seed):
    from grocery_pipeline.checks.totals import basket_totals

    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 12, 500)
    ids = np.repeat(np.arange(1, 501) * 3, counts)
    lines = pl.DataFrame({"receipt_id": ids, "quantity": rng.integers(1, 4, len(ids)),
                          "line_total": rng.integers(1, 900, len(ids)) / 100})
    sums = lines.group_by("receipt_id").agg(pl.len(), pl.col("quantity").sum(), pl.col("line_total").sum())
    baskets = (sums.sort("receipt_id").select("receipt_id", line_count=pl.col("len"), item_count="quantity",
                                              subtotal=pl.col("line_total").round(2))
               .with_columns(basket_discount=pl.lit(0.0), tax=pl.lit(0.5), total=pl.col("subtotal") + 0.5))
    row = pl.int_range(pl.len()) == int(rng.integers(0, 400))
    variants = {
        "sound": (baskets, lines),
        "a line a cent off": (baskets, lines.with_columns(line_total=pl.col("line_total") + row * 0.01)),
        "a line dropped": (baskets, lines.filter(~row)),
        "a basket without lines": (baskets, lines.filter(pl.col("receipt_id") != baskets["receipt_id"][7])),
        "lines of no basket": (baskets.filter(~row), lines),
        "lines out of order": (baskets.with_columns(tax=pl.col("tax") + row), lines.reverse()),
        "a null unit count": (baskets, lines.with_columns(quantity=pl.when(row).then(None).otherwise("quantity"))),
    }
    for name, (b, l) in variants.items():
        fast, plain = basket_totals(b, l, "receipt_id"), _plain_basket_totals(b, l, "receipt_id")
        assert fast.equals(plain), name
        assert fast.is_empty() == (name in ("sound", "lines of no basket")), name  # baskets only offend


@pytest.mark.parametrize("duplicated", [False, True])
def test_produce_share_without_the_join_is_the_joined_share(duplicated, monkeypatch):
    from grocery_pipeline.checks import realism

    rng = np.random.default_rng(5)
    products = pl.DataFrame({"product_id": np.arange(1, 201),
                             "department": pl.Series(rng.choice(["Produce", "Dairy", "Bakery"], 200)).scatter([3, 4], None)})
    if duplicated:  # a product listed twice: its lines count twice, as the join counts them
        products = pl.concat([products, products.filter(pl.col("department") == "Produce").head(3)])
    lines = pl.DataFrame({"product_id": pl.Series(rng.integers(0, 230, 5_000)).scatter([0, 9], None),
                          "line_total": rng.integers(1, 5_000, 5_000) / 100, "promotion_id": None})
    monkeypatch.setattr(realism, "_sold_lines", lambda ctx: lines)
    monkeypatch.setattr(realism, "_as_of", lambda ctx, table: products)
    joined = lines.join(products, on="product_id", how="left")
    expected = joined.filter(pl.col("department") == "Produce")["line_total"].sum() / joined["line_total"].sum()
    assert realism._produce_share(None) == (expected, joined.height)


def _sorted_by_expression(frame: pl.DataFrame, key: tuple[str, ...]) -> bool:
    above = pl.lit(False)
    for column in reversed(key):
        previous = pl.col(column).shift(1)
        above = (pl.col(column) > previous) | ((pl.col(column) == previous) & above)
    return frame.select(above.fill_null(True).all()).item()


@pytest.mark.parametrize("seed", range(6))
def test_strictly_sorted_in_numpy_is_the_expression(seed):
    from datetime import date, timedelta

    from grocery_pipeline.checks.keys import _strictly_sorted

    rng = np.random.default_rng(seed)
    n = 300
    frame = pl.DataFrame({"id": np.sort(rng.integers(0, 60, n)), "line": rng.integers(0, 4, n).astype(np.uint32),
                          "day": [date(2025, 1, 1) + timedelta(days=int(x)) for x in rng.integers(0, 3, n)]})
    ordered = frame.sort("id", "line", "day").unique(maintain_order=True)
    for f in (frame, ordered, ordered.reverse(), ordered.head(1), ordered.head(0)):
        for key in (("id",), ("id", "line"), ("id", "line", "day"), ("line", "id"), ("day",)):
            assert _strictly_sorted(f, key) == _sorted_by_expression(f, key), key
    assert _strictly_sorted(ordered, ("id", "line", "day")) and not _strictly_sorted(frame.head(2).vstack(frame.head(1)), ("id",))


@pytest.mark.parametrize("ids", [[5, 5, 1, 9, 5, 1], [3], [2 ** 30, 7, 7], [None, 4, None, 4, 4]])
def test_counts_by_id_count_like_a_group_by(ids):
    from grocery_pipeline.checks.realism import _counts_by_id

    series = pl.Series("product_id", ids, dtype=pl.Int64)
    expected = series.to_frame().group_by("product_id").len()["len"].sort().to_list()
    assert sorted(_counts_by_id(series).tolist()) == expected
    assert len(_counts_by_id(series.drop_nulls())) == series.drop_nulls().n_unique()


@pytest.mark.parametrize("ids", [[9, 3, 3, 7, 1], [2 ** 62, 5, 1], [4, None, 2], []])
def test_sorted_changes_sort_like_the_frame(ids):
    from grocery_pipeline.checks.pricing import _sorted_changes

    changes = pl.DataFrame({"store_product_id": pl.Series(ids, dtype=pl.Int64),
                            "new_price": pl.Series(np.arange(len(ids)) + 0.5, dtype=pl.Float64)})
    got = _sorted_changes(changes)
    assert got["store_product_id"].to_list() == changes.sort("store_product_id")["store_product_id"].to_list()
    assert sorted(got.rows(), key=str) == sorted(changes.rows(), key=str)  # each price stays with its id


_SCATTERED = np.random.default_rng(3).integers(-2 ** 61, 2 ** 61, 500).tolist()   # test fixture values only


@pytest.mark.parametrize("values", [[5, 5, 1, 9, 5, 1], [3], [], [2 ** 40, -7, 7, -7], [4, None, 2], [2 ** 62, 0, 1],
                                    _SCATTERED, [v % 1000 for v in _SCATTERED], sorted(_SCATTERED)],
                         ids=["ties", "one", "none", "wide few runs", "null", "widest few runs", "wide many runs",
                              "narrow many runs", "wide sorted"])
def test_packed_sort_is_the_stable_argsort(values):
    """In many runs the values are packed with their rows (None when they span too wide a range),
    in a few runs merged."""
    from grocery_pipeline.checks import packed_sort

    series = pl.Series("id", values, dtype=pl.Int64)
    got = packed_sort(series)
    if None in values or values is _SCATTERED:
        assert got is None
        return
    order, sorted_values = got
    expected = np.argsort(np.array(values, dtype=np.int64), kind="stable")
    assert order.tolist() == expected.tolist()
    assert sorted_values.tolist() == sorted(values)


def _plain_wrong_signs(moves: pl.DataFrame, signs: dict[str, int]) -> pl.DataFrame:
    sign = pl.col("txn_type").replace_strict(signs, default=None, return_dtype=pl.Int64)
    return moves.filter(sign.is_null() | (pl.col("quantity") == 0)
                        | ((sign != 0) & (pl.col("quantity").sign() != sign)))


@pytest.mark.parametrize("seed", range(3))
def test_wrong_signs_is_the_sign_table(seed):
    from grocery_pipeline.checks.inventory import STORE_TXN_SIGNS, wrong_signs

    rng = np.random.default_rng(seed)
    n = 2_000
    types = pl.Series(rng.choice([*STORE_TXN_SIGNS, "REFUND"], n)).scatter(rng.choice(n, 20), None)
    quantity = pl.Series(rng.integers(-3, 4, n)).scatter(rng.choice(n, 20), None)
    moves = pl.DataFrame({"txn_id": np.arange(n), "txn_type": types, "quantity": quantity})
    found = wrong_signs(moves, STORE_TXN_SIGNS)
    assert found.equals(_plain_wrong_signs(moves, STORE_TXN_SIGNS))
    assert 0 < found.height < n
    sound = moves.filter(pl.col("txn_type").is_in(["SALE", "SHRINK"]) & (pl.col("quantity") < 0))
    assert wrong_signs(sound, STORE_TXN_SIGNS).is_empty()


@pytest.mark.parametrize("seed", range(3))
def test_rows_by_reference_are_the_stable_frame_sort(seed):
    from grocery_pipeline.checks.inventory import _by_reference

    rng = np.random.default_rng(seed)
    rows = pl.DataFrame({"order_id": rng.integers(0, 50, 500), "store_product_id": np.arange(500)})
    for frame in (rows, rows.sort("order_id"), rows.with_columns(rows["order_id"].scatter([3], None))):
        assert _by_reference(frame, "order_id").equals(frame.sort("order_id", maintain_order=True))


def test_sold_lines_are_the_lines_with_units_in_order():
    from types import SimpleNamespace

    from grocery_pipeline.checks.realism import _gather_sold_lines

    rng = np.random.default_rng(2)
    frames = {table: pl.DataFrame({"product_id": rng.integers(1, 50, 400), "quantity": pl.Series(
        rng.integers(-1, 3, 400)).scatter([5, 9], None), "line_total": rng.integers(0, 900, 400) / 100,
        "promotion_id": pl.Series(rng.integers(1, 9, 400)).scatter([1, 2, 3], None), "promo_code": "X"})
        for table in ("receipt_lines", "order_items")}
    ctx = SimpleNamespace(same_day=frames.get)
    expected = pl.concat([f.filter(pl.col("quantity") > 0).select("product_id", "line_total", "promotion_id")
                          for f in frames.values()])
    got = _gather_sold_lines(ctx)
    assert got.equals(expected) and 0 < got.height < 800


def test_wrong_line_totals_counted_among_the_offenders_are_all_of_them():
    from types import SimpleNamespace

    from grocery_pipeline.checks.totals import HALF_CENT, _line_totals

    rng = np.random.default_rng(4)
    n = 1_000
    quantity, price = rng.integers(1, 4, n), rng.integers(50, 900, n) / 100
    lines = pl.DataFrame({"receipt_id": np.arange(n), "quantity": quantity, "unit_price": price, "discount": 0.0,
                          "line_total": np.round(quantity * price, 2)})
    row = pl.int_range(pl.len())
    # a negative discount (charged as such) is a bad amount with a right total
    lines = lines.with_columns(line_total=pl.col("line_total") + (row % 97 == 3) * 0.02 + (row % 89 == 1) * 0.5,
                               discount=pl.when(row % 89 == 1).then(-0.5).otherwise("discount"),
                               quantity=pl.when(row == 7).then(None).otherwise("quantity"))
    found = _line_totals("receipt_lines", 1, ["receipt_id"])(SimpleNamespace(frame=lambda table: lines))
    charged = pl.col("quantity") * pl.col("unit_price") - pl.col("discount")
    wrong = lines.filter((pl.col("line_total") - charged).abs() > HALF_CENT).height
    assert found.detail["wrong_line_total"] == wrong > 0 and found.offending > wrong


def test_store_opening_stock_is_the_semi_join(monkeypatch):
    from datetime import date
    from types import SimpleNamespace

    from grocery_pipeline.checks import inventory

    rng = np.random.default_rng(6)
    ids = pl.Series(rng.choice(10 ** 6, 3_000, replace=False)).scatter([4, 8], None)
    listed = pl.DataFrame({"store_product_id": pl.concat([ids, ids.head(20)]), "store_id": 1,
                           "initial_on_hand": rng.integers(0, 40, 3_020)})
    monkeypatch.setattr(inventory, "scan_as_of_cached", lambda lake, table, day: listed.lazy())
    ctx = SimpleNamespace(lake=None, business_date=date(2025, 1, 3))
    new_items = pl.DataFrame({"store_product_id": pl.concat([ids.gather([3, 4, 10, 2_000]), pl.Series([-1])])})
    expected = listed.join(new_items, on="store_product_id", how="semi").select(
        "store_product_id", pl.col("initial_on_hand").alias("initial"))
    got = inventory._store_opening_stock(ctx, new_items)
    assert got.equals(expected) and got.height == 5  # each duplicated listing twice, the null never
