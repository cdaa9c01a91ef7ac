"""What every generator receives: the settings, the dictionaries and the business date."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

import numpy as np
import polars as pl

from grocery_pipeline.dictionaries import Dictionaries
from grocery_pipeline.settings import Settings
from grocery_pipeline.simulation import calendar
from grocery_pipeline.simulation.rng import rng_for


@dataclass(frozen=True)
class Day:
    settings: Settings
    dictionaries: Dictionaries
    business_date: date
    # The DC whose region is simulated, when a day of operations is simulated region by region:
    # each region draws from streams of its own.
    region: int | None = None

    @property
    def index(self) -> int:
        """Days since the first partition (0 = the initial population)."""
        return (self.business_date - self.settings.start_date).days

    @property
    def is_initial(self) -> bool:
        return self.index == 0

    @property
    def traffic_multiplier(self) -> float:
        return calendar.traffic_multiplier(self.business_date)

    def rng(self, table: str, *stream: object) -> np.random.Generator:
        region = () if self.region is None else ("region", self.region)
        return rng_for(self.settings.seed, table, self.business_date, *stream, *region)

    def loaded_at(self, hour: int = 5) -> datetime:
        return calendar.loaded_at(self.business_date, hour)


def shift_days(anchor: date, days) -> pl.Series:
    """Dates `days` (an integer array, may be negative) after `anchor`, as a polars Date series."""
    offsets = np.asarray(days, dtype=np.int64).astype("timedelta64[D]")
    return pl.Series(np.datetime64(anchor, "D") + offsets, dtype=pl.Date)
