"""Integration: the example dbt project builds on a real generated warehouse, its source freshness
passes, the incremental model consumes daily partitions, and a broken foreign key is caught.

Runs the venv's real `dbt` (dbt-core + dbt-duckdb) in subprocesses against a tiny-preset window
written by a real Dagster run. The dbt output of the build and of the freshness run is saved in
test-artifacts/ so the CI log can show it.
"""

import json
import os
import shutil
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from grocery_pipeline import runner
from grocery_pipeline.contract import DBT_PROJECT_DIR
from grocery_pipeline.settings import PROJECT_ROOT
from grocery_pipeline.storage import catalog
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.tables import TABLES

pytestmark = pytest.mark.integration
START = date(2025, 1, 1)
DAYS = 3
END = START + timedelta(days=DAYS - 1)
DBT = Path(sys.executable).parent / "dbt"
ARTIFACTS = PROJECT_ROOT / "test-artifacts"


def dbt(data_dir: Path, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "GROCERY_DATA_DIR": str(data_dir), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
           # keep the runs' manifests and logs out of the developer's dbt/target and dbt/logs
           "DBT_TARGET_PATH": str(work / "target"), "DBT_LOG_PATH": str(work / "logs")}
    return subprocess.run([str(DBT), "--no-use-colors", *args], cwd=DBT_PROJECT_DIR, env=env,
                          capture_output=True, text=True, timeout=300)


def results(work: Path, name: str = "run_results.json") -> list[dict]:
    return json.loads((work / "target" / name).read_text())["results"]


def save(name: str, completed: subprocess.CompletedProcess) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / name).write_text(completed.stdout + completed.stderr)


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    data = tmp_path_factory.mktemp("dbt") / "data"
    mp.setenv("GROCERY_PRESET", "tiny")
    mp.setenv("GROCERY_DATA_DIR", str(data))
    mp.delenv("GROCERY_FAULTS", raising=False)
    mp.delenv("DAGSTER_HOME", raising=False)
    outcome = runner.materialize_window(START, END)
    mp.undo()
    assert outcome.success, outcome.failures
    return data


@pytest.fixture(scope="module")
def built(warehouse, tmp_path_factory):
    work = tmp_path_factory.mktemp("dbt-work")
    completed = dbt(warehouse, work, "build")
    save("dbt-build.log", completed)
    return work, completed


def test_dbt_build_passes_every_model_and_test(built):
    work, completed = built
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr[-2000:]
    by_kind: dict[str, list[str]] = {}
    for r in results(work):
        by_kind.setdefault(r["unique_id"].split(".")[0], []).append(r["status"])
    assert set(by_kind["model"]) == {"success"} and set(by_kind["test"]) == {"pass"}
    assert len(by_kind["model"]) >= len(TABLES) + 7  # a staging model per table, the marts
    relationships = [r for r in results(work) if "relationships" in r["unique_id"] and r["unique_id"].startswith(
        "test.grocery_analytics.source_")]
    assert len(relationships) == sum(len(t.foreign_keys) for t in TABLES.values())


def test_marts_answer_their_questions(built, warehouse):
    work, completed = built
    assert completed.returncode == 0
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as conn:
        stores = conn.execute("select count(*), sum(transactions), min(average_basket) "
                              "from marts.store_performance").fetchone()
        days = conn.execute("select count(distinct business_date) from marts.store_daily_sales").fetchone()[0]
        channels = conn.execute("select channel, sum(baskets), avg(promotion_line_share) "
                                "from marts.basket_analysis group by 1 order by 1").fetchall()
        service = conn.execute("select sum(orders_delivered), avg(median_minutes_to_deliver) "
                               "from marts.delivery_service_level").fetchone()
        stock = conn.execute("select count(*), max(stockout_rate) from marts.inventory_health").fetchone()
    assert stores[0] == 3 and stores[1] > 0 and stores[2] > 0
    assert days == DAYS
    assert [c[0] for c in channels] == ["DELIVERY", "IN_STORE"] and all(c[1] > 0 for c in channels)
    assert service[0] > 0 and service[1] > 0
    assert stock[0] == 3 * DAYS and 0 <= stock[1] <= 1


def test_source_freshness_passes_against_the_simulated_clock(built, warehouse):
    work, _ = built
    completed = dbt(warehouse, work, "source", "freshness")
    save("dbt-source-freshness.log", completed)
    assert completed.returncode == 0, completed.stdout[-4000:]
    checked = results(work, "sources.json")
    assert {r["status"] for r in checked} == {"pass"}
    assert {r["unique_id"].split(".")[-1] for r in checked} >= {"calendar", "orders", "receipts", "price_updates"}


def test_freshness_errors_when_a_table_misses_the_latest_days(built, warehouse):
    work, _ = built
    # Four days after the window closed, a table whose last load is its last day is three behind.
    late = f"{END + timedelta(days=4)} 00:00:00"
    completed = dbt(warehouse, work, "source", "freshness", "--select", "source:grocery.orders",
                    "--vars", f"{{freshness_as_of: '{late}'}}")
    assert completed.returncode != 0
    assert [r["status"] for r in results(work, "sources.json")] == ["error"]


def test_incremental_model_consumes_one_partition_at_a_time(built, warehouse):
    work, _ = built
    first_day = {"start_date": START.isoformat(), "end_date": START.isoformat()}
    completed = dbt(warehouse, work, "run", "--select", "store_daily_sales", "--full-refresh",
                    "--vars", json.dumps(first_day))
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert _processed_days(warehouse) == [START]

    completed = dbt(warehouse, work, "build", "--select", "store_daily_sales")  # catches up on the rest
    assert completed.returncode == 0, completed.stdout[-3000:]
    assert _processed_days(warehouse) == [START + timedelta(days=i) for i in range(DAYS)]


