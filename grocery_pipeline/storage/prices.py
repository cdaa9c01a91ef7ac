"""Reading prices from the lake: the price state a tick starts from and the prices in effect
during a business day. Every read is bounded to one day: that day's opening snapshot plus at
most that day's ticks, however long the history."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import polars as pl

from grocery_pipeline.dictionaries import Dictionaries
from grocery_pipeline.settings import Settings, load_settings
from grocery_pipeline.simulation.pricing import (
    CARRIED, CHANGE_SCHEMA, STATE_SCHEMA, Catalog, Close, PriceBook, PricingRules, PriceState, apply_changes,
    empty_changes, open_state,
)
from grocery_pipeline.simulation.world import World
from grocery_pipeline.storage.lake import Lake, MissingPartitionError, RecentDays, file_signature, holds_history
from grocery_pipeline.storage.world import scan_as_of_cached

UPDATES, SNAPSHOTS = "price_updates", "price_snapshots"


def lake_tick(tick_at: datetime) -> str:
    """The tick's folder name under its business date: `tick=HHMM`."""
    return tick_at.strftime("%H%M")


def tick_label(tick_at: datetime) -> str:
    return f"{tick_at.date().isoformat()} tick {lake_tick(tick_at)}"


def read_ticks(lake: Lake, ticks: list[datetime], columns: list[str] | None = None) -> pl.DataFrame:
    """The changes of the given ticks (all CHANGE_SCHEMA columns, or those named), in tick order;
    fails naming every tick not yet published."""
    missing = [t for t in ticks if not lake.has_partition(UPDATES, t.date(), lake_tick(t))]
    if missing:
        raise MissingPartitionError(UPDATES, [tick_label(t) for t in missing])
    schema = {c: CHANGE_SCHEMA[c] for c in columns or CHANGE_SCHEMA}
    if not ticks:
        return empty_changes().select(list(schema))
    files = [lake.partition_path(UPDATES, t.date(), lake_tick(t)) for t in ticks]
    return pl.read_parquet(files, columns=list(schema)).cast(schema)


def read_opening(lake: Lake, business_date: date, columns: list[str] | None = None) -> pl.DataFrame:
    """The price state at 00:00 of a business date (its price_snapshots partition): all STATE_SCHEMA
    columns, or those named."""
    schema = {c: STATE_SCHEMA[c] for c in columns or STATE_SCHEMA}
    return lake.read_partition(SNAPSHOTS, business_date, columns=list(schema)).cast(schema)


def catalog_as_of(lake: Lake, dictionaries: Dictionaries, business_date: date) -> Catalog:
    """The dimensions as published through a business date (what the next day's ticks price): the
    columns of each table's history as of the date (`scan_as_of_cached`), without a copy when the
    history held is the date's, filtered from it when it goes further (a window's ticks run once
    all its days' dimensions are published), and never set back to the date.

    A table not read yet in this process whose next day is published too (a nightly run publishes
    the day's dimensions before its ticks) is read through that day: the history its audits and
    operations read next, read and put in id order once, not once here and again to merge that
    day's rows in."""
    following = business_date + timedelta(days=1)

    def read(table: str, columns: list[str]) -> pl.DataFrame:
        if not holds_history(lake, table) and lake.has_partition(table, following):
            rows = scan_as_of_cached(lake, table, following).filter(pl.col("business_date") <= business_date)
        else:
            rows = scan_as_of_cached(lake, table, business_date)
        return rows.select(columns).collect()

    return Catalog(
        store_products=read("store_products", ["store_product_id", "store_id", "product_id", "list_price",
                                               "listed_on"]),
        products=read("products", ["product_id", "department", "category", "msrp", "unit_cost", "launched_on",
                                   "discontinued_on"]),
        stores=read("stores", ["store_id", "opened_on"]),
        promotions=read("promotions", ["promotion_id", "scope", "product_id", "department", "category",
                                       "start_date", "end_date"]),
        departments=dictionaries.departments.select("department", "volatility_class"),
    )


