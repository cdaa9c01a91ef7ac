"""Pricing assets: price ticks on the finer tick partitions.

One op writes both pricing tables: each tick's `price_updates` (its asset, tick-partitioned) and,
with the day's first tick, the day-opening `price_snapshots` (a daily asset declared on its own,
whose materializations and audits that op reports; one event per day instead of one per tick).
Ticks are a state chain (each depends on the tick before it) and price the catalog published the
day before, so a tick never waits for the nightly run of its own day. A range of ticks runs in
one run, oldest first, carrying the price state in memory; a run of a single tick (the sensor's)
reads the state from the day's snapshot and earlier ticks, never from older history.
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
    KINDS, CheckOutcome, PartitionRejected, asset_key, check_results, column_schema, run_audits,
    write_audit_publish_ticks,
)
from grocery_pipeline.dictionaries import load_dictionaries
from grocery_pipeline.partitions import DAILY, LOAD_SETTINGS, PRICE_TICKS, tick_start, ticks_per_day
from grocery_pipeline.resources import GrocerySettings
from grocery_pipeline.simulation.pricing import PricingRules, price_tick
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
                state: pl.DataFrame | None) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The tables one tick publishes and the price state after it.

    `state` is the state just before the tick when the caller carried it from the previous tick,
    else None and it is read from the lake.
    """
    loaded_at = tick_at + timedelta(minutes=rules.tick_minutes)  # a tick lands when it closes
    frames: dict[str, pl.DataFrame] = {}
    if rules.is_first_tick(tick_at):
        state = state_at_open(lake, rules, settings.seed, settings.start_date, tick_at.date(), dictionaries,
                              previous_close=state)
        frames[t.PRICE_SNAPSHOTS.name] = snapshot_frame(state, tick_at, loaded_at)
    elif state is None:
        state = state_before(lake, rules, tick_at)
    changes, state = price_tick(rules, settings.seed, tick_at, state)
    frames[t.PRICE_UPDATES.name] = changes.with_columns(
        business_date=pl.lit(tick_at.date()), _loaded_at=pl.lit(loaded_at, dtype=pl.Datetime("us")))
    return frames, state


def _spec(table, deps, partitions_def=None, partitioning: str = "price_tick") -> dg.AssetSpec:
    return dg.AssetSpec(
        key=asset_key(table.name), group_name=table.group, description=table.description, kinds=KINDS,
        owners=list(table.owners), code_version="1", deps=deps, partitions_def=partitions_def,
        metadata={"dagster/column_schema": column_schema(table), "grocery/primary_key": ", ".join(table.key),
                  "grocery/partitioning": partitioning},
    )


def _as_evaluation(result: dg.AssetCheckResult) -> dg.AssetCheckEvaluation:
    return dg.AssetCheckEvaluation(asset_key=result.asset_key, check_name=result.check_name, passed=result.passed,
                                   metadata=result.metadata, severity=result.severity)


