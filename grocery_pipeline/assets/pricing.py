"""Pricing assets: price ticks on the finer tick partitions, and the day-opening price state.

The `price_ticks` op materializes `price_updates`, one tick partition at a time. With the day's
first tick it also writes (after auditing it) the day's `price_snapshots` partition, because the
day's later ticks and sales read it before the day is over; the daily `price_snapshots` asset then
re-audits and registers that partition in the daily graph. Ticks are a state chain (each depends
on the tick before it) and price the catalog published the day before, so a tick never waits for
the nightly run of its own day. A range of ticks runs in one run, oldest first, carrying the price
state in memory; a run of a single tick (the sensor's) reads the state from the day's snapshot and
earlier ticks, never from older history.
"""


import warnings
from datetime import datetime, timedelta
from itertools import groupby

import dagster as dg
import polars as pl
from dagster import AssetExecutionContext

from grocery_pipeline import checks as audits
from grocery_pipeline.assets.dictionaries import dictionary_key
from grocery_pipeline.assets.factory import (
    KINDS, CheckOutcome, PartitionMetadata, PartitionRejected, asset_key, audit_published, check_results,
    column_schema, publish_in_order, record_outcomes,
)
from grocery_pipeline.dictionaries import load_dictionaries
from grocery_pipeline.partitions import (
    DAILY, LOAD_SETTINGS, PRICE_TICKS, business_date, tick_key, tick_start, ticks_per_day,
)
from grocery_pipeline.resources import GrocerySettings
from grocery_pipeline.simulation.pricing import PriceState, PricingRules, price_tick
from grocery_pipeline.storage import catalog
from grocery_pipeline.storage.lake import Lake, MissingPartitionError
from grocery_pipeline.storage.prices import lake_tick, state_at_open, state_before
from grocery_pipeline.tables import pricing as t

CATALOG_TABLES = ("stores", "products", "store_products", "promotions")
POOL = "grocery_chain_price_ticks"  # one tick at a time across runs (deploy/dagster.yaml pools)
SENSOR_TAG = "dagster/sensor_name"
SENSOR_RETRIES, SENSOR_RETRY_SECONDS = 5, 60


def snapshot_frame(state: pl.DataFrame, tick_at: datetime, loaded_at: datetime) -> pl.DataFrame:
    return state.with_columns(business_date=pl.lit(tick_at.date()),
                              _loaded_at=pl.lit(loaded_at, dtype=pl.Datetime("us")))


def tick_frames(rules: PricingRules, settings, lake: Lake, dictionaries, tick_at: datetime,
                state: PriceState | None) -> tuple[dict[str, pl.DataFrame], PriceState]:
    """The tables one tick publishes and the price state after it.

    `state` is the state just before the tick when the caller carried it from the previous tick
    (it is updated in place), else None and it is read from the lake.
    """
    loaded_at = tick_at + timedelta(minutes=rules.tick_minutes)  # a tick lands when it closes
    frames: dict[str, pl.DataFrame] = {}
    if rules.is_first_tick(tick_at):
        state = state_at_open(lake, rules, settings.seed, settings.start_date, tick_at.date(), dictionaries,
                              previous_close=state)
        frames[t.PRICE_SNAPSHOTS.name] = snapshot_frame(state.frame(), tick_at, loaded_at)
    elif state is None:
        state = state_before(lake, rules, tick_at)
    changes, state = price_tick(rules, settings.seed, tick_at, state)
    frames[t.PRICE_UPDATES.name] = changes.with_columns(
        business_date=pl.lit(tick_at.date()), _loaded_at=pl.lit(loaded_at, dtype=pl.Datetime("us")))
    return frames, state


def _spec(table, deps, partitioning: str = "price_tick") -> dg.AssetSpec:
    return dg.AssetSpec(
        key=asset_key(table.name), group_name=table.group, description=table.description, kinds=KINDS,
        owners=list(table.owners), code_version="1", deps=deps,
        metadata={"dagster/column_schema": column_schema(table), "grocery/primary_key": ", ".join(table.key),
                  "grocery/partitioning": partitioning},
    )


