"""Audits: stock. On-hand is never negative; each day's closing stock is the previous day's
closing stock plus that day's movements, for every store product and every DC product; movements
carry the sign their type implies; and the store's sales movements are exactly what the receipts
and delivered orders took off the shelf.

Conservation reads only the audited day and the previous day's published closing stock, so a
check costs the same on day 365 as on day 1.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable

import numpy as np
import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from, packed_sort
from grocery_pipeline.simulation.shopping import rows_if_present, sorted_with_order, strictly_increasing
from grocery_pipeline.storage.lake import MissingPartitionError
from grocery_pipeline.storage.world import scan_as_of_cached

# The sign each movement type must carry (+1 adds stock, -1 takes it away, 0 either way).
STORE_TXN_SIGNS = {"SALE": -1, "ONLINE_SALE": -1, "RECEIVING": 1, "SHRINK": -1, "ADJUSTMENT": 0}
DC_TXN_SIGNS = {"SUPPLIER_RECEIPT": 1, "SHIPMENT_OUT": -1}


def _not_negative(table: str, key: list[str]):
    def run(ctx: AuditContext) -> Finding:
        stock = ctx.frame(table)
        offenders = stock.filter(pl.col("on_hand") < 0)
        lowest = stock["on_hand"].min() if stock.height else None
        return finding_from(offenders, key, lowest_on_hand=lowest)
    return run


def conservation_breaks(today: pl.DataFrame, previous: pl.DataFrame, opening: pl.DataFrame,
                        moves: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """Rows whose closing stock is not the opening stock plus the day's signed movements.

    `previous`: key, on_hand -- yesterday's close. `opening`: key, initial -- the opening stock of
    items with no row yesterday. `moves`: key, quantity -- the day's movements. Yesterday's rows
    missing today and movements of items with no row today offend as well (on_hand null)."""
    moved = moves.group_by(key).agg(pl.col("quantity").sum().alias("moved"))
    closing = today.select(*key, "on_hand")
    joined = (closing.join(previous.select(*key, pl.col("on_hand").alias("yesterday")), on=key, how="full",
                           coalesce=True)
              .join(opening.select(*key, "initial"), on=key, how="left")
              .join(moved, on=key, how="full", coalesce=True))
    expected = pl.coalesce("yesterday", "initial") + pl.col("moved").fill_null(0)
    return joined.with_columns(expected_on_hand=expected).filter(
        pl.col("on_hand").is_null() | pl.col("expected_on_hand").is_null()
        | (pl.col("on_hand") != pl.col("expected_on_hand")))


def _in_id_order(column: pl.Series) -> tuple[np.ndarray, np.ndarray | None] | None:
    """The values of an integer column with no nulls, sorted and unique, with the order that sorts
    them (None when they already are: a table written in key order); None when a value repeats
    or is null. A day simulated region by region is written region after region, each region's
    rows in key order."""
    if not column.dtype.is_integer() or column.null_count():
        return None
    values = column.to_numpy()
    if strictly_increasing(values):
        return values, None
    values = values.astype(np.int64)  # a copy, sorted in place
    order = sorted_with_order(values)
    return (values, order) if strictly_increasing(values) else None


def _on_hand(frame: pl.DataFrame, order: np.ndarray | None) -> np.ndarray:
    on_hand = frame["on_hand"].to_numpy()
    return on_hand if order is None else on_hand[order]


def _sorted_by_id(ids: np.ndarray, quantity: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The movements ordered by id. When id and quantity fit one int64 together (offsets from their
    minimum), one plain sort of the packed pairs does it, several times cheaper than an argsort
    and two gathers; the order among equal ids does not matter to a sum."""
    low, q_low = int(ids.min()), int(quantity.min())
    bits = (int(quantity.max()) - q_low).bit_length()
    if (int(ids.max()) - low).bit_length() + bits > 62:
        order = np.argsort(ids)
        return ids[order], quantity[order].astype(np.int64)
    packed = ((ids.astype(np.int64) - low) << bits) | (quantity.astype(np.int64) - q_low)
    packed.sort()
    return (packed >> bits) + low, (packed & ((1 << bits) - 1)) + q_low


