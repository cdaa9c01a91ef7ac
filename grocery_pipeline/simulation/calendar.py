"""The retail calendar: weekday rhythm, seasons, holidays and shopping events, as one traffic
multiplier per day that scales every store's footfall and delivery demand."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import lru_cache

import polars as pl

# Relative traffic by ISO weekday (Mon low, Sat high); the mean over a week is 1.0.
WEEKDAY_FACTORS = {1: 0.90, 2: 0.88, 3: 0.94, 4: 0.98, 5: 1.06, 6: 1.18, 7: 1.06}
WEEKDAY_NAMES = {1: "Monday", 2: "Tuesday", 3: "Wednesday", 4: "Thursday", 5: "Friday",
                 6: "Saturday", 7: "Sunday"}
MONTH_FACTORS = {1: 0.96, 2: 0.97, 3: 1.00, 4: 1.00, 5: 1.01, 6: 1.02, 7: 1.03, 8: 1.03,
                 9: 0.99, 10: 0.99, 11: 1.01, 12: 1.04}
BACK_TO_SCHOOL_FACTOR = 1.05  # Aug 10 .. Sep 5

# Holiday and event factors relative to an ordinary day of the same weekday and month.
EVENT_FACTORS = {
    "New Year's Day": 0.60,
    "Super Bowl Sunday": 1.15,
    "Valentine's Day": 1.05,
    "Easter Saturday": 1.30,
    "Easter Sunday": 0.70,
    "Memorial Day": 0.90,
    "Independence Day Eve": 1.30,
    "Independence Day": 0.80,
    "Labor Day": 0.90,
    "Halloween": 1.05,
    "Day Before Thanksgiving": 1.88,
    "Thanksgiving": 0.55,
    "Black Friday": 1.10,
    "Christmas Rush": 1.60,
    "Christmas Eve": 1.55,
    "Christmas Day": 0.15,
    "New Year's Eve": 1.25,
}


def _nth_weekday(year: int, month: int, weekday: int, n: int) -> date:
    """The n-th given ISO weekday of a month (n = -1 for the last)."""
    if n > 0:
        first = date(year, month, 1)
        offset = (weekday - first.isoweekday()) % 7
        return first + timedelta(days=offset + 7 * (n - 1))
    last = (date(year + (month == 12), month % 12 + 1, 1) - timedelta(days=1))
    return last - timedelta(days=(last.isoweekday() - weekday) % 7)


def _easter(year: int) -> date:
    """Gregorian Easter Sunday (anonymous Gregorian algorithm)."""
    a, b, c = year % 19, year // 100, year % 100
    d, e = b // 4, b % 4
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = c // 4, c % 4
    l_ = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * l_) // 451
    month = (h + l_ - 7 * m + 114) // 31
    day = ((h + l_ - 7 * m + 114) % 31) + 1
    return date(year, month, day)


@lru_cache(maxsize=64)
def holidays(year: int) -> dict[date, str]:
    thanksgiving = _nth_weekday(year, 11, 4, 4)
    easter = _easter(year)
    return {
        date(year, 1, 1): "New Year's Day",
        _nth_weekday(year, 2, 7, 2): "Super Bowl Sunday",
        date(year, 2, 14): "Valentine's Day",
        easter - timedelta(days=1): "Easter Saturday",
        easter: "Easter Sunday",
        _nth_weekday(year, 5, 1, -1): "Memorial Day",
        date(year, 7, 3): "Independence Day Eve",
        date(year, 7, 4): "Independence Day",
        _nth_weekday(year, 9, 1, 1): "Labor Day",
        date(year, 10, 31): "Halloween",
        thanksgiving - timedelta(days=1): "Day Before Thanksgiving",
        thanksgiving: "Thanksgiving",
        thanksgiving + timedelta(days=1): "Black Friday",
        date(year, 12, 23): "Christmas Rush",
        date(year, 12, 24): "Christmas Eve",
        date(year, 12, 25): "Christmas Day",
        date(year, 12, 31): "New Year's Eve",
    }


def holiday_name(day: date) -> str | None:
    return holidays(day.year).get(day)


def season(day: date) -> str:
    return {12: "WINTER", 1: "WINTER", 2: "WINTER", 3: "SPRING", 4: "SPRING", 5: "SPRING",
            6: "SUMMER", 7: "SUMMER", 8: "SUMMER"}.get(day.month, "FALL")


def is_back_to_school(day: date) -> bool:
    return (day.month == 8 and day.day >= 10) or (day.month == 9 and day.day <= 5)


@lru_cache(maxsize=4096)
def traffic_multiplier(day: date) -> float:
    """Expected traffic on `day` relative to an average day."""
    factor = WEEKDAY_FACTORS[day.isoweekday()] * MONTH_FACTORS[day.month]
    if is_back_to_school(day):
        factor *= BACK_TO_SCHOOL_FACTOR
    event = holiday_name(day)
    if event is not None:
        factor *= EVENT_FACTORS[event]
    return round(factor, 4)


def loaded_at(day: date, hour: int = 5) -> datetime:
    """When a dimension row of `day` lands: early that morning, before the stores open."""
    return datetime.combine(day, time(hour))


def generate_calendar(day: date) -> pl.DataFrame:
    """The calendar row of one business date."""
    return pl.DataFrame({
        "date": [day],
        "day_of_week": [day.isoweekday()],
        "day_name": [WEEKDAY_NAMES[day.isoweekday()]],
        "is_weekend": [day.isoweekday() >= 6],
        "holiday_name": pl.Series([holiday_name(day)], dtype=pl.String),
        "season": [season(day)],
        "traffic_multiplier": [traffic_multiplier(day)],
        "business_date": [day],
        "_loaded_at": [loaded_at(day)],
    })
