"""Materialize a window of partitions through Dagster, the way a single-run backfill does:
one run per partitions definition (finer price ticks first, then the daily graph), each asset
looping its days oldest first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

import dagster as dg
import polars as pl

from grocery_pipeline.instance import window_instance
from grocery_pipeline.settings import Settings
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.tables import TABLES

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
# Dagster's switch for one "materialization planned" event per asset of a range run instead of one
# per asset and partition (read where the run is created)
PLANNED_AS_RANGE = "DAGSTER_EMIT_PARTITION_SUBSET_IN_PLANNED_EVENTS"


@dataclass
class WindowOutcome:
    success: bool = True
    failures: list[str] = field(default_factory=list)
    checks_passed: int = 0
    checks_failed: int = 0


@contextmanager
def planned_as_ranges(instance: dg.DagsterInstance) -> Iterator[None]:
    """Runs created inside announce each asset's planned partitions as one range, when the instance
    is ephemeral (discarded with the process): a 90-day window plans 4,500 asset partitions, over
    2,000 of them price ticks, each an event Dagster stores. A persistent instance keeps one per
    partition, which its UI needs to mark the partitions of a failed run; a value the user set stands."""
    if not instance.is_ephemeral or PLANNED_AS_RANGE in os.environ:
        yield
        return
    os.environ[PLANNED_AS_RANGE] = "true"
    try:
        yield
    finally:
        os.environ.pop(PLANNED_AS_RANGE, None)


def _phase_levels(assets: list[dg.AssetsDefinition]) -> dict[int, int]:
    """How many changes of partitions definition lie upstream of each asset: dimensions (daily) 0,
    price ticks that read them 1, facts that read the ticks 2. A run per (level, definition) then
    never needs a partition that a later run produces."""
    owner = {key: a for a in assets for key in a.keys}
    levels: dict[int, int] = {}

    def level(a: dg.AssetsDefinition) -> int:
        if id(a) not in levels:
            levels[id(a)] = 0
            parents = {owner[k] for deps in a.asset_deps.values() for k in deps if k in owner}
            levels[id(a)] = max([level(p) + (p.partitions_def != a.partitions_def)
                                 for p in parents if p is not a] or [0])
        return levels[id(a)]

    for a in assets:
        level(a)
    return levels


def partition_phases(assets, start: date, end: date) -> list[tuple[list, str, str]]:
    """Group materializable assets into runs by partitions definition, in dependency order (finer
    definitions first among runs of the same level)."""
    materializable = [a for a in assets if isinstance(a, dg.AssetsDefinition) and a.is_materializable and a.keys]
    levels = _phase_levels(materializable)
    groups: dict[tuple[int, int], tuple[dg.PartitionsDefinition, list]] = {}
    for a in materializable:
        pdef = a.partitions_def
        groups.setdefault((levels[id(a)], id(pdef)), (pdef, []))[1].append(a)
    window_start = datetime.combine(start, time())
    window_end = datetime.combine(end + timedelta(days=1), time())
    phases = []
    for (level, _), (pdef, members) in groups.items():
        keys = pdef.get_partition_keys_in_time_window(dg.TimeWindow(window_start, window_end))
        if keys:
            phases.append((level, pdef, members, keys[0], keys[-1], len(keys)))
    phases.sort(key=lambda p: (p[0], -p[5]))  # more partitions in the window = finer grain = upstream
    return [(members, first, last) for _, _, members, first, last, _ in phases]


def materialize_window(start: date, end: date, log_level: str = "WARNING") -> WindowOutcome:
    from grocery_pipeline.definitions import ALL_ASSETS, defs

    outcome = WindowOutcome()
    instance = window_instance(log_level)
    resources = defs.resources
    for members, first, last in partition_phases(ALL_ASSETS, start, end):
        keys = dg.AssetSelection.assets(*[k for a in members for k in a.keys])
        with planned_as_ranges(instance):
            result = dg.materialize(
                ALL_ASSETS, selection=keys, instance=instance, resources=resources,
                tags={RANGE_START: first, RANGE_END: last}, raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": log_level}}}},
            )
        for event in result.all_events:
            if event.event_type_value == "ASSET_CHECK_EVALUATION":
                evaluation = event.event_specific_data
                if evaluation.partition is not None and first != last:
                    continue  # a range run also files each day's result under its day: count the run's gate once
                if evaluation.passed:
                    outcome.checks_passed += 1
                else:
                    outcome.checks_failed += 1
                    outcome.failures.append(
                        f"check {evaluation.check_name} on {'/'.join(evaluation.asset_key.path)} failed")
            elif event.event_type_value == "STEP_FAILURE":
                error = event.event_specific_data.error
                outcome.failures.append(f"step {event.step_key}: {error.message.strip() if error else 'failed'}")
        if not result.success:
            outcome.success = False
            break
    return outcome


def window_rows(settings: Settings, start: date, end: date) -> dict[str, int]:
    """Published rows per table whose business date falls in the window."""
    lake = Lake(settings.lake_dir)
    out = {}
    for name in TABLES:
        files = [p for d in lake.partition_dates(name) if start <= d <= end
                 for p in lake.partition_dir(name, d).rglob(f"{name}.parquet")]
        # one scan of all the files reads their footers together, far faster than one scan each
        out[name] = pl.scan_parquet(files).select(pl.len()).collect().item() if files else 0
    return out


def summary(settings: Settings, start: date, end: date) -> str:
    rows = window_rows(settings, start, end)
    width = max(len(n) for n in rows)
    lines = [f"{'table'.ljust(width)}  {'group'.ljust(12)}  rows", "-" * (width + 24)]
    for name, count in rows.items():
        lines.append(f"{name.ljust(width)}  {TABLES[name].group.ljust(12)}  {count:,}")
    lines.append(f"{'total'.ljust(width)}  {''.ljust(12)}  {sum(rows.values()):,}")
    return "\n".join(lines)
