"""Jobs, schedules and sensors: the nightly run of yesterday's daily graph (and, with pricing,
the price-tick sensor)."""

from __future__ import annotations

import dagster as dg

from grocery_pipeline.partitions import DAILY

daily_job = dg.define_asset_job(
    "daily_graph",
    selection=dg.AssetSelection.groups("dimensions", "sales", "delivery", "supply_chain")
    & dg.AssetSelection.key_prefixes(["grocery"]),
    partitions_def=DAILY,
    description="Every daily-partitioned table of one business date, in dependency order.",
)

nightly_schedule = dg.build_schedule_from_partitioned_job(
    daily_job, hour_of_day=1, minute_of_hour=0, name="nightly_daily_graph",
    description="At 01:00 UTC, materialize yesterday's partition of the daily graph.",
)

JOBS = [daily_job]
SCHEDULES = [nightly_schedule]
SENSORS: list = []