def price_ticks_asset(partitions_def: dg.TimeWindowPartitionsDefinition, per_day: int) -> dg.AssetsDefinition:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # allow_nonexistent_upstream_partitions is beta
        # The first business date's ticks have no previous day's catalog: they price nothing.
        previous_day = dg.TimeWindowPartitionMapping(start_offset=-per_day, end_offset=-per_day,
                                                     allow_nonexistent_upstream_partitions=True)
    updates_key, snapshots_key = asset_key(t.PRICE_UPDATES.name), asset_key(t.PRICE_SNAPSHOTS.name)
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
        outcomes: list[CheckOutcome] = []
        rows = 0
        state, previous = None, None
        # A day's ticks are audited together (the audits are row-wise), then each tick's file is
        # published; a day's ticks of the run go live all or none.
        for day, day_ticks in groupby(ticks, key=lambda tick_at: tick_at.date()):
            parts = []
            for tick_at in day_ticks:
                carried = state if previous == tick_at - timedelta(minutes=rules.tick_minutes) else None
                try:
                    frames, state = tick_frames(rules, settings, lake, dictionaries, tick_at, carried)
                except MissingPartitionError as missing:
                    if SENSOR_TAG in context.run.tags and missing.table in (t.PRICE_UPDATES.name, t.PRICE_SNAPSHOTS.name):
                        # this sensor run overtook the run of the tick before it: try again once that lands
                        raise dg.RetryRequested(max_retries=SENSOR_RETRIES, seconds_to_wait=SENSOR_RETRY_SECONDS) from missing
                    raise
                parts.append((lake_tick(tick_at), frames))
                previous = tick_at
            try:
                outcomes += write_audit_publish_ticks(settings, lake, day, parts)
            except PartitionRejected as rejected:
                yield from _check_events(context, outcomes + rejected.failed)
                raise dg.Failure(description=f"price ticks of {day}: {rejected}", metadata={
                    "partition": day.isoformat(),
                    "failed_checks": dg.MetadataValue.json([o.audit.name for o in rejected.failed])}) from None
            rows += sum(frames[t.PRICE_UPDATES.name].height for _, frames in parts)
            for _, frames in parts:
                if t.PRICE_SNAPSHOTS.name in frames:
                    context.log_event(dg.AssetMaterialization(
                        asset_key=snapshots_key, partition=day.isoformat(),
                        metadata={"dagster/row_count": frames[t.PRICE_SNAPSHOTS.name].height,
                                  "path": dg.MetadataValue.path(str(lake.partition_path(t.PRICE_SNAPSHOTS.name, day)))}))
        context.log.info(f"{len(ticks)} tick(s) from {ticks[0]:%Y-%m-%d %H:%M}: {rows} price changes")
        catalog.ensure_views(settings.warehouse_path, lake, [t.PRICE_UPDATES.name, t.PRICE_SNAPSHOTS.name])
        yield dg.MaterializeResult(asset_key=updates_key, metadata={
            "dagster/row_count": rows,
            "ticks": len(ticks),
            "path": dg.MetadataValue.path(str(lake.table_dir(t.PRICE_UPDATES.name))),
            "settings": dg.MetadataValue.json(settings.fingerprint()),
            "dictionaries_version": dictionaries.fingerprint,
        })
        yield from _check_events(context, outcomes)

    return _asset


def _check_events(context: AssetExecutionContext, outcomes: list[CheckOutcome]):
    """The op's own check results; the snapshot's audits (it is written by this op but is a daily
    asset of its own) are reported as evaluations of its checks."""
    for result in check_results(outcomes):
        if result.asset_key == asset_key(t.PRICE_SNAPSHOTS.name):
            context.log_event(_as_evaluation(result))
        else:
            yield result


def price_snapshots_spec(daily: dg.PartitionsDefinition) -> dg.AssetSpec:
    """The day-opening price state: written by the price-tick op with each day's first tick, so it
    is declared here (external to any op) and its materializations are reported by that op."""
    return _spec(t.PRICE_SNAPSHOTS, [asset_key(t.PRICE_UPDATES.name)], daily,
                 "daily, written with the day's first price tick")


def price_snapshots_checks() -> dg.AssetChecksDefinition:
    key = asset_key(t.PRICE_SNAPSHOTS.name)
    specs = [dg.AssetCheckSpec(a.name, asset=key, description=a.description, blocking=a.blocking)
             for a in audits.audits_for(t.PRICE_SNAPSHOTS.name)]

    @dg.multi_asset_check(specs=specs, name="price_snapshots_audits")
    def _checks(context: dg.AssetCheckExecutionContext, grocery: GrocerySettings):
        """Re-audit the latest published day-opening snapshot (each was audited before it was published)."""
        settings = grocery.resolve()
        lake = Lake(settings.lake_dir)
        days = lake.partition_dates(t.PRICE_SNAPSHOTS.name)
        if not days:
            raise dg.Failure(description="price_snapshots has no published partition yet; materialize "
                                         "grocery/price_updates for a day's first tick first")
        frame = lake.read_partition(t.PRICE_SNAPSHOTS.name, days[-1])
        ctx = audits.AuditContext(settings, lake, days[-1], {t.PRICE_SNAPSHOTS.name: frame})
        yield from check_results(run_audits([t.PRICE_SNAPSHOTS.name], ctx))

    return _checks


price_ticks = price_ticks_asset(PRICE_TICKS, ticks_per_day(LOAD_SETTINGS))

PRICING_ASSETS = [price_ticks, price_snapshots_spec(DAILY), price_snapshots_checks()]
