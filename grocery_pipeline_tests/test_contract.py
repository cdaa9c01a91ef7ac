"""The dbt source contract is the schema declarations, and cannot drift from them."""

import dataclasses

import polars as pl
import yaml

from grocery_pipeline import contract
from grocery_pipeline.tables import TABLES, Column, Table


def _committed() -> dict:
    return yaml.safe_load(contract.SOURCES_YML.read_text())


def _source_tables(document: dict) -> dict[str, dict]:
    (source,) = document["sources"]
    return {t["name"]: t for t in source["tables"]}


def _tests(entry: dict) -> list:
    return entry.get("data_tests", [])


def test_committed_sources_yml_is_exactly_what_the_declarations_generate():
    assert contract.SOURCES_YML.read_text() == contract.render(), (
        "dbt/models/sources.yml is out of date: run `python -m grocery_pipeline.contract --write`")


def test_check_command_fails_when_the_file_is_stale(tmp_path, monkeypatch, capsys):
    stale = tmp_path / "sources.yml"
    stale.write_text(contract.render().replace("_loaded_at", "loaded_at", 1))
    monkeypatch.setattr(contract, "SOURCES_YML", stale)
    monkeypatch.setattr(contract, "PROJECT_ROOT", tmp_path)
    assert contract.main(["--check"]) == 1
    assert "out of date" in capsys.readouterr().err
    assert contract.main(["--write"]) == 0 and contract.main(["--check"]) == 0


def test_every_declared_table_and_column_is_in_the_contract_in_order():
    tables = _source_tables(_committed())
    assert list(tables) == list(TABLES)
    for name, table in TABLES.items():
        entry = tables[name]
        assert entry["description"] == table.description
        assert [c["name"] for c in entry["columns"]] == table.column_names, name
        for declared, column in zip(table.columns, entry["columns"]):
            assert column["description"] == declared.description, f"{name}.{declared.name}"
            assert column["data_type"] == declared.sql_type, f"{name}.{declared.name}"


def test_a_column_added_in_code_but_not_in_the_contract_is_caught(monkeypatch):
    orders = TABLES["orders"]
    widened = dataclasses.replace(orders, columns=orders.columns + (
        Column("coupon_channel", pl.String(), "Where the coupon came from."),))
    monkeypatch.setitem(TABLES, "orders", widened)
    assert contract.render() != contract.SOURCES_YML.read_text()
    generated = _source_tables(contract.contract())["orders"]
    assert generated["columns"][-1]["name"] == "coupon_channel"


def test_keys_are_unique_and_not_null():
    tables = _source_tables(_committed())
    for name, table in TABLES.items():
        columns = {c["name"]: c for c in tables[name]["columns"]}
        for key_column in table.key:
            assert "not_null" in _tests(columns[key_column]), f"{name}.{key_column}"
        if len(table.key) == 1:
            assert "unique" in _tests(columns[table.key[0]]), name
        else:
            assert {"unique_key": {"arguments": {"columns": list(table.key)}}} in _tests(tables[name]), name


def test_non_nullable_columns_are_required_and_nullable_ones_are_not():
    tables = _source_tables(_committed())
    for name, table in TABLES.items():
        required = {c.name for c in table.columns if not c.nullable}
        tested = {c["name"] for c in tables[name]["columns"] if "not_null" in _tests(c)}
        for test in _tests(tables[name]):
            if "not_null_columns" in test:
                tested |= set(test["not_null_columns"]["arguments"]["columns"])
        assert tested == required, name


def test_every_foreign_key_has_a_relationships_test_to_its_parent():
    tables = _source_tables(_committed())
    expected = sum(len(t.foreign_keys) for t in TABLES.values())
    found = 0
    for name, table in TABLES.items():
        columns = {c["name"]: c for c in tables[name]["columns"]}
        for fk in table.foreign_keys:
            parent, parent_column = fk.references
            assert parent in TABLES, f"{name}.{fk.name} references undeclared table {parent}"
            assert parent_column in TABLES[parent].column_names, f"{name}.{fk.name} -> {parent}.{parent_column}"
            wanted = {"relationships": {"arguments": {"to": f"source('grocery', '{parent}')",
                                                      "field": parent_column}}}
            assert wanted in _tests(columns[fk.name]), f"{name}.{fk.name}"
            found += 1
    assert found == expected and found > 0


def test_asset_keys_match_the_dagster_assets():
    from grocery_pipeline.assets.factory import asset_key
    from grocery_pipeline.definitions import defs

    defined = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    for name, entry in _source_tables(_committed()).items():
        key = entry["config"]["meta"]["dagster"]["asset_key"]
        assert key == asset_key(name).path
        assert "/".join(key) in defined, f"{name}: no Dagster asset {key}"


def test_freshness_on_tables_that_land_every_day_and_none_elsewhere():
    tables = _source_tables(_committed())
    every_day = {"calendar", "price_updates", "price_snapshots", "receipts", "orders", "store_inventory",
                 "dc_inventory"}
    assert every_day <= {n for n, t in TABLES.items() if contract.lands_every_day(t)}
    assert not contract.lands_every_day(TABLES["stores"]) and not contract.lands_every_day(TABLES["shipments"])
    for group in {t.group for t in TABLES.values()}:  # every group keeps a heartbeat
        assert any(contract.lands_every_day(t) for t in TABLES.values() if t.group == group), group
    for name, table in TABLES.items():
        config = tables[name]["config"]
        if contract.lands_every_day(table):
            assert config["loaded_at_field"] == "_loaded_at", name
            assert config["freshness"] == contract.FRESHNESS[contract.landing(table)], name
        else:
            assert config["freshness"] is None and "loaded_at_field" not in config, name


def test_landing_patterns_follow_the_groups():
    assert contract.landing(TABLES["calendar"]) == "opening"
    assert contract.landing(TABLES["price_snapshots"]) == "opening"
    assert contract.landing(TABLES["price_updates"]) == "hourly"
    assert contract.landing(TABLES["orders"]) == "nightly"


def test_a_table_without_loaded_at_gets_no_freshness():
    unloaded = Table("store_openings", "sales", "Stores opened.",
                     (Column("store_id", pl.Int64(), "Store."),), key=("store_id",))
    entry = contract.source_table(unloaded)
    assert entry["config"]["freshness"] is None and "loaded_at_field" not in entry["config"]


def test_catalog_binding_reads_the_grocery_schema_of_the_attached_warehouse():
    (source,) = _committed()["sources"]
    assert (source["name"], source["database"], source["schema"]) == ("grocery", "warehouse", "grocery")
    profiles = yaml.safe_load((contract.DBT_PROJECT_DIR / "profiles.yml").read_text())
    catalog = profiles["grocery"]["outputs"]["catalog"]
    assert profiles["grocery"]["target"] == "catalog"
    (attach,) = catalog["attach"]
    assert attach["alias"] == source["database"] and attach["read_only"] is True
    assert attach["path"].endswith("/warehouse.duckdb")
