"""Jobs, schedules and sensors: the nightly run of yesterday's daily graph (and, with pricing,
the price-tick sensor).

The nightly schedule fires at `GROCERY_NIGHTLY_AT` (HH:MM, UTC; default 01:00) and is STOPPED
when the code location first loads, because yesterday's partition needs every earlier partition
of the state chains: backfill the history first, then switch it on in the UI (or deploy with
`GROCERY_NIGHTLY_STATUS=RUNNING`).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta, timezone
from typing import Callable, Mapping

import dagster as dg

from grocery_pipeline.assets.pricing import CATALOG_TABLES, price_ticks
from grocery_pipeline.partitions import DAILY, PRICE_TICKS, tick_start
from grocery_pipeline.resources import GrocerySettings
from grocery_pipeline.settings import SettingsError
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.storage.prices import UPDATES

NIGHTLY_AT = "01:00"
NIGHTLY_STATUS = "STOPPED"


def nightly_time(env: Mapping[str, str] | None = None) -> tuple[int, int]:
    """(hour, minute) in UTC at which the nightly schedule fires."""
    env = os.environ if env is None else env
    raw = env.get("GROCERY_NIGHTLY_AT") or NIGHTLY_AT
    hour, _, minute = raw.strip().partition(":")
    if not (hour.isdigit() and minute.isdigit() and int(hour) < 24 and int(minute) < 60):
        raise SettingsError(f"GROCERY_NIGHTLY_AT: {raw!r} is not a time of day; expected HH:MM in UTC, e.g. 01:00")
    return int(hour), int(minute)


def nightly_status(env: Mapping[str, str] | None = None) -> dg.DefaultScheduleStatus:
    env = os.environ if env is None else env
    raw = (env.get("GROCERY_NIGHTLY_STATUS") or NIGHTLY_STATUS).strip().upper()
    if raw not in dg.DefaultScheduleStatus.__members__:
        raise SettingsError(f"GROCERY_NIGHTLY_STATUS: {raw!r} is not allowed; expected RUNNING or STOPPED")
    return dg.DefaultScheduleStatus[raw]


# Every table but the price ticks, which the price-tick sensor adds through the day.
daily_job = dg.define_asset_job(
    "daily_graph",
    selection=dg.AssetSelection.key_prefixes(["grocery"]) - dg.AssetSelection.assets(*price_ticks.keys),
    partitions_def=DAILY,
    description="Every daily-partitioned table of one business date, in dependency order.",
)


def build_nightly_schedule(env: Mapping[str, str] | None = None):
    """The schedule that materializes yesterday's partition of the daily graph once a night."""
    hour, minute = nightly_time(env)
    return dg.build_schedule_from_partitioned_job(
        daily_job, hour_of_day=hour, minute_of_hour=minute, name="nightly_daily_graph",
        default_status=nightly_status(env),
        description=f"At {hour:02d}:{minute:02d} UTC, materialize yesterday's partition of the daily graph "
                    "(one run, run key = the partition, so a tick never runs a day twice).",
    )


nightly_schedule = build_nightly_schedule()

JOBS = [daily_job]
SCHEDULES = [nightly_schedule]
SENSORS: list = []


# -- the price-tick sensor ----------------------------------------------------------------------
MAX_TICKS_PER_EVALUATION = 48  # two days at hourly ticks: a long outage catches up over a few evaluations


def latest_published_tick(lake: Lake) -> str | None:
    """The key of the latest tick in the lake (where a sensor without a cursor picks up)."""
    for day in reversed(lake.partition_dates(UPDATES)):
        ticks = sorted(p.parent.name[5:] for p in lake.partition_dir(UPDATES, day).glob(f"tick=*/{UPDATES}.parquet"))
        if ticks:
            return f"{day.isoformat()}-{ticks[-1][:2]}:{ticks[-1][2:]}"
    return None


def ticks_to_request(partitions_def: dg.TimeWindowPartitionsDefinition, cursor: str | None, now: datetime,
                     lake: Lake, first_date) -> tuple[list[str], str | None]:
    """Closed ticks after the cursor, oldest first, up to the first whose previous day's catalog is
    not yet published (that tick and the rest wait); and why the list stopped, if it did."""
    closed = partitions_def.get_partition_keys(current_time=now)
    after = cursor or latest_published_tick(lake)
    pending = [k for k in closed if after is None or k > after][:MAX_TICKS_PER_EVALUATION]
    ready: list[str] = []
    for key in pending:
        day = tick_start(key).date()
        catalog_day = day - timedelta(days=1)
        missing = [t for t in CATALOG_TABLES if day > first_date and not lake.has_partition(t, catalog_day)]
        if missing:
            return ready, (f"tick {key} waits for the {catalog_day} partition of "
                           f"{', '.join('grocery/' + t for t in missing)} (the catalog its prices are set on)")
        ready.append(key)
    return ready, None


def build_price_tick_sensor(partitions_def: dg.TimeWindowPartitionsDefinition = PRICE_TICKS,
                            clock: Callable[[], datetime] | None = None) -> dg.SensorDefinition:
    """A sensor that materializes each newly closed price tick, one run per tick (run key = the
    tick), oldest first. `clock` stands in for the wall clock in tests; it decides when a tick is
    closed, never what a tick contains."""

    @dg.sensor(name="price_tick_sensor", asset_selection=dg.AssetSelection.assets(*price_ticks.keys),
               minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
               description="Materialize grocery/price_updates for every price tick whose window has closed, "
                           "once its previous day's catalog is published; the cursor is the last tick requested.")
    def price_tick_sensor(context: dg.SensorEvaluationContext, grocery: GrocerySettings):
        settings = grocery.resolve()
        now = clock() if clock else datetime.now(timezone.utc)
        keys, waiting = ticks_to_request(partitions_def, context.cursor, now, Lake(settings.lake_dir),
                                         settings.start_date)
        if not keys:
            return dg.SkipReason(waiting or f"no price tick closed since {context.cursor or 'the start'}")
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=key, partition_key=key) for key in keys],
            cursor=keys[-1],
        )

    return price_tick_sensor


SENSORS.append(build_price_tick_sensor())
