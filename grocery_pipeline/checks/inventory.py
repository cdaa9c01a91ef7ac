"""Audits: stock. On-hand is never negative; each day's closing stock is the previous day's
closing stock plus that day's movements, for every store product and every DC product; movements
carry the sign their type implies; and the store's sales movements are exactly what the receipts
and delivered orders took off the shelf.

Conservation reads only the audited day and the previous day's published closing stock, so a
check costs the same on day 365 as on day 1.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from, packed_sort
from grocery_pipeline.simulation.shopping import IdRows
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


def _integers(frame: pl.DataFrame, *columns: str) -> bool:
    """Whether the columns are integers without nulls."""
    return all(frame[c].dtype.is_integer() and not frame[c].null_count() for c in columns)


def balances(today: pl.DataFrame, previous: pl.DataFrame, opening: Callable[[pl.DataFrame], pl.DataFrame],
             moves: pl.DataFrame, key: list[str]) -> bool:
    """Whether `conservation_breaks` would find nothing, decided cheaply in the common case: a
    one-column integer key, unique in today's and yesterday's stock and clustered enough for a
    table of today's rows by id (`IdRows`), so yesterday's rows and the movements find their row
    today by lookups, with no sort or join of the millions of rows; the rows left over are the new
    items. False when unsure."""
    if len(key) != 1:
        return False
    k = key[0]
    if not (_integers(today, k, "on_hand") and _integers(previous, k, "on_hand") and _integers(moves, k, "quantity")):
        return False
    ids = today[k].to_numpy()
    table = IdRows.of(ids)
    if table is None:
        return False  # an id repeats, or the ids are too scattered for a table
    before = table.rows_if_present(previous[k].to_numpy())
    if before is None:
        return False  # a row of yesterday has no row today
    new = np.ones(len(ids), dtype=bool)
    new[before] = False
    if len(ids) - np.count_nonzero(new) != len(before):
        return False  # an id repeats in yesterday's stock
    stock = np.zeros(len(ids), dtype=np.int64)
    stock[before] = previous["on_hand"].to_numpy()
    del before
    fresh = np.flatnonzero(new)
    if len(fresh):
        fresh = fresh[np.argsort(ids[fresh])]  # the new items in id order
        new_items = pl.DataFrame({k: ids[fresh]}, schema={k: today[k].dtype})
        initial = opening(new_items).select(k, "initial")
        if initial.height != new_items.height or not _integers(initial, k, "initial"):
            return False
        initial = initial.sort(k)
        if not np.array_equal(initial[k].to_numpy(), new_items[k].to_numpy()):
            return False
        stock[fresh] = initial["initial"].to_numpy()
    moved = table.rows_if_present(moves[k].to_numpy())
    if moved is None:
        return False  # a movement of an item with no row today
    np.add.at(stock, moved, moves["quantity"].to_numpy().astype(np.int64, copy=False))  # exact, in place
    return bool(np.array_equal(today["on_hand"].to_numpy(), stock))


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
