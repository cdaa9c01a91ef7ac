"""A second code location: the example dbt project (`dbt/`) as Dagster assets.

Its sources carry `meta.dagster.asset_key` = `grocery/<table>`, so the marts appear downstream of
the grocery assets in the asset graph, and the contract's source tests (keys, not-nulls,
relationships) become asset checks on those grocery assets. `store_daily_sales`, the incremental
model, is daily-partitioned like the warehouse: materializing a partition (or a range, in one
run) passes the business dates to dbt as vars start_date / end_date.

The manifest is parsed when the location loads if it is missing (a fresh clone, CI) and on every
reload under `dagster dev`; dbt reads the warehouse at GROCERY_DATA_DIR, like the pipeline.
"""

import json
import os
import shutil
import sys
from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster import AssetExecutionContext

try:
    from dagster_dbt import (
        DagsterDbtTranslator,
        DagsterDbtTranslatorSettings,
        DbtCliResource,
        DbtProject,
        dbt_assets,
    )
except ImportError as missing:  # the base install leaves dbt out
    raise ImportError(
        "code location grocery_analytics needs the dbt extra (dbt-core, dbt-duckdb, dagster-dbt): "
        "run `make install-dbt` or `pip install -e \".[dbt]\"`"
    ) from missing

from grocery_pipeline.contract import DBT_PROJECT_DIR
from grocery_pipeline.partitions import DAILY, LOAD_SETTINGS

# The dbt installed beside this interpreter (the venv's), even when the venv is not activated.
DBT_EXECUTABLE = shutil.which("dbt", path=os.path.dirname(sys.executable)) or "dbt"
ANALYTICS = "analytics"
PARTITIONED_MODELS = "store_daily_sales"

GROCERY_DBT = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR, target="catalog")
DBT = DbtCliResource(project_dir=GROCERY_DBT, dbt_executable=DBT_EXECUTABLE)

# Not GROCERY_DBT.prepare_if_dev(): its preparer looks for dbt on PATH only.
if os.environ.get("DAGSTER_IS_DEV_CLI") or not GROCERY_DBT.manifest_path.exists():
    DBT.cli(["parse", "--quiet"], target_path=GROCERY_DBT.target_path).wait()


class GroceryDbtTranslator(DagsterDbtTranslator):
    """Models become `analytics/<model>` in group `analytics`; sources keep their grocery keys."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return super().get_asset_key(dbt_resource_props)
        return dg.AssetKey([ANALYTICS, dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return ANALYTICS


# Source tests stay in `dbt build`, not checks on the grocery assets: checks that another code
# location attaches to this project's assets make the grocery location's backfills fail.
TRANSLATOR = GroceryDbtTranslator(settings=DagsterDbtTranslatorSettings(enable_source_tests_as_checks=False))


def _with_data_dir() -> None:
    # dbt's profile reads GROCERY_DATA_DIR; point it where the pipeline writes.
    os.environ.setdefault("GROCERY_DATA_DIR", str(LOAD_SETTINGS.data_dir.resolve()))


@dbt_assets(manifest=GROCERY_DBT.manifest_path, project=GROCERY_DBT, exclude=PARTITIONED_MODELS,
            dagster_dbt_translator=TRANSLATOR, name="grocery_analytics")
def grocery_analytics(context: AssetExecutionContext, dbt: DbtCliResource):
    """Staging models, the marts and the contract's source tests."""
    _with_data_dir()
    yield from dbt.cli(["build"], context=context).stream()


@dbt_assets(manifest=GROCERY_DBT.manifest_path, project=GROCERY_DBT, select=PARTITIONED_MODELS,
            dagster_dbt_translator=TRANSLATOR, name="grocery_daily_sales", partitions_def=DAILY,
            backfill_policy=dg.BackfillPolicy.single_run())
def grocery_daily_sales(context: AssetExecutionContext, dbt: DbtCliResource):
    """The incremental model, one business-date window per run."""
    _with_data_dir()
    window = context.partition_key_range
    dates = json.dumps({"start_date": window.start, "end_date": window.end})
    yield from dbt.cli(["build", "--vars", dates], context=context).stream()


defs = dg.Definitions(
    assets=[grocery_analytics, grocery_daily_sales],
    resources={"dbt": DBT},
)