def _moves_by_id(moves: pl.DataFrame, k: str) -> tuple[np.ndarray, np.ndarray] | None:
    """The day's movements summed by id: the ids moved (sorted, unique) and their sums, by one
    sort of the movements instead of a group-by; None when an id or a quantity is null."""
    if moves[k].null_count() or moves["quantity"].null_count() or not (
            moves[k].dtype.is_integer() and moves["quantity"].dtype.is_integer()):
        return None
    if not moves.height:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    ids, quantity = _sorted_by_id(moves[k].to_numpy(), moves["quantity"].to_numpy())
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    return ids[starts], np.add.reduceat(quantity, starts)


def _moved_by_row(items: np.ndarray, moves: pl.DataFrame | tuple[np.ndarray, np.ndarray] | None, k: str,
                  into: np.ndarray | None = None) -> np.ndarray | None:
    """The day's movements (or their `_moves_by_id`) summed for each of `items` (sorted, unique ids),
    added to `into` (int64, one per item, updated in place: no day-sized array of its own) or to
    zeros; None when a movement has no item (or is null)."""
    summed = _moves_by_id(moves, k) if isinstance(moves, pl.DataFrame) else moves
    if summed is None:
        return None
    moved = np.zeros(len(items), dtype=np.int64) if into is None else into
    ids, sums = summed
    if not len(ids):
        return moved
    rows = rows_if_present(items, ids)
    if rows is None:
        return None
    moved[rows] += sums  # rows are unique: one addition each
    return moved


def _rows_of(items: np.ndarray, found: np.ndarray, block: int = 64) -> np.ndarray | None:
    """Where each of `found` sits in `items` (both strictly increasing), or None when one is
    missing. A binary search per block of `found` gives how many items the block skips; only
    the few blocks with an item inserted inside are searched row by row, which costs far less
    than a binary search per row over millions of rows."""
    if not (len(found) and len(items)):
        return rows_if_present(items, found)
    skipped = np.searchsorted(items, found[::block]) - np.arange(0, len(found), block)
    rows = np.repeat(skipped, block)[:len(found)]
    rows += np.arange(len(found))  # in place: each day-sized array costs fresh memory
    np.minimum(rows, len(items) - 1, out=rows)
    off = np.flatnonzero(items[rows] != found)
    if len(off):
        searched = rows_if_present(items, found[off])
        if searched is None:
            return None
        rows[off] = searched
    return rows


def _integers(frame: pl.DataFrame, *columns: str) -> bool:
    """Whether the columns are integers without nulls."""
    return all(frame[c].dtype.is_integer() and not frame[c].null_count() for c in columns)


def balances(today: pl.DataFrame, previous: pl.DataFrame, opening: Callable[[pl.DataFrame], pl.DataFrame],
             moves: pl.DataFrame, key: list[str]) -> bool:
    """Whether `conservation_breaks` would find nothing, decided cheaply in the common case: a
    one-column key, unique in today's and yesterday's stock, so yesterday's rows are found in
    today's by a binary search of sorted ids, new items are the rows left over and the movements
    are summed by item in numpy. False when unsure."""
    if len(key) != 1:
        return False
    k = key[0]
    # yesterday's ids and the movements are sorted beside today's ids (an xl day ends on this audit)
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="conservation") as pool:
        earlier = pool.submit(_in_id_order, previous[k])
        summed = pool.submit(_moves_by_id, moves, k)
        today_ids = _in_id_order(today[k])
        previous_ids, summed = earlier.result(), summed.result()
    if today_ids is None or previous_ids is None or not (_integers(today, "on_hand") and _integers(previous, "on_hand")):
        return False
    (items, order), (before, previous_order) = today_ids, previous_ids
    rows = _rows_of(items, before)
    if rows is None:
        return False  # a row of yesterday has no row today
    stock = np.zeros(len(items), dtype=np.int64)
    stock[rows] = _on_hand(previous, previous_order)
    new = np.ones(len(items), dtype=bool)
    new[rows] = False
    if new.any():
        new_items = pl.DataFrame({k: items[new]}, schema={k: today[k].dtype})
        initial = opening(new_items).select(k, "initial")
        if initial.height != new_items.height or not _integers(initial, k, "initial"):
            return False
        initial = initial.sort(k)
        if not np.array_equal(initial[k].to_numpy(), new_items[k].to_numpy()):
            return False
        stock[new] = initial["initial"].to_numpy()
    if _moved_by_row(items, summed, k, into=stock) is None:
        return False
    return bool(np.array_equal(_on_hand(today, order), stock))


