"""Audits: volume. Each day's count of receipts and delivery orders falls inside the band the
calendar predicts: the preset's daily volume times the day's traffic multiplier (weekday, season,
holidays), with room for growth and for Poisson noise on small presets. A day far outside it
means the simulation or a partition is broken, so the check blocks."""

from __future__ import annotations

import math


from grocery_pipeline.checks import Audit, AuditContext, Finding
from grocery_pipeline.simulation import calendar

# Relative slack around the calendar's prediction: generous enough for a year of growth in
# customers and stores, tight enough to catch a lost or doubled day.
LOW, HIGH = 0.5, 1.8
NOISE_SIGMAS = 4.0


def traffic_multiplier(ctx: AuditContext) -> float:
    """The day's multiplier as published in the calendar table (else as the calendar computes it)."""
    day = ctx.same_day("calendar")
    if day is not None and day.height:
        return float(day["traffic_multiplier"][0])
    return calendar.traffic_multiplier(ctx.business_date)


def volume_band(per_day: float, multiplier: float) -> tuple[float, float, float]:
    """(expected, lowest, highest) row count for a day."""
    expected = per_day * multiplier
    noise = NOISE_SIGMAS * math.sqrt(expected)
    return expected, max(0.0, LOW * expected - noise), HIGH * expected + noise


def _in_band(table: str, volume_setting: str):
    def run(ctx: AuditContext) -> Finding:
        rows = ctx.frame(table).height
        multiplier = traffic_multiplier(ctx)
        expected, low, high = volume_band(getattr(ctx.settings, volume_setting), multiplier)
        inside = low <= rows <= high
        return Finding(0 if inside else rows, [] if inside else [ctx.business_date.isoformat()], {
            "rows": rows, "expected": round(expected, 1), "band": [round(low, 1), round(high, 1)],
            "traffic_multiplier": multiplier})
    return run


AUDITS: list[Audit] = [
    Audit("receipts_volume_in_band", "receipts",
          "The day's receipt count is within the band predicted by receipts_per_day x the calendar's "
          "traffic multiplier.", _in_band("receipts", "receipts_per_day"),
          day_reads={"receipts": ("receipt_id",)}),
    Audit("orders_volume_in_band", "orders",
          "The day's delivery-order count is within the band predicted by delivery_orders_per_day x the "
          "calendar's traffic multiplier.", _in_band("orders", "delivery_orders_per_day"),
          day_reads={"orders": ("order_id",)}),
]

# the tables whose audits read the day's calendar (`factory.read_ahead` reads it before their writes)
CALENDAR_READERS = frozenset(audit.table for audit in AUDITS)
