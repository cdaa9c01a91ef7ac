"""Audits: money to the cent. A line charges quantity x unit price less its discount, a basket's
subtotal is the sum of its lines and its total is what the customer paid; every basket has at
least one line, and every line is priced at the shelf price in effect when it was sold."""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from
from grocery_pipeline.checks.pricing import line_prices_match
from grocery_pipeline.simulation.shopping import strictly_increasing

# Amounts are rounded to cents; anything more than half a cent apart is a different amount.
HALF_CENT = 0.005 + 1e-9


def off_by_a_cent(amount: pl.Expr, expected: pl.Expr) -> pl.Expr:
    return (amount - expected).abs() > HALF_CENT


def _not_in_cents(*columns: str) -> pl.Expr:
    return pl.any_horizontal(((pl.col(c) * 100).round(0) - pl.col(c) * 100).abs() > 1e-6 for c in columns)


def _line_totals(table: str, min_quantity: int, key: list[str]):
    def run(ctx: AuditContext) -> Finding:
        lines = ctx.frame(table)
        charged = pl.col("quantity") * pl.col("unit_price") - pl.col("discount")
        wrong_total = off_by_a_cent(pl.col("line_total"), charged)
        bad_amounts = ((pl.col("quantity") < min_quantity) | (pl.col("unit_price") <= 0)
                       | (pl.col("discount") < 0) | (pl.col("line_total") < -HALF_CENT)
                       | _not_in_cents("unit_price", "discount", "line_total"))
        offenders = lines.filter(wrong_total | bad_amounts)
        # every line with a wrong total offends: counted among the offenders, not all the lines
        return finding_from(offenders, key, wrong_line_total=offenders.filter(wrong_total).height,
                            lines_checked=lines.height)
    return run


def basket_totals(baskets: pl.DataFrame, lines: pl.DataFrame | None, key: str,
                  extras: tuple[str, ...] = ()) -> pl.DataFrame:
    """Baskets whose money does not add up to the cent: subtotal = sum of the lines' totals,
    total = subtotal - basket_discount + tax (+ extras such as delivery fee and tip), line and
    item counts match the lines, and every basket has at least one line. Lines written in basket
    order are summed by runs first; only when that finds an offender (or cannot tell) do the
    group-by and join list the offenders."""
    if lines is None:
        lines = pl.DataFrame(schema={key: pl.Int64, "quantity": pl.Int64, "line_total": pl.Float64})
    summed = _sums_in_order(baskets, lines, key)
    if summed is not None:
        offenders = _offending_baskets(summed, extras)
        if offenders.is_empty():
            return offenders
    sums = lines.group_by(key).agg(pl.len().alias("_lines"), pl.col("quantity").sum().alias("_units"),
                                   pl.col("line_total").sum().alias("_lines_total"))
    return _offending_baskets(baskets.join(sums, on=key, how="left"), extras)


def _sums_in_order(baskets: pl.DataFrame, lines: pl.DataFrame, key: str) -> pl.DataFrame | None:
    """The baskets with their lines' count, units and total, summed by runs of the lines when
    both are written in basket order (no group-by, no join); None when they are not, or when a
    null would need the group-by's own handling."""
    ids, basket_ids = lines[key], baskets[key]
    if not (ids.dtype.is_integer() and basket_ids.dtype.is_integer() and lines.height and baskets.height
            and lines["quantity"].dtype.is_integer() and lines["line_total"].dtype == pl.Float64) or any(
            lines[c].null_count() for c in (key, "quantity", "line_total")) or basket_ids.null_count():
        return None
    ids, basket_ids = ids.to_numpy(), basket_ids.to_numpy()
    if not ((ids[1:] >= ids[:-1]).all() and strictly_increasing(basket_ids)):
        return None
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    if len(starts) != len(basket_ids) or not np.array_equal(ids[starts], basket_ids):
        return None  # a basket without lines, or lines of no basket: the group-by and join say which
    return baskets.with_columns(
        _lines=pl.Series(np.diff(np.r_[starts, len(ids)]), dtype=pl.UInt32),
        _units=pl.Series(np.add.reduceat(lines["quantity"].to_numpy().astype(np.int64), starts)),
        _lines_total=pl.Series(np.add.reduceat(lines["line_total"].to_numpy(), starts)))