def _processed_days(data_dir: Path) -> list[date]:
    with duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True) as conn:
        return [r[0] for r in conn.execute(
            "select distinct business_date from marts.store_daily_sales order by 1").fetchall()]


def _daily_sales(data_dir: Path) -> pl.DataFrame:
    with duckdb.connect(str(data_dir / "analytics.duckdb"), read_only=True) as conn:
        frame = catalog.query_frame(conn, "select * from marts.store_daily_sales")
    return frame.sort(["store_id", "business_date", "channel"])


def test_incremental_window_rejects_a_malformed_date(built, warehouse):
    work, _ = built
    completed = dbt(warehouse, work, "run", "--select", "store_daily_sales", "--vars", "{start_date: 2025/01/02}")
    assert completed.returncode != 0
    assert "start_date" in completed.stdout and "YYYY-MM-DD" in completed.stdout


def test_lake_binding_builds_the_same_marts(built, warehouse):
    work, _ = built
    completed = dbt(warehouse, work, "build", "--target", "lake", "--select", "+store_performance",
                    "--indirect-selection", "cautious")
    assert completed.returncode == 0, completed.stdout[-4000:]
    query = "select * from marts.store_performance order by store_id"
    with duckdb.connect(str(warehouse / "analytics.duckdb"), read_only=True) as conn:
        from_catalog = conn.execute(query).fetchall()
    with duckdb.connect(str(warehouse / "analytics_lake.duckdb"), read_only=True) as conn:
        from_lake = conn.execute(query).fetchall()
    assert from_lake == from_catalog and from_lake


def test_contract_tests_fail_on_an_orphan_foreign_key_and_a_missing_value(warehouse, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(warehouse / "lake", broken / "lake")
    lake = Lake(broken / "lake")
    # The orphan_fk fault applied after publication (an order whose customer does not exist),
    # and a second order without its required tender type.
    path = lake.partition_path("orders", START)
    row = pl.int_range(pl.len())
    pl.read_parquet(path).with_columns(
        pl.when(row == 0).then(-1 - pl.col("customer_id")).otherwise(pl.col("customer_id")).alias("customer_id"),
        pl.when(row == 1).then(None).otherwise(pl.col("tender_type")).alias("tender_type"),
    ).write_parquet(path)
    catalog.ensure_views(broken / "warehouse.duckdb", lake, list(TABLES))

    work = tmp_path / "work"
    completed = dbt(broken, work, "test", "--select", "source:grocery.orders")
    assert completed.returncode != 0
    outcome = {r["unique_id"].split(".")[2]: (r["status"], r["failures"]) for r in results(work)}
    failed = {name: o for name, o in outcome.items() if o[0] != "pass"}
    assert failed == {
        "source_relationships_grocery_orders_customer_id__customer_id__source_grocery_customers_": ("fail", 1),
        next(n for n in outcome if n.startswith("source_not_null_columns_grocery_orders_")): ("fail", 1),
    }, outcome
    assert outcome["source_relationships_grocery_orders_store_id__store_id__source_grocery_stores_"] == ("pass", 0)
    assert len(outcome) > len(failed) + 3


def test_dagster_location_puts_the_marts_downstream_of_the_grocery_assets():
    import dagster as dg

    from grocery_pipeline.dbt_location import defs

    graph = defs.resolve_asset_graph()
    assert graph.get(dg.AssetKey(["analytics", "stg_grocery__orders"])).parent_keys == {dg.AssetKey(["grocery", "orders"])}
    assert dg.AssetKey(["analytics", "store_performance"]) in graph.get_all_asset_keys()
    assert graph.get(dg.AssetKey(["analytics", "store_daily_sales"])).partitions_def is not None
    foreign = {c for c in graph.asset_check_keys if c.asset_key.path[0] == "grocery"}
    assert not foreign, "checks on grocery assets from this location break the grocery location's backfills"


def test_dagster_materializes_one_partition_of_store_daily_sales(built, warehouse, monkeypatch):
    import dagster as dg

    from grocery_pipeline import dbt_location

    monkeypatch.setenv("GROCERY_DATA_DIR", str(warehouse))
    before = _daily_sales(warehouse)
    day = START + timedelta(days=1)
    result = dg.materialize([dbt_location.grocery_daily_sales], partition_key=day.isoformat(),
                            resources={"dbt": dbt_location.DBT}, raise_on_error=False)
    assert result.success
    (materialization,) = result.get_asset_materialization_events()
    assert materialization.asset_key == dg.AssetKey(["analytics", "store_daily_sales"])
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks)
    assert _daily_sales(warehouse).equals(before)  # the day was replaced, not appended


def test_a_reader_holding_the_catalog_does_not_block_the_next_day(built, warehouse, monkeypatch):
    # What the catalog target does for the length of a dbt run: attach warehouse.duckdb read-only.
    monkeypatch.setenv("GROCERY_PRESET", "tiny")
    monkeypatch.setenv("GROCERY_DATA_DIR", str(warehouse))
    monkeypatch.delenv("GROCERY_FAULTS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    next_day = END + timedelta(days=1)
    with duckdb.connect(str(warehouse / "warehouse.duckdb"), read_only=True) as reader:
        outcome = runner.materialize_window(next_day, next_day)
        assert outcome.success, outcome.failures
        latest = reader.execute("select max(business_date) from grocery.orders").fetchone()[0]
    assert latest == next_day  # the reader sees the new partition through the same views
