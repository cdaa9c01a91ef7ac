"""Integration: the real Dagster run writes real Parquet and a real DuckDB catalog."""

import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import duckdb
import polars as pl
import pytest

from grocery_pipeline import runner
from grocery_pipeline.storage.catalog import query_catalog
from grocery_pipeline.tables import TABLES

pytestmark = pytest.mark.integration
START = date(2025, 1, 1)
DAYS = 3


def _generate(data_dir: Path, monkeypatch, days: int = DAYS):
    monkeypatch.setenv("GROCERY_DATA_DIR", str(data_dir))
    outcome = runner.materialize_window(START, START + timedelta(days=days - 1))
    assert outcome.success, outcome.failures
    return outcome


def _table(data_dir: Path, table: str) -> pl.DataFrame:
    frame = query_catalog(data_dir / "warehouse.duckdb", f"select * from grocery.{table}")
    return frame.sort(list(TABLES[table].key)) if frame.height else frame


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("GROCERY_PRESET", "tiny")
    mp.delenv("GROCERY_FAULTS", raising=False)
    mp.delenv("DAGSTER_HOME", raising=False)
    data = tmp_path_factory.mktemp("wh") / "data"
    outcome = _generate(data, mp)
    yield data, outcome, mp
    mp.undo()


def test_every_table_has_a_view_and_a_file_per_partition(generated):
    data, outcome, _ = generated
    assert outcome.checks_failed == 0 and outcome.checks_passed > 0
    dims = [t for t in TABLES.values() if t.group == "dimensions"]
    for table in dims:
        days = sorted(p.name for p in (data / "lake" / table.name).iterdir())
        assert days == [f"date={START + timedelta(days=i)}" for i in range(DAYS)], table.name
        frame = _table(data, table.name)
        assert frame.columns == table.column_names
        assert frame.select(pl.struct(list(table.key)).is_duplicated().sum()).item() == 0


def test_foreign_keys_resolve_in_sql(generated):
    data, _, _ = generated
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        for table in TABLES.values():
            if table.group != "dimensions":
                continue
            for col in table.foreign_keys:
                parent, parent_col = col.references
                orphans = conn.execute(
                    f"select count(*) from grocery.{table.name} c where c.{col.name} is not null and not exists "
                    f"(select 1 from grocery.{parent} p where p.{parent_col} = c.{col.name} "
                    f"and p.business_date <= c.business_date)").fetchone()[0]
                assert orphans == 0, f"{table.name}.{col.name}"


def test_store_prices_within_15_percent_in_sql(generated):
    data, _, _ = generated
    with duckdb.connect(str(data / "warehouse.duckdb"), read_only=True) as conn:
        bad = conn.execute("""select count(*) from grocery.store_products sp join grocery.products p using (product_id)
                              where sp.list_price < p.base_price * 0.85 - 0.005
                                 or sp.list_price > p.base_price * 1.15 + 0.005
                                 or sp.list_price > p.msrp or p.unit_cost >= sp.list_price""").fetchone()[0]
    assert bad == 0


def test_same_window_in_another_directory_gives_identical_rows(generated, tmp_path):
    data, _, mp = generated
    other = tmp_path / "again"
    _generate(other, mp)
    for table in TABLES.values():
        if table.group != "dimensions":
            continue
        assert _table(data, table.name).equals(_table(other, table.name)), table.name
    mp.setenv("GROCERY_DATA_DIR", str(data))


def test_rematerializing_a_day_gives_identical_rows_and_no_duplicates(generated):
    data, _, mp = generated
    before = {t: _table(data, t) for t in ("customers", "store_products", "calendar")}
    mp.setenv("GROCERY_DATA_DIR", str(data))
    outcome = runner.materialize_window(START + timedelta(days=1), START + timedelta(days=1))
    assert outcome.success, outcome.failures
    for table, frame in before.items():
        assert _table(data, table).equals(frame), table


def test_cli_rejects_bad_settings_and_writes_nothing(tmp_path):
    data = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "grocery_pipeline.cli", "generate", "--preset", "gigantic",
                             "--days", "1", "--data-dir", str(data)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "'preset'" in result.stderr and "tiny, small, medium, xl" in result.stderr
    assert not data.exists()


def test_cli_rejects_bad_dictionaries_and_writes_nothing(tmp_path, dictionaries_copy):
    (dictionaries_copy / "products.csv").write_text("base_product_id,product_name\n1,Onions\n")
    data = tmp_path / "out"
    env = {"GROCERY_DICTIONARIES_DIR": str(dictionaries_copy), "PATH": "/usr/bin:/bin"}
    result = subprocess.run([sys.executable, "-m", "grocery_pipeline.cli", "generate", "--preset", "tiny",
                             "--days", "1", "--data-dir", str(data)], capture_output=True, text=True, env=env)
    assert result.returncode == 2
    assert "products.csv" in result.stderr and "missing" in result.stderr
    assert not data.exists()


def test_cli_rejects_malformed_start_date(tmp_path):
    data = tmp_path / "out"
    result = subprocess.run([sys.executable, "-m", "grocery_pipeline.cli", "generate", "--start", "2025/01/01",
                             "--data-dir", str(data)], capture_output=True, text=True)
    assert result.returncode == 2 and "'start_date'" in result.stderr and not data.exists()