def _offending_baskets(joined: pl.DataFrame, extras: tuple[str, ...]) -> pl.DataFrame:
    paid = pl.col("subtotal") - pl.col("basket_discount") + pl.col("tax") + pl.sum_horizontal(
        [pl.col(c) for c in extras] or [pl.lit(0.0)])
    amounts = ("subtotal", "basket_discount", "tax", "total", *extras)
    return joined.filter(
        pl.col("_lines").is_null()
        | (pl.col("line_count") != pl.col("_lines"))
        | (pl.col("item_count") != pl.col("_units"))
        | off_by_a_cent(pl.col("subtotal"), pl.col("_lines_total"))
        | off_by_a_cent(pl.col("total"), paid)
        | pl.any_horizontal(pl.col(c) < 0 for c in amounts)
        | _not_in_cents(*amounts)
    )


def _receipts(ctx: AuditContext) -> Finding:
    receipts = ctx.frame("receipts")
    offenders = basket_totals(receipts, ctx.same_day("receipt_lines"), "receipt_id")
    return finding_from(offenders, "receipt_id", without_lines=offenders.filter(pl.col("_lines").is_null()).height,
                        receipts_checked=receipts.height)


def _orders(ctx: AuditContext) -> Finding:
    orders = ctx.frame("orders")
    offenders = basket_totals(orders, ctx.same_day("order_items"), "order_id", ("delivery_fee", "tip"))
    # a cancelled order keeps its item rows but charges nothing
    money = ("subtotal", "basket_discount", "tax", "delivery_fee", "tip", "total")
    charged_cancelled = orders.filter((pl.col("status") == "CANCELLED")
                                      & pl.any_horizontal(pl.col(c).abs() > HALF_CENT for c in money))
    offenders = pl.concat([offenders.select(orders.columns), charged_cancelled]).unique("order_id", keep="first",
                                                                                        maintain_order=True)
    return finding_from(offenders, "order_id", charged_while_cancelled=charged_cancelled.height,
                        orders_checked=orders.height)


def _price_in_effect(table: str):
    return lambda ctx: line_prices_match(ctx, table)


AUDITS: list[Audit] = [
    Audit("receipt_lines_line_total_to_the_cent", "receipt_lines",
          "Every receipt line charges quantity x unit price - discount, to the cent, for at least one unit.",
          _line_totals("receipt_lines", 1, ["receipt_id", "line_number"])),
    Audit("order_items_line_total_to_the_cent", "order_items",
          "Every order item charges delivered quantity x unit price - discount, to the cent.",
          _line_totals("order_items", 0, ["order_id", "line_number"])),
    Audit("receipts_totals_to_the_cent", "receipts",
          "Every receipt has at least one line; subtotal = sum of its line totals and "
          "total = subtotal - basket_discount + tax, to the cent; line and item counts match its lines.",
          _receipts),
    Audit("orders_totals_to_the_cent", "orders",
          "Every order has at least one item; subtotal = sum of its item totals and total = subtotal - "
          "basket_discount + tax + delivery_fee + tip, to the cent; a cancelled order charges nothing.",
          _orders),
    Audit("receipt_lines_price_in_effect", "receipt_lines",
          "Every receipt line's unit price is the shelf price in effect at checkout (opening price "
          "overridden by the day's price ticks).", _price_in_effect("receipt_lines")),
    Audit("order_items_price_in_effect", "order_items",
          "Every order item's unit price is the shelf price in effect when the order was placed.",
          _price_in_effect("order_items")),
]
