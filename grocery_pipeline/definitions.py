"""The one place that assembles assets, checks, jobs, schedules, sensors and resources."""

from __future__ import annotations

import dagster as dg

from grocery_pipeline.assets.dictionaries import DICTIONARY_ASSETS
from grocery_pipeline.assets.dimensions import DIMENSION_ASSETS
from grocery_pipeline.resources import GrocerySettings

ALL_ASSETS = [*DICTIONARY_ASSETS, *DIMENSION_ASSETS]

defs = dg.Definitions(
    assets=ALL_ASSETS,
    resources={"grocery": GrocerySettings()},
)
