"""Dagster resources: the simulation settings (editable in the launchpad) and the warehouse."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import dagster as dg

from grocery_pipeline.settings import Settings, load_settings
from grocery_pipeline.storage.lake import Lake


class GrocerySettings(dg.ConfigurableResource):
    """Simulation settings. Unset fields come from `GROCERY_*` environment variables, then the preset.

    The partition start date is fixed when the code location loads (`GROCERY_START_DATE`), because
    the partition definitions depend on it.
    """

    preset: Optional[str] = None
    seed: Optional[int] = None
    data_dir: Optional[str] = None
    dictionaries_dir: Optional[str] = None
    stores: Optional[int] = None
    customers: Optional[int] = None
    products: Optional[int] = None
    drivers: Optional[int] = None
    delivery_orders_per_day: Optional[int] = None
    receipts_per_day: Optional[int] = None
    faults: Optional[str] = None

    def resolve(self) -> Settings:
        return load_settings(**{k: v for k, v in self._overrides().items() if v is not None})

    def _overrides(self) -> dict:
        return {name: getattr(self, name) for name in (
            "preset", "seed", "data_dir", "dictionaries_dir", "stores", "customers", "products",
            "drivers", "delivery_orders_per_day", "receipts_per_day", "faults")}

    def lake(self) -> Lake:
        return Lake(self.resolve().lake_dir)

    def warehouse_path(self) -> Path:
        return self.resolve().warehouse_path
