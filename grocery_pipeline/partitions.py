"""Partition definitions shared by every asset: daily business dates and finer price ticks."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta

import dagster as dg

from grocery_pipeline.settings import Settings, tick_grid

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


TICK_FORMAT = "%Y-%m-%d-%H:%M"


def price_tick_partitions(settings: Settings) -> dg.TimeWindowPartitionsDefinition:
    """Price ticks on the `price_tick_cron` grid (hourly by default), over the same business dates
    as the daily partitions; a tick belongs to the business date its window starts on."""
    tick_grid(settings.price_tick_cron)
    start = datetime.combine(settings.start_date, time())
    end = datetime.combine(settings.end_date + timedelta(days=1), time()) if settings.end_date else None
    return dg.TimeWindowPartitionsDefinition(
        cron_schedule=settings.price_tick_cron, fmt=TICK_FORMAT, start=start.strftime(TICK_FORMAT),
        end=end.strftime(TICK_FORMAT) if end else None,
    )


def ticks_per_day(settings: Settings) -> int:
    return 24 * 60 // tick_grid(settings.price_tick_cron)


def tick_start(partition_key: str) -> datetime:
    """The start of a price tick, with a clear error for a key that is not a tick."""
    try:
        return datetime.strptime(partition_key, TICK_FORMAT)
    except (TypeError, ValueError):
        raise ValueError(
            f"partition key {partition_key!r} is not a price tick; expected YYYY-MM-DD-HH:MM"
        ) from None


def tick_key(tick_at: datetime) -> str:
    """A price tick's partition key (`tick_start` read back)."""
    return tick_at.strftime(TICK_FORMAT)


def _load_time_settings() -> Settings:
    from grocery_pipeline.settings import load_settings

    return load_settings()


# Fixed when the code location loads: the partition space follows GROCERY_START_DATE/END_DATE.
LOAD_SETTINGS = _load_time_settings()
DAILY = daily_partitions(LOAD_SETTINGS)
PRICE_TICKS = price_tick_partitions(LOAD_SETTINGS)