def price_ticks_asset(partitions_def: dg.TimeWindowPartitionsDefinition, per_day: int) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # allow_nonexistent_upstream_partitions is beta
        # The first business date's ticks have no previous day's catalog: they price nothing.
        previous_day = dg.TimeWindowPartitionMapping(start_offset=-per_day, end_offset=-per_day,
                                                     allow_nonexistent_upstream_partitions=True)
    updates_key = asset_key(t.PRICE_UPDATES.name)
    deps = [*(dg.AssetDep(asset_key(name), partition_mapping=previous_day) for name in CATALOG_TABLES),
            dg.AssetDep(dictionary_key("departments")),
            dg.AssetDep(updates_key, partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1, end_offset=-1))]
    check_specs = [dg.AssetCheckSpec(a.name, asset=updates_key, description=a.description, blocking=a.blocking)
                   for a in audits.audits_for(t.PRICE_UPDATES.name)]

    @dg.multi_asset(name="price_ticks", specs=[_spec(t.PRICE_UPDATES, deps)], check_specs=check_specs,
                    partitions_def=partitions_def, backfill_policy=dg.BackfillPolicy.single_run(),
                    can_subset=False, pool=POOL)
    def _asset(context: AssetExecutionContext, grocery: GrocerySettings):
        """Reprice the store products whose review falls due at each tick of the run, oldest first."""
        settings = grocery.resolve()
        dictionaries = load_dictionaries(settings.dictionaries_dir)
        lake = Lake(settings.lake_dir)
        rules = PricingRules.from_settings(settings)
        ticks = sorted(tick_start(k) for k in context.partition_keys)
        partition_of = {(tick_at.date(), lake_tick(tick_at)): tick_key(tick_at) for tick_at in ticks}
        outcomes: list[CheckOutcome] = []
        metadata = PartitionMetadata(context)
        rows = 0
        carried = {"state": None, "tick": None}  # the price state after the last tick generated

        def day_of_ticks(day_ticks: list[datetime]):
            def make():  # tick by tick, so each tick's files are written while the next is made
                for tick_at in day_ticks:
                    before = tick_at - timedelta(minutes=rules.tick_minutes)
                    state = carried["state"] if carried["tick"] == before else None
                    try:
                        frames, carried["state"] = tick_frames(rules, settings, lake, dictionaries, tick_at, state)
                    except MissingPartitionError as missing:
                        if SENSOR_TAG in context.run.tags and missing.table in (t.PRICE_UPDATES.name,
                                                                                t.PRICE_SNAPSHOTS.name):
                            # this sensor run overtook the run of the tick before it: try again once that lands
                            raise dg.RetryRequested(max_retries=SENSOR_RETRIES,
                                                    seconds_to_wait=SENSOR_RETRY_SECONDS) from missing
                        raise
                    carried["tick"] = tick_at
                    yield lake_tick(tick_at), frames
            return make

        # A day's ticks are audited together (the audits are row-wise), then each tick's file is
        # published; a day's ticks of the run go live all or none. Each tick's files are staged as
        # soon as it is made, and the next day's ticks are generated (from the state carried in
        # memory) while a day is audited.
        days = ((day.isoformat(), day, day_of_ticks(list(group)))
                for day, group in groupby(ticks, key=lambda tick_at: tick_at.date()))
        try:
            for published in publish_in_order(settings, lake, days, overlap=True):
                outcomes += published.outcomes
                day = business_date(published.key)
                for tick, frames in published.parts:
                    tick_rows = frames[t.PRICE_UPDATES.name].height
                    rows += tick_rows
                    metadata.add(t.PRICE_UPDATES.name, partition_of[day, tick], tick_rows)
                # row counts, not the frames: a list of the day's snapshot kept it (8M rows at xl)
                # while the next day was generated
                snapshot_rows = [frames[t.PRICE_SNAPSHOTS.name].height for _, frames in published.parts
                                 if t.PRICE_SNAPSHOTS.name in frames]
                if snapshot_rows:  # the day's first tick: its snapshot's checks, for the price_snapshots asset
                    record_outcomes(lake, t.PRICE_SNAPSHOTS.name, business_date(published.key),
                                    [o for o in published.outcomes if o.audit.table == t.PRICE_SNAPSHOTS.name],
                                    sum(snapshot_rows))
                del published  # the day's frames are not kept while the next day is generated
        except PartitionRejected as rejected:
            yield from _tick_check_results(outcomes + rejected.failed)
            raise dg.Failure(description=f"price ticks of {rejected.day}: {rejected}", metadata={
                "partition": rejected.day.isoformat(),
                "failed_checks": dg.MetadataValue.json([o.audit.name for o in rejected.failed])}) from None
        context.log.info(f"{len(ticks)} tick(s) from {ticks[0]:%Y-%m-%d %H:%M}: {rows} price changes")
        catalog.ensure_views(settings.warehouse_path, lake, [t.PRICE_UPDATES.name, t.PRICE_SNAPSHOTS.name])
        metadata.hand_over()
        yield dg.MaterializeResult(asset_key=updates_key, metadata={
            "ticks": len(ticks),
            "path": dg.MetadataValue.path(str(lake.table_dir(t.PRICE_UPDATES.name))),
            "settings": dg.MetadataValue.json(settings.fingerprint()),
            "dictionaries_version": dictionaries.fingerprint,
        })
        yield from _tick_check_results(outcomes)

    return _asset


