"""Audits: pricing. Every shelf price sits above unit cost and at most MSRP, a tick moves a price
by at most the configured bound, store list prices stay within the configured spread of the chain
base price, and (for the fact tables) a sold line's unit price is the price in effect when sold."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from, packed_sort
from grocery_pipeline.simulation.pricing import price_mismatches
from grocery_pipeline.simulation.shopping import gather_rows
from grocery_pipeline.storage.lake import MissingPartitionError
from grocery_pipeline.storage.prices import SNAPSHOTS, cached_pricebook

TOLERANCE = 1e-9
_SNAPSHOT_CACHE: dict[Path, tuple[int, pl.DataFrame]] = {}


def _reference_prices(ctx: AuditContext) -> pl.DataFrame:
    """msrp and unit cost of every store product the day's ticks price: the day's opening snapshot,
    staged alongside on the day's first tick, else published (one file, cached per version)."""
    columns = ["store_product_id", "msrp", "unit_cost"]
    if SNAPSHOTS in ctx.frames:
        return ctx.frames[SNAPSHOTS].select(columns)
    path = ctx.lake.partition_path(SNAPSHOTS, ctx.business_date)
    if not path.is_file():
        raise MissingPartitionError(SNAPSHOTS, [ctx.business_date.isoformat()])
    version = path.stat().st_mtime_ns
    cached = _SNAPSHOT_CACHE.get(path)
    if cached is None or cached[0] != version:
        cached = (version, pl.read_parquet(path, columns=columns))
        _SNAPSHOT_CACHE[path] = cached
    return cached[1]


_OUT_OF_BOUNDS = (pl.col("msrp").is_null() | (pl.col("new_price") <= pl.col("unit_cost"))
                  | (pl.col("new_price") > pl.col("msrp") + TOLERANCE) | (pl.col("unit_cost") <= 0))


def _priced_changes(ctx: AuditContext) -> pl.DataFrame:
    """Each of the day's price changes (store product and new price) beside its msrp and unit cost,
    in store product order (`_known` null where the opening state lacks the store product): the
    snapshot is in that order, so the two meet by a merge join. Both tick audits decide from it
    whether anything offends, and only then list the offenders in the order of the ticks."""
    reference = _reference_prices(ctx)
    ids = reference["store_product_id"]
    reference = (reference.sort("store_product_id") if ids.null_count() or not ids.is_sorted()
                 else reference.with_columns(ids.set_sorted())).with_columns(_known=pl.lit(True))
    changes = _sorted_changes(ctx.frame("price_updates").select("store_product_id", "new_price"))
    return changes.join(reference, on="store_product_id", how="left")


def _sorted_changes(changes: pl.DataFrame) -> pl.DataFrame:
    """The changes in store product order, by a packed sort (`packed_sort`) when it can, about
    twice as fast as sorting the frame; the order among a store product's changes does not matter
    to the audits."""
    ids = changes["store_product_id"]
    sorted_ = packed_sort(ids) if changes.height else None
    if sorted_ is None:
        return changes.sort("store_product_id")
    order, values = sorted_
    return pl.DataFrame([pl.Series("store_product_id", values, dtype=ids.dtype).set_sorted(),
                         *gather_rows(changes.drop("store_product_id"), order).iter_columns()])


def _tick_prices_between_cost_and_msrp(ctx: AuditContext) -> Finding:
    if not ctx.shared(("priced_changes",), lambda: _priced_changes(ctx)).select(_OUT_OF_BOUNDS.any()).item():
        return Finding(0, [], {"unpriced": 0})
    changes = ctx.frame("price_updates").join(_reference_prices(ctx), on="store_product_id", how="left")
    offenders = changes.filter(_OUT_OF_BOUNDS)
    return finding_from(offenders, ["store_product_id", "tick_at"],
                        unpriced=offenders.filter(pl.col("msrp").is_null()).height)


def _tick_prices_known_store_products(ctx: AuditContext) -> Finding:
    if ctx.shared(("priced_changes",), lambda: _priced_changes(ctx))["_known"].null_count() == 0:
        return Finding(0)
    offenders = ctx.frame("price_updates").join(_reference_prices(ctx), on="store_product_id", how="anti")
    return finding_from(offenders, ["store_product_id", "tick_at"])


def _tick_change_is_bounded(ctx: AuditContext) -> Finding:
    bound = ctx.settings.price_max_change
    changes = ctx.frame("price_updates")
    offenders = changes.filter(
        ((pl.col("new_price") / pl.col("old_price") - 1).abs() > bound + TOLERANCE)
        | ((pl.col("new_price") / pl.col("old_price") - 1) * 100 - pl.col("change_pct")).abs().gt(0.006))
    worst = changes.select((pl.col("change_pct").abs().max())).item() if changes.height else 0.0
    return finding_from(offenders, ["store_product_id", "tick_at"], bound_pct=bound * 100,
                        largest_change_pct=worst)


def _tick_validity_windows(ctx: AuditContext) -> Finding:
    changes = ctx.frame("price_updates")
    offenders = changes.filter((pl.col("valid_from") != pl.col("tick_at")) | (pl.col("valid_to") <= pl.col("valid_from")))
    return finding_from(offenders, ["store_product_id", "tick_at"])


