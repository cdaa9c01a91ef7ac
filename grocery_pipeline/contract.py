"""The dbt source contract (`dbt/models/sources.yml`), generated from the schema declarations.

Every table in `TABLES` becomes a table of source `grocery`, with its description, every column
(description and SQL type), `unique`/`not_null` on its key, one `not_null_columns` test over every
other column declared non-nullable, a `relationships` test for every foreign key, freshness on `_loaded_at` where it
means something, and the Dagster asset key it comes from. Because the writer conforms every frame
to the same declarations, the contract cannot drift from the data: a test fails when the file is
out of date.

    python -m grocery_pipeline.contract --write   # rewrite dbt/models/sources.yml
    python -m grocery_pipeline.contract --check   # exit 1 if it is out of date
"""

from __future__ import annotations

import argparse
import sys
import yaml

from grocery_pipeline.settings import PROJECT_ROOT
from grocery_pipeline.tables import LOADED_AT, TABLES, Table

SOURCE = "grocery"
SCHEMA = "grocery"
# The alias under which the dbt profile attaches warehouse.duckdb (read-only).
CATALOG_DATABASE = "warehouse"
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
SOURCES_YML = DBT_PROJECT_DIR / "models" / "sources.yml"

# Freshness is measured against the simulated clock, the close of the newest business date in the
# calendar (dbt/macros/freshness.sql). Tables land at different moments of their day (simulated
# `_loaded_at`), so each landing pattern has its own thresholds, chosen so that a table that
# missed the newest business date warns and one that missed two errors.
FRESHNESS = {
    # during the business date itself: new dimension rows, the day-opening price state
    "opening": {"warn_after": {"count": 24, "period": "hour"}, "error_after": {"count": 48, "period": "hour"}},
    # with the nightly load, after the business date closed: facts and state chains
    "nightly": {"warn_after": {"count": 12, "period": "hour"}, "error_after": {"count": 36, "period": "hour"}},
    # as each price tick closes
    "hourly": {"warn_after": {"count": 2, "period": "hour"}, "error_after": {"count": 6, "period": "hour"}},
}
OPENING_TABLES = {"price_snapshots"}
# Freshness reads the newest `_loaded_at`, so it only means something for tables that get rows
# every business date. Dimension partitions hold only the rows that came into being that day (a
# day without a new store is not staleness); the calendar, one row a day, is their heartbeat.
# Replenishment happens only when stock runs low, so a day may have no shipment or DC movement
# (the first days of a window never do); store_inventory and dc_inventory, a row per product
# every day, are the supply chain's heartbeat.
HEARTBEAT_DIMENSIONS = {"calendar"}
EVENT_DRIVEN_TABLES = {"dc_inventory_txn", "shipments", "shipment_lines", "truck_moves"}

HEADER = (
    "# Generated from grocery_pipeline/tables/ by `python -m grocery_pipeline.contract --write`;\n"
    "# do not edit by hand (a test fails when this file and the schema declarations disagree).\n"
    "# The catalog binding is below (database `warehouse`, the read-only attach of warehouse.duckdb);\n"
    "# the lake binding is in dbt_project.yml (target `lake`, dbt-duckdb external_location).\n"
)


def asset_key(table: str) -> list[str]:
    """The Dagster asset key of a table (the grocery code location's `grocery/<table>`)."""
    return [SOURCE, table]


def landing(table: Table) -> str:
    """When a table's rows land relative to their business date: opening, nightly or hourly."""
    if table.partitioning == "price_tick":
        return "hourly"
    if table.group == "dimensions" or table.name in OPENING_TABLES:
        return "opening"
    return "nightly"


def lands_every_day(table: Table) -> bool:
    if table.group == "dimensions":
        return table.name in HEARTBEAT_DIMENSIONS
    return table.name not in EVENT_DRIVEN_TABLES


def freshness(table: Table) -> dict | None:
    if LOADED_AT.name not in table.column_names or not lands_every_day(table):
        return None
    return FRESHNESS[landing(table)]


