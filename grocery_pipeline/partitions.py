"""Partition definitions shared by every asset: daily business dates and finer price ticks."""

from __future__ import annotations

from datetime import date, timedelta

import dagster as dg

from grocery_pipeline.settings import Settings

DATE_FORMAT = "%Y-%m-%d"


def daily_partitions(settings: Settings) -> dg.DailyPartitionsDefinition:
    end = settings.end_date + timedelta(days=1) if settings.end_date else None
    return dg.DailyPartitionsDefinition(
        start_date=settings.start_date.isoformat(),
        end_date=end.isoformat() if end else None,
        fmt=DATE_FORMAT,
    )


def business_date(partition_key: str) -> date:
    """The business date of a daily partition key, with a clear error for anything else."""
    try:
        return date.fromisoformat(partition_key)
    except (TypeError, ValueError):
        raise ValueError(
            f"partition key {partition_key!r} is not a daily partition; expected YYYY-MM-DD"
        ) from None


def _load_time_settings() -> Settings:
    from grocery_pipeline.settings import load_settings

    return load_settings()


# Fixed when the code location loads: the partition space follows GROCERY_START_DATE/END_DATE.
LOAD_SETTINGS = _load_time_settings()
DAILY = daily_partitions(LOAD_SETTINGS)