def state_at_open(lake: Lake, rules: PricingRules, seed: int, first_date: date, business_date: date,
                  dictionaries: Dictionaries, previous_close: pl.DataFrame | PriceState | None = None,
                  ) -> PriceState:
    """The price state at 00:00 of a business date, from the previous day's close and catalog
    (its frame, `PriceState.frame()`, is the day's price_snapshots partition).

    The first business date has no earlier catalog, so its state is empty (list prices all day).
    Without `previous_close`, it is read: the previous day's snapshot plus its ticks.
    """
    if business_date <= first_date:
        return open_state(rules, seed, business_date, pl.DataFrame(schema=STATE_SCHEMA), None)
    yesterday = business_date - timedelta(days=1)
    catalog = catalog_as_of(lake, dictionaries, yesterday)  # before the close: the reads' peaks do not add up
    if previous_close is None:  # only what the opening carries of it, held by the opening alone
        previous_close = Close(apply_changes(
            read_opening(lake, yesterday, columns=list(CARRIED)),
            read_ticks(lake, rules.ticks_of(yesterday),
                       columns=["store_product_id", "new_price", "reason", "valid_from", "valid_to"])))
    return open_state(rules, seed, business_date, previous_close, catalog)


def state_before(lake: Lake, rules: PricingRules, tick_at: datetime) -> pl.DataFrame:
    """The price state just before a tick that is not the day's first: the day's opening snapshot
    plus the day's earlier ticks (never more than one day of files)."""
    earlier = [t for t in rules.ticks_of(tick_at.date()) if t < tick_at]
    return apply_changes(read_opening(lake, tick_at.date()), read_ticks(lake, earlier))


# The last price books built, with what each was built from: a day's simulation and the audits of
# both its line tables (receipt_lines, order_items) ask for the same book, and a day may be audited
# while the next one is generated, so two are kept (memory stays bounded).
_BOOKS = RecentDays(kept=2)


def _day_files_signature(lake: Lake, rules: PricingRules, business_date: date) -> tuple | None:
    """(path, inode, mtime, size) of the day's snapshot and tick files; None if any is missing."""
    paths = [lake.partition_path(SNAPSHOTS, business_date),
             *(lake.partition_path(UPDATES, business_date, lake_tick(t)) for t in rules.ticks_of(business_date))]
    try:
        return tuple(file_signature(path) for path in paths)
    except (FileNotFoundError, NotADirectoryError):
        return None


def release_day(lake: Lake, business_date: date) -> None:
    """Drop the cached book of a day that is published (nothing of the run reads it again)."""
    _BOOKS.release(lake, business_date)


def cached_pricebook(lake: Lake, world: World, settings: Settings) -> PriceBook:
    """`load_pricebook`, reused while the world and the day's price files are the very same."""
    rules = PricingRules.from_settings(settings)
    signature = _day_files_signature(lake, rules, world.business_date)
    if signature is None:
        return load_pricebook(lake, world, settings)  # fails naming what is missing
    key = (lake.root, world.business_date, rules.tick_minutes, signature)
    last = _BOOKS.get(key)
    if last is not None and last[0] is world:
        return last[1]
    book = load_pricebook(lake, world, settings)
    _BOOKS.put(key, (world, book))
    return book


def load_pricebook(lake: Lake, world: World, settings: Settings | None = None) -> PriceBook:
    """The day's opening prices and tick changes for every store product live that day.

    Store products listed on the day itself are not priced by that day's ticks (ticks price the
    catalog published the day before) and sell at their list price. Raises MissingPartitionError
    naming every unpublished tick of the day, so a daily partition never reads a partial day.
    """
    settings = settings or load_settings()
    rules = PricingRules.from_settings(settings)
    d = world.business_date
    changes = read_ticks(lake, rules.ticks_of(d), columns=["store_product_id", "valid_from", "new_price"])
    opening_state = read_opening(lake, d, columns=["store_product_id", "price"])
    return PriceBook(d, opening_prices(world.store_products.select("store_product_id", "list_price"), opening_state),
                     changes)


def opening_prices(listed: pl.DataFrame, snapshot: pl.DataFrame) -> pl.DataFrame:
    """store_product_id, price of each listed row (in `listed`'s order): its snapshot price, else its
    list price. Both sides are in id order as read, and a join told so merges them instead of
    hashing two day-sized frames."""
    snapshot = snapshot.select("store_product_id", "price").rechunk()
    if listed["store_product_id"].is_sorted() and snapshot["store_product_id"].is_sorted():
        listed, snapshot = (frame.with_columns(pl.col("store_product_id").set_sorted()) for frame in (listed, snapshot))
    return listed.join(snapshot, on="store_product_id", how="left", maintain_order="left") \
        .select("store_product_id", pl.coalesce("price", "list_price").alias("price"))
