"""Jobs, schedules and sensors: the nightly run of yesterday's daily graph (and, with pricing,
the price-tick sensor).

The nightly schedule fires at `GROCERY_NIGHTLY_AT` (HH:MM, UTC; default 01:00) and is STOPPED
when the code location first loads, because yesterday's partition needs every earlier partition
of the state chains: backfill the history first, then switch it on in the UI (or deploy with
`GROCERY_NIGHTLY_STATUS=RUNNING`).
"""

from __future__ import annotations

import os
from typing import Mapping

import dagster as dg

from grocery_pipeline.partitions import DAILY
from grocery_pipeline.settings import SettingsError

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

daily_job = dg.define_asset_job(
    "daily_graph",
    selection=dg.AssetSelection.groups("dimensions", "sales", "delivery", "supply_chain")
    & dg.AssetSelection.key_prefixes(["grocery"]),
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