def _previous_close(ctx: AuditContext, table: str, key: list[str]) -> pl.DataFrame | None:
    previous = ctx.previous_day(table, [*key, "on_hand"])
    if previous is None and ctx.business_date > ctx.settings.start_date:
        return None  # the chain is broken: nothing to conserve against
    return previous if previous is not None else pl.DataFrame(
        schema={**{k: pl.Int64 for k in key}, "on_hand": pl.Int64})


def _store_opening_stock(ctx: AuditContext, new_items: pl.DataFrame) -> pl.DataFrame:
    """initial_on_hand of the store products that had no closing stock yesterday."""
    if new_items.is_empty():
        return pl.DataFrame(schema={"store_product_id": pl.Int64, "initial": pl.Int64})
    try:
        listed = scan_as_of_cached(ctx.lake, "store_products", ctx.business_date)
    except MissingPartitionError:
        listed = pl.LazyFrame(schema={"store_product_id": pl.Int64, "initial_on_hand": pl.Int64})
    # the few new ids hashed and every listed id looked up costs less than a semi join
    return listed.select("store_product_id", pl.col("initial_on_hand").alias("initial")).filter(
        pl.col("store_product_id").is_in(new_items["store_product_id"].implode())).collect()


def _dc_opening_stock(ctx: AuditContext, new_items: pl.DataFrame) -> pl.DataFrame:
    # a DC product's first day opens empty: its first supplier receipt fills it
    return new_items.with_columns(initial=pl.lit(0, pl.Int64))


def _conserved(stock: str, movements: str, key: list[str],
               opening_stock: Callable[[AuditContext, pl.DataFrame], pl.DataFrame]):
    def run(ctx: AuditContext) -> Finding:
        today = ctx.frame(stock)
        previous = _previous_close(ctx, stock, key)
        if previous is None:
            return finding_from(today, key, reason=f"the previous day's {stock} is not published")
        moves = ctx.same_day(movements)
        moves = moves.select(*key, "quantity") if moves is not None else pl.DataFrame(
            schema={**{k: pl.Int64 for k in key}, "quantity": pl.Int64})
        if balances(today, previous, lambda new_items: opening_stock(ctx, new_items), moves, key):
            offenders = today.clear()
        else:
            new_items = today.join(previous, on=key, how="anti").select(key)
            offenders = conservation_breaks(today, previous, opening_stock(ctx, new_items), moves, key)
        return finding_from(offenders, key, rows_checked=today.height,
                            dropped_rows=offenders.filter(pl.col("on_hand").is_null()).height)
    return run


def wrong_signs(moves: pl.DataFrame, signs: dict[str, int]) -> pl.DataFrame:
    """Movements of no known type, of no quantity, or whose quantity has not the sign of their type.
    A few string comparisons (one per movement type) cost less than a lookup per row."""
    def one_of(types) -> pl.Expr:
        matched = pl.lit(False)
        for txn_type in types:
            matched = matched | (pl.col("txn_type") == txn_type)
        return matched.fill_null(False)

    quantity = pl.col("quantity")
    taking = one_of(t for t, sign in signs.items() if sign < 0)
    adding = one_of(t for t, sign in signs.items() if sign > 0)
    return moves.filter(~one_of(signs) | (quantity == 0) | (taking & (quantity > 0)) | (adding & (quantity < 0)))


def _signed(table: str, signs: dict[str, int]):
    def run(ctx: AuditContext) -> Finding:
        offenders = wrong_signs(ctx.frame(table), signs)
        return finding_from(offenders, "txn_id", by_type=dict(offenders.group_by("txn_type").len().rows()))
    return run


def _by_reference(rows: pl.DataFrame, reference: str) -> pl.DataFrame:
    """The rows stably sorted by basket: as they are when they already are, else by a packed sort."""
    baskets = rows[reference]
    if not baskets.null_count() and baskets.is_sorted():
        return rows
    sorted_ = packed_sort(baskets)
    # gathered from one chunk: a gather across many chunks (a filtered or concatenated frame) is slower
    return rows.sort(reference, maintain_order=True) if sorted_ is None else rows.rechunk()[sorted_[0]]


