"""Integration: daily operations through real Dagster runs into real Parquet and a real DuckDB
catalog. Every SPEC invariant holds by SQL on the warehouse; the window is identical when generated
again elsewhere; a day re-materialized alone reads only the previous day's state and is identical."""

import shutil
from datetime import date, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl
import pytest

from grocery_pipeline.assets.factory import asset_key
from grocery_pipeline.assets.operations import OPERATIONS_TABLES, STATE_TABLES
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline_tests.test_operations import INVARIANTS
# The tiny 3-day window of the warehouse tests (its fixture runs once for this module too).
from grocery_pipeline_tests.test_warehouse import DAYS, START, _generate, generated  # noqa: F401

pytestmark = pytest.mark.integration
# On the warehouse, prices come from the price ticks; the pricing checks gate them at publish time.
WAREHOUSE_INVARIANTS = {k: v for k, v in INVARIANTS.items() if k != "unit price is the price in effect at sale time"}


def _lake_frame(data: Path, table: str, day: date) -> pl.DataFrame:
    return Lake(data / "lake").read_partition(table, day)


def test_every_day_publishes_every_operations_table(generated):
    data, outcome, _ = generated
    assert outcome.checks_passed > 0
    assert not [f for f in outcome.failures if "step" in f]
    for table in OPERATIONS_TABLES:
        days = sorted(p.name for p in (data / "lake" / table.name).iterdir())
        assert days == [f"date={START + timedelta(days=i)}" for i in range(DAYS)], table.name


def test_every_invariant_holds_in_the_warehouse_by_sql(generated):
    data, _, _ = generated
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        found = {name: conn.execute(sql).fetchone()[0] for name, sql in WAREHOUSE_INVARIANTS.items()}
        assert conn.execute("select count(*) from grocery.receipt_lines").fetchone()[0] > 0
        assert conn.execute("select count(*) from grocery.bundle_stops").fetchone()[0] > 0
    assert found == {name: 0 for name in WAREHOUSE_INVARIANTS}


def test_the_window_is_identical_when_generated_again_elsewhere(generated, tmp_path):
    data, _, mp = generated
    other = tmp_path / "again"
    _generate(other, mp)
    mp.setenv("GROCERY_DATA_DIR", str(data))
    for table in OPERATIONS_TABLES:
        for i in range(DAYS):
            day = START + timedelta(days=i)
            assert _lake_frame(data, table.name, day).equals(_lake_frame(other, table.name, day)), (table.name, day)


def test_a_day_rematerialized_alone_reads_only_yesterday_and_is_identical(generated, tmp_path):
    data, _, mp = generated
    copy = tmp_path / "copy"
    shutil.copytree(data, copy)
    last = START + timedelta(days=DAYS - 1)
    before = {t.name: _lake_frame(copy, t.name, last) for t in OPERATIONS_TABLES}
    # Older state partitions are gone: the day may only need the previous day's state.
    for table in STATE_TABLES:
        shutil.rmtree(copy / "lake" / table / f"date={START}")
    mp.setenv("GROCERY_DATA_DIR", str(copy))
    from grocery_pipeline.definitions import ALL_ASSETS, defs

    result = dg.materialize(ALL_ASSETS, selection=dg.AssetSelection.assets(asset_key("receipts")).required_multi_asset_neighbors(),
                            partition_key=last.isoformat(), resources=defs.resources, instance=dg.DagsterInstance.ephemeral(),
                            raise_on_error=False)
    mp.setenv("GROCERY_DATA_DIR", str(data))
    assert result.success
    for table, frame in before.items():
        assert _lake_frame(copy, table, last).equals(frame), table


def test_realism_report_reads_the_warehouse(generated, capsys):
    from grocery_pipeline.cli import main

    data, _, _ = generated
    assert main(["report", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "reorder share of delivery lines" in out and "targets met or not applicable" in out