def _tick_check_results(outcomes: list[CheckOutcome]) -> list[dg.AssetCheckResult]:
    """The op's checks; the snapshot a first tick stages is audited with it (a gate on publishing)
    and reported by the price_snapshots asset."""
    return [r for r in check_results(outcomes) if r.asset_key == asset_key(t.PRICE_UPDATES.name)]


def price_snapshots_asset(daily: dg.PartitionsDefinition) -> dg.AssetsDefinition:
    """Registers each day's opening price state, which the day's first price tick writes (the
    ticks need it before the day is over): re-audits the published partition, part by part, and records it."""
    table = t.PRICE_SNAPSHOTS
    check_specs = [dg.AssetCheckSpec(a.name, asset=asset_key(table.name), description=a.description,
                                     blocking=a.blocking) for a in audits.audits_for(table.name)]

    @dg.multi_asset(name=table.name, specs=[_spec(table, [asset_key(t.PRICE_UPDATES.name)],
                                                  partitioning="daily, written with the day's first price tick")],
                    check_specs=check_specs, partitions_def=daily,
                    backfill_policy=dg.BackfillPolicy.single_run(), can_subset=False)
    def _asset(context: AssetExecutionContext, grocery: GrocerySettings):
        settings = grocery.resolve()
        lake = Lake(settings.lake_dir)
        outcomes: list[CheckOutcome] = []
        metadata = PartitionMetadata(context)
        for key in sorted(context.partition_keys):
            # part by part; fails naming the day if its first tick has not run
            day_outcomes, day_rows = audit_published(settings, lake, business_date(key), table.name)
            outcomes += day_outcomes
            metadata.add(table.name, key, day_rows)
        failed = [o for o in outcomes if o.audit.blocking and not o.finding.passed]
        if failed:
            yield from check_results(outcomes)
            raise dg.Failure(description=str(PartitionRejected(failed[0].business_date, failed)))
        catalog.ensure_views(settings.warehouse_path, lake, [table.name])
        metadata.hand_over()
        yield dg.MaterializeResult(asset_key=asset_key(table.name), metadata={
            "partitions": len(context.partition_keys),
            "path": dg.MetadataValue.path(str(lake.table_dir(table.name)))})
        yield from check_results(outcomes)

    return _asset


price_ticks = price_ticks_asset(PRICE_TICKS, ticks_per_day(LOAD_SETTINGS))

PRICING_ASSETS = [price_ticks, price_snapshots_asset(DAILY)]