def _same_rows(sold: pl.DataFrame, taken: pl.DataFrame, reference: str) -> bool:
    """Whether the lines and the movements are the very same (basket, store product, units) rows,
    in the same order or once both are stably sorted by basket: then every pair sums alike, which
    is the common case and costs a scan instead of two group-bys and a join. Null never equals."""
    if sold.height != taken.height:
        return False
    if sold.equals(taken, null_equal=False):
        return True
    return _by_reference(sold, reference).equals(_by_reference(taken, reference), null_equal=False)


def sales_mismatches(moves: pl.DataFrame, lines: pl.DataFrame | None, txn_type: str, reference: str) -> pl.DataFrame:
    """(basket, store product) pairs whose sale movement is not minus the units on the basket's lines."""
    key = [reference, "store_product_id"]
    sold = (lines if lines is not None else pl.DataFrame(schema={reference: pl.Int64, "store_product_id": pl.Int64,
                                                                 "quantity": pl.Int64}))
    sold = sold.select(*key, "quantity").filter(pl.col("quantity") > 0)
    # the movements' other columns are not gathered by the filter
    taken = moves.select(pl.col("reference_id").alias(reference), "store_product_id", -pl.col("quantity")).filter(
        moves["txn_type"] == txn_type)
    if _same_rows(sold, taken, reference):
        sold, taken = sold.clear(), taken.clear()  # every pair sums alike: nothing can offend
    sold = sold.group_by(key).agg(pl.col("quantity").sum().alias("sold"))
    taken = taken.group_by(key).agg(pl.col("quantity").sum().alias("taken"))
    joined = sold.join(taken, on=key, how="full", coalesce=True)
    return joined.filter(pl.col("sold").is_null() | pl.col("taken").is_null() | (pl.col("sold") != pl.col("taken")))


def _sales_match_baskets(ctx: AuditContext) -> Finding:
    moves = ctx.frame("store_inventory_txn")
    in_store = sales_mismatches(moves, ctx.same_day("receipt_lines"), "SALE", "receipt_id")
    online = sales_mismatches(moves, ctx.same_day("order_items"), "ONLINE_SALE", "order_id")
    offenders = pl.concat([in_store.rename({"receipt_id": "reference_id"}),
                           online.rename({"order_id": "reference_id"})])
    return finding_from(offenders, ["reference_id", "store_product_id"],
                        receipts_mismatched=in_store.height, orders_mismatched=online.height)


AUDITS: list[Audit] = [
    Audit("store_inventory_on_hand_not_negative", "store_inventory",
          "No store product ends the day with negative stock.",
          _not_negative("store_inventory", ["store_product_id"])),
    Audit("dc_inventory_on_hand_not_negative", "dc_inventory",
          "No distribution-center product ends the day with negative stock.",
          _not_negative("dc_inventory", ["dc_id", "product_id"])),
    Audit("store_inventory_conserved", "store_inventory",
          "Closing stock = previous day's closing stock (or initial_on_hand on a product's first day) "
          "+ the day's store_inventory_txn, for every store product; no row disappears.",
          _conserved("store_inventory", "store_inventory_txn", ["store_product_id"], _store_opening_stock),
          day_reads={"store_inventory": ("store_product_id", "on_hand"),
                     "store_inventory_txn": ("store_product_id", "quantity")}),
    Audit("dc_inventory_conserved", "dc_inventory",
          "Closing stock = previous day's closing stock (0 on a product's first day) + the day's "
          "dc_inventory_txn, for every DC product; no row disappears.",
          _conserved("dc_inventory", "dc_inventory_txn", ["dc_id", "product_id"], _dc_opening_stock),
          day_reads={"dc_inventory": ("dc_id", "product_id", "on_hand"),
                     "dc_inventory_txn": ("dc_id", "product_id", "quantity")}),
    Audit("store_inventory_txn_signed_by_type", "store_inventory_txn",
          "Sales, online sales and shrink take stock off (negative), receiving adds it (positive), "
          "adjustments are non-zero; no other movement type.", _signed("store_inventory_txn", STORE_TXN_SIGNS)),
    Audit("dc_inventory_txn_signed_by_type", "dc_inventory_txn",
          "Supplier receipts add stock, shipments out take it off; no other movement type.",
          _signed("dc_inventory_txn", DC_TXN_SIGNS)),
    Audit("store_inventory_txn_matches_sales", "store_inventory_txn",
          "The SALE movements of each receipt and the ONLINE_SALE movements of each order take off "
          "the shelf exactly the units on its lines, store product by store product.", _sales_match_baskets),
]
