"""The one place that assembles assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from grocery_pipeline.assets.dictionaries import DICTIONARY_ASSETS
from grocery_pipeline.assets.dimensions import DIMENSION_ASSETS
from grocery_pipeline.assets.operations import OPERATIONS_ASSETS
from grocery_pipeline.assets.pricing import PRICING_ASSETS
from grocery_pipeline.automation import JOBS, SCHEDULES, SENSORS
from grocery_pipeline.resources import GrocerySettings

ALL_ASSETS = [*DICTIONARY_ASSETS, *DIMENSION_ASSETS, *PRICING_ASSETS, *OPERATIONS_ASSETS]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    jobs=JOBS,
    schedules=SCHEDULES,
    sensors=SENSORS,
    resources={"grocery": GrocerySettings()},
)