def _column_tests(table: Table, column) -> list:
    tests: list = []
    if table.key == (column.name,):
        tests.append("unique")
    if column.name in table.key:
        tests.append("not_null")
    if column.references is not None:
        parent, parent_column = column.references
        tests.append({"relationships": {"arguments": {
            "to": f"source('{SOURCE}', '{parent}')", "field": parent_column}}})
    return tests


def source_table(table: Table) -> dict:
    out: dict = {"name": table.name, "description": table.description}
    config: dict = {"tags": [table.group]}
    fresh = freshness(table)
    if fresh is not None:
        config["loaded_at_field"] = LOADED_AT.name
        config["freshness"] = fresh
    else:
        config["freshness"] = None
    config["meta"] = {
        "dagster": {"asset_key": asset_key(table.name)},
        "grocery": {"group": table.group, "key": list(table.key), "partitioning": table.partitioning},
    }
    out["config"] = config
    table_tests = []
    if len(table.key) > 1:
        table_tests.append({"unique_key": {"arguments": {"columns": list(table.key)}}})
    required = [c.name for c in table.columns if not c.nullable and c.name not in table.key]
    if required:
        # One scan for every required column, rather than a not_null test (and a query) each.
        table_tests.append({"not_null_columns": {"arguments": {"columns": required}}})
    if table_tests:
        out["data_tests"] = table_tests
    columns = []
    for column in table.columns:
        entry: dict = {"name": column.name, "description": column.description, "data_type": column.sql_type}
        tests = _column_tests(table, column)
        if tests:
            entry["data_tests"] = tests
        columns.append(entry)
    out["columns"] = columns
    return out


def contract() -> dict:
    """The sources.yml document for every declared table."""
    return {
        "version": 2,
        "sources": [{
            "name": SOURCE,
            "description": "The simulated grocery chain's warehouse: one table per Dagster asset "
                           "grocery/<table>, daily-partitioned by business_date (price ticks by tick).",
            "database": CATALOG_DATABASE,
            "schema": SCHEMA,
            "tables": [source_table(t) for t in TABLES.values()],
        }],
    }


class _ContractDumper(yaml.SafeDumper):
    """Block style indented the way dbt projects are written; short scalar lists and mappings
    inline; no anchors (every table spells out its own freshness)."""

    def ignore_aliases(self, data) -> bool:
        return True

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


def _inline_scalars(dumper: yaml.SafeDumper, data: list):
    flow = all(isinstance(v, (str, int)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


def _inline_small_mappings(dumper: yaml.SafeDumper, data: dict):
    flow = len(data) <= 2 and all(isinstance(v, (str, int)) for v in data.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", data.items(), flow_style=flow)


_ContractDumper.add_representer(list, _inline_scalars)
_ContractDumper.add_representer(dict, _inline_small_mappings)


def render() -> str:
    return HEADER + yaml.dump(contract(), Dumper=_ContractDumper, sort_keys=False, width=110,
                              allow_unicode=True, default_flow_style=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m grocery_pipeline.contract", description=__doc__.split("\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help=f"rewrite {SOURCES_YML.relative_to(PROJECT_ROOT)}")
    action.add_argument("--check", action="store_true", help="exit 1 if the file is out of date")
    args = parser.parse_args(argv)
    wanted = render()
    shown = SOURCES_YML.relative_to(PROJECT_ROOT)
    if args.check:
        current = SOURCES_YML.read_text() if SOURCES_YML.is_file() else ""
        if current != wanted:
            print(f"{shown} is out of date with grocery_pipeline/tables/; "
                  "run `python -m grocery_pipeline.contract --write`", file=sys.stderr)
            return 1
        print(f"{shown} is up to date ({len(TABLES)} tables)")
        return 0
    SOURCES_YML.parent.mkdir(parents=True, exist_ok=True)
    SOURCES_YML.write_text(wanted)
    print(f"wrote {shown} ({len(TABLES)} tables)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