def _snapshot_prices_between_cost_and_msrp(ctx: AuditContext) -> Finding:
    snapshot = ctx.frame(SNAPSHOTS)
    offenders = snapshot.filter((pl.col("unit_cost") <= 0) | (pl.col("price") <= pl.col("unit_cost"))
                                | (pl.col("price") > pl.col("msrp") + TOLERANCE))
    return finding_from(offenders, "store_product_id")


def _products_as_of(ctx: AuditContext, columns: list[str]) -> pl.DataFrame:
    """Chain prices of every product published through the audited date."""
    try:
        return ctx.lake.read_as_of("products", ctx.business_date, columns)
    except MissingPartitionError:
        return pl.DataFrame(schema={c: (pl.Int64 if c == "product_id" else pl.Float64) for c in columns})


def _store_price_within_spread(ctx: AuditContext) -> Finding:
    spread = ctx.settings.store_price_spread
    joined = ctx.frame("store_products").join(_products_as_of(ctx, ["product_id", "base_price"]),
                                              on="product_id", how="left")
    # list prices are rounded inward to the cent, so half a cent of slack on the bound
    offenders = joined.filter(pl.col("base_price").is_null() | (
        (pl.col("list_price") - pl.col("base_price")).abs() > spread * pl.col("base_price") + 0.005))
    return finding_from(offenders, "store_product_id", spread_pct=spread * 100)


def _store_price_between_cost_and_msrp(ctx: AuditContext) -> Finding:
    joined = ctx.frame("store_products").join(_products_as_of(ctx, ["product_id", "msrp", "unit_cost"]),
                                              on="product_id", how="left")
    offenders = joined.filter(pl.col("msrp").is_null() | (pl.col("unit_cost") <= 0)
                              | (pl.col("list_price") <= pl.col("unit_cost"))
                              | (pl.col("list_price") > pl.col("msrp") + TOLERANCE))
    return finding_from(offenders, "store_product_id")


# the fact tables whose lines carry a shelf price, audited against one price book pass together
LINE_TABLES = ("receipt_lines", "order_items")


def _line_key(lines: pl.DataFrame) -> list[str]:
    return [c for c in ("receipt_id", "order_id", "line_number", "store_product_id") if c in lines.columns][:2]


def _mispriced_by_table(ctx: AuditContext, tables: list[str], at: str) -> dict[str, pl.DataFrame]:
    """The mispriced lines of each of `tables` (their key columns), priced in one batch: the
    lookup's fixed costs are paid once for all the tables. The day's price book is read once while
    its files stay the same."""
    from grocery_pipeline.storage.world import load_world

    book = cached_pricebook(ctx.lake, load_world(ctx.lake, ctx.business_date), ctx.settings)
    parts = []
    for i, table in enumerate(tables):
        lines = ctx.frame(table)
        columns = dict.fromkeys([*_line_key(lines), "store_product_id", at, "unit_price"])
        parts.append(lines.select(*columns, _table=pl.lit(i, pl.UInt8)))
    wrong = price_mismatches(pl.concat(parts, how="diagonal_relaxed"), book, at)
    return {table: wrong.filter(pl.col("_table") == i) for i, table in enumerate(tables)}


def line_prices_match(ctx: AuditContext, table: str, at: str = "priced_at") -> Finding:
    """A fact table's lines each carry the unit price in effect at `at` (for the checks engineer:
    `Audit("receipt_lines_price_in_effect", "receipt_lines", ..., lambda c: line_prices_match(c, "receipt_lines"))`).

    Joins the lines to the day's price history (opening snapshot + ticks) as of their timestamp;
    the line tables staged together are priced together, once for all of their audits.
    """
    lines = ctx.frame(table)
    tables = [t for t in LINE_TABLES if t in ctx.frames] if table in LINE_TABLES else [table]
    wrong = ctx.shared(("mispriced", *tables, at), lambda: _mispriced_by_table(ctx, tables, at))[table]
    return finding_from(wrong, _line_key(lines), lines_checked=lines.height)


AUDITS: list[Audit] = [
    Audit("price_updates_price_between_cost_and_msrp", "price_updates",
          "Every new price is above the product's unit cost and at most its MSRP.",
          _tick_prices_between_cost_and_msrp),
    Audit("price_updates_foreign_keys", "price_updates",
          "Every repriced store product is in the day's opening price state (price_snapshots, whose "
          "store products are checked against store_products).", _tick_prices_known_store_products),
    Audit("price_updates_change_bounded", "price_updates",
          "No tick moves a price by more than price_max_change (default 15%), and change_pct matches "
          "old and new price.", _tick_change_is_bounded),
    Audit("price_updates_validity_window", "price_updates",
          "Each change takes effect at its tick and is valid until a later moment.", _tick_validity_windows),
    Audit("price_snapshots_price_between_cost_and_msrp", SNAPSHOTS,
          "Every opening shelf price is above unit cost and at most MSRP.", _snapshot_prices_between_cost_and_msrp),
    Audit("store_products_price_between_cost_and_msrp", "store_products",
          "Every store list price is above the product's unit cost and at most its MSRP.",
          _store_price_between_cost_and_msrp),
    Audit("store_products_price_within_spread", "store_products",
          "Every store list price is within store_price_spread (default 15%) of the chain base price.",
          _store_price_within_spread),
]
