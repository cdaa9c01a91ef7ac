"""Fault injection: each named fault corrupts what it says, the matching blocking check rejects it,
and the rejected partition never reaches the lake or the warehouse."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from datetime import date
from pathlib import Path

import polars as pl
import pytest

from grocery_pipeline import checks, faults
from grocery_pipeline.assets.factory import PartitionRejected, write_audit_publish
from grocery_pipeline.settings import KNOWN_FAULTS, load_settings
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.tables import TABLES

DAY = date(2025, 1, 1)


def _frame(**columns) -> pl.DataFrame:
    return pl.DataFrame(columns)


def test_every_known_fault_has_an_injection_and_blocking_checks_that_exist():
    audits = {a.name: a for a in checks.all_audits()}
    assert set(faults.FAULTS) == set(KNOWN_FAULTS)
    for fault in faults.FAULTS.values():
        for name in fault.caught_by:
            assert name in audits, f"{fault.name}: no audit {name}"
            assert audits[name].blocking, name
            assert audits[name].table in fault.targets, name


def test_no_fault_leaves_the_frames_untouched():
    frames = {"receipts": _frame(receipt_id=[1, 2], total=[10.0, 20.0])}
    assert faults.inject((), frames)["receipts"].equals(frames["receipts"])


def test_bad_total_puts_one_receipt_a_dollar_off():
    before = _frame(receipt_id=[1, 2], total=[10.25, 20.0])
    after = faults.inject(["bad_total"], {"receipts": before})["receipts"]
    assert after["total"].to_list() == [11.25, 20.0]


def test_orphan_fk_points_an_order_at_a_customer_that_cannot_exist():
    before = _frame(order_id=[1, 2], customer_id=[7, 8])
    after = faults.inject(["orphan_fk"], {"orders": before})["orders"]
    assert after["customer_id"].to_list() == [-8, 8]
    assert after.schema == before.schema


def test_negative_stock_and_price_above_msrp_and_duplicate_key():
    frames = {
        "store_inventory": _frame(store_product_id=[1, 2], on_hand=[0, 5]),
        "store_products": _frame(store_product_id=[1, 2], list_price=[2.49, 3.0]),
        "customers": _frame(customer_id=[1, 2]),
    }
    after = faults.inject(["negative_stock", "price_above_msrp", "duplicate_key"], frames)
    assert after["store_inventory"]["on_hand"].to_list() == [-1, 5]
    assert after["store_products"]["list_price"].to_list() == [24.9, 3.0]
    assert after["customers"]["customer_id"].to_list() == [1, 2, 1]


def test_a_fault_leaves_other_tables_and_empty_frames_alone():
    frames = {"customers": _frame(customer_id=[1]), "receipts": _frame(receipt_id=[], total=[])}
    after = faults.inject(["bad_total"], frames)
    assert after["customers"].equals(frames["customers"]) and after["receipts"].height == 0


# -- through the real gates ---------------------------------------------------------------------

def _lake_state(data_dir: Path) -> dict[str, str]:
    """Every file under the data directory with a digest of its bytes, but the records of a
    published file's audits (they name the file's inode and modification time, which a run that
    publishes the same bytes again changes)."""
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.rglob("*")) if p.is_file() and not p.name.endswith(".audits.json")}


def _generate(data_dir: Path, *extra: str, days: int = 1, env: dict[str, str] | None = None
              ) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("GROCERY_", "DAGSTER_HOME"))}, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "grocery_pipeline.cli", "generate", "--preset", "tiny", "--days", str(days),
         "--data-dir", str(data_dir), *extra], capture_output=True, text=True, env=env, timeout=300)


@pytest.fixture(scope="module")
def clean_day(tmp_path_factory) -> Path:
    data = tmp_path_factory.mktemp("faults") / "data"
    result = _generate(data, days=2)  # the second day has price ticks that change prices
    assert result.returncode == 0, result.stderr
    return data


def _partition_with_rows(lake: Lake, table: str) -> tuple[date, str | None]:
    """A published partition of the table that holds rows: the first day, or for price ticks the
    first tick that changed a price (nothing changes on the first day: it opens at list prices)."""
    if TABLES[table].partitioning != "price_tick":
        return DAY, None
    for day in lake.partition_dates(table):
        for tick_dir in sorted(lake.partition_dir(table, day).glob("tick=*")):
            tick = tick_dir.name.removeprefix("tick=")
            if lake.read_partition(table, day, tick=tick).height:
                return day, tick
    raise AssertionError(f"no {table} partition with rows")


@pytest.mark.integration
@pytest.mark.parametrize("name", KNOWN_FAULTS)
def test_each_fault_is_rejected_by_its_check_and_nothing_is_published(clean_day, tmp_path, name):
    """Re-publish a clean partition of each target table with the fault on: the named check
    fails, the write is refused, and the published partition is untouched."""
    settings = load_settings(env={}, preset="tiny", data_dir=clean_day, faults=name)
    lake = Lake(settings.lake_dir)
    fault = faults.FAULTS[name]
    rejected = set()
    for table in fault.targets:
        day, tick = _partition_with_rows(lake, table)
        path = lake.partition_path(table, day, tick)
        published = path.read_bytes()
        frame = lake.read_partition(table, day, tick=tick)
        with pytest.raises(PartitionRejected) as error:
            write_audit_publish(settings, lake, day, {table: frame}, tick=tick)
        rejected |= {o.audit.name for o in error.value.failed}
        assert path.read_bytes() == published
        assert not list(path.parent.glob("*.staging"))
        # the same frame without the fault passes every blocking check of its table
        clean = load_settings(env={}, preset="tiny", data_dir=clean_day)
        outcomes = write_audit_publish(clean, lake, day, {table: frame}, tick=tick)
        assert all(o.finding.passed for o in outcomes if o.audit.blocking), table
    assert set(fault.caught_by) <= rejected, rejected


@pytest.mark.integration
def test_cli_with_bad_total_exits_non_zero_naming_the_check_and_changes_nothing(clean_day):
    before = _lake_state(clean_day)
    result = _generate(clean_day, "--faults", "bad_total")
    assert result.returncode != 0
    assert "receipts_totals_to_the_cent" in result.stderr
    assert _lake_state(clean_day) == before


@pytest.mark.integration
def test_a_faulted_first_run_never_publishes_the_bad_partition(tmp_path):
    data = tmp_path / "data"
    result = _generate(data, "--faults", "duplicate_key")
    assert result.returncode != 0 and "customers_keys_unique" in result.stderr
    lake = Lake(data / "lake")
    assert not lake.has_partition("customers", DAY)
    assert lake.has_partition("stores", DAY)  # upstream of the fault, published as usual


@pytest.mark.integration
@pytest.mark.parametrize("fault, max_rows", [("bad_total", "0"), ("negative_stock", "0"), ("orphan_fk", "0"),
                                             ("bad_total", "5000000")])
def test_a_day_audited_region_by_region_is_rejected_by_the_same_checks(tmp_path, fault, max_rows):
    """With several DCs a day of operations is made and written one region at a time, and audited
    region by region once it has more than overlap_max_rows rows (0: from the first region), else
    whole: a fault in each region's tables is still caught by its check, and nothing of the day is
    published; the same day without it publishes with every blocking check passed."""
    regions = {"GROCERY_DISTRIBUTION_CENTERS": "3", "GROCERY_STORES": "9", "GROCERY_REGION_STORE_PRODUCTS": "1",
               "GROCERY_OVERLAP_MAX_ROWS": max_rows}
    data = tmp_path / "data"
    clean = _generate(data, days=2, env=regions)
    assert clean.returncode == 0, clean.stderr  # every blocking check passed
    lake = Lake(data / "lake")
    assert pl.read_parquet(lake.partition_path("stores", DAY))["dc_id"].n_unique() > 1
    before = _lake_state(data)
    result = _generate(data, "--faults", fault, days=2, env=regions)
    assert result.returncode != 0
    assert all(check in result.stderr for check in faults.FAULTS[fault].caught_by)
    assert _lake_state(data) == before
