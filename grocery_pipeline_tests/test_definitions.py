"""The code location: it loads, validates, and every table asset is fully described."""

import os
import subprocess
import sys
from pathlib import Path

import dagster as dg

from grocery_pipeline.definitions import defs
from grocery_pipeline.tables import TABLES

ROOT = Path(__file__).resolve().parent.parent


def _table_specs():
    graph = defs.resolve_asset_graph()
    return {key: graph.get(key) for key in graph.get_all_asset_keys() if key.path[0] == "grocery"}


def test_definitions_validate_with_the_dagster_cli():
    dagster = Path(sys.executable).parent / "dagster"
    result = subprocess.run([str(dagster), "definitions", "validate", "-w", "workspace.yaml"],
                            cwd=ROOT, capture_output=True, text=True, env={**os.environ})
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_table_is_an_asset_keyed_grocery_table():
    keys = {key.path[1] for key in _table_specs()}
    assert keys == set(TABLES)


def test_every_asset_has_group_kinds_description_owner_and_column_schema():
    for key, node in _table_specs().items():
        table = TABLES[key.path[1]]
        assert node.group_name == table.group, key
        assert {"polars", "parquet", "duckdb"} <= set(node.kinds), key
        assert node.description and len(node.description) > 30, key
        assert node.owners, key
        assert node.code_version, key
        schema = node.metadata["dagster/column_schema"]
        assert [c.name for c in schema.columns] == table.column_names, key


def test_every_table_has_blocking_key_checks():
    graph = defs.resolve_asset_graph()
    checks = {(k.asset_key.path[1], k.name) for k in graph.asset_check_keys}
    for name in TABLES:
        assert (name, f"{name}_keys_unique") in checks


def test_dimensions_chain_to_their_previous_day():
    graph = defs.resolve_asset_graph()
    for name in ("customers", "products", "stores", "drivers"):
        key = dg.AssetKey(["grocery", name])
        assert key in graph.get(key).parent_keys, name


def test_dictionaries_are_observable_sources_upstream_of_dimensions():
    graph = defs.resolve_asset_graph()
    parents = graph.get(dg.AssetKey(["grocery", "products"])).parent_keys
    assert dg.AssetKey(["dictionaries", "products"]) in parents
