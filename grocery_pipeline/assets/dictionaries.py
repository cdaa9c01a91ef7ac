"""The dictionaries as observed external assets: editing a CSV changes its data version, which
marks every dependent table stale in the UI."""

from __future__ import annotations

import warnings

import dagster as dg

from grocery_pipeline.dictionaries import SPECS, dictionary_digest
from grocery_pipeline.resources import GrocerySettings


def dictionary_key(name: str) -> dg.AssetKey:
    return dg.AssetKey(["dictionaries", name])


def _observer(name: str):
    spec = SPECS[name]

    warnings.filterwarnings("ignore", category=dg.BetaWarning, message=".*observable_source_asset.*")

    @dg.observable_source_asset(key=dictionary_key(name), group_name="dictionaries",
                                description=f"`dictionaries/{spec.filename}`: {spec.description}")
    def _observe(grocery: GrocerySettings) -> dg.DataVersion:
        return dg.DataVersion(dictionary_digest(grocery.resolve().dictionaries_dir, name))

    return _observe


DICTIONARY_ASSETS = [_observer(name) for name in SPECS]
