"""Readers open during a run: a DuckDB read-only connection and a dbt-style read-only attachment
query the catalog all through a run that publishes new days. Neither fails, the run is not held
up, and no reader ever sees half a partition."""

from __future__ import annotations

import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from grocery_pipeline.storage.catalog import ensure_views
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline_tests.test_deploy_support import (
    child_env, generate_reference, start_generation, start_process)

pytestmark = pytest.mark.integration

START = date(2025, 1, 1)
PUBLISHED_DAYS = 2
NEW_DAYS = 2
FIRST_NEW = START + timedelta(days=PUBLISHED_DAYS)
LAST_NEW = FIRST_NEW + timedelta(days=NEW_DAYS - 1)
WATCHED = ("customers", "store_products", "orders", "order_items", "receipts", "store_inventory")


class Reader(threading.Thread):
    """Queries rows per business date of the watched tables in a loop until told to stop."""

    def __init__(self, conn: duckdb.DuckDBPyConnection, schema: str):
        super().__init__(daemon=True)
        self.conn, self.schema = conn, schema
        self.stop, self.errors, self.queries = threading.Event(), [], 0
        self.seen: dict[tuple[str, date], set[int]] = {}

    def run(self) -> None:
        while not self.stop.is_set():
            for table in WATCHED:
                try:
                    rows = self.conn.execute(
                        f"select business_date, count(*) from {self.schema}.{table} group by 1").fetchall()
                except duckdb.Error as error:
                    self.errors.append(f"{table}: {error}")
                    continue
                self.queries += 1
                for day, count in rows:
                    self.seen.setdefault((table, day), set()).add(count)
            time.sleep(0.05)


def _final_counts(warehouse: Path) -> dict[tuple[str, date], int]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        return {(table, day): count for table in WATCHED for day, count in conn.execute(
            f"select business_date, count(*) from grocery.{table} group by 1").fetchall()}


@pytest.fixture
def warehouse(tmp_path, monkeypatch):
    monkeypatch.setenv("GROCERY_PRESET", "tiny")
    monkeypatch.delenv("GROCERY_FAULTS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    data = tmp_path / "data"
    generate_reference(data, START, FIRST_NEW - timedelta(days=1), monkeypatch)
    return data


def test_readers_open_through_a_run_neither_fail_nor_hold_it_up(warehouse, tmp_path):
    path = warehouse / "warehouse.duckdb"
    direct = duckdb.connect(str(path), read_only=True)
    # how the dbt profile reads it: its own database file with the warehouse attached read-only
    dbt_style = duckdb.connect(str(tmp_path / "analytics.duckdb"))
    dbt_style.execute(f"ATTACH '{path}' AS warehouse (READ_ONLY)")
    readers = [Reader(direct, "grocery"), Reader(dbt_style, "warehouse.grocery")]
    for reader in readers:
        reader.start()
    try:
        run = start_generation(warehouse, FIRST_NEW, LAST_NEW, tmp_path / "run.log")
        # The readers hold the catalog for the whole run: a run that needed the write lock would
        # wait for them and fail after its retries, not finish.
        assert run.wait(timeout=600) == 0, (tmp_path / "run.log").read_text()[-3000:]
        assert all(r.is_alive() for r in readers)
    finally:
        for reader in readers:
            reader.stop.set()
            reader.join(timeout=30)
    latest = {r.schema: r.conn.execute(f"select max(business_date) from {r.schema}.orders").fetchone()[0]
              for r in readers}
    direct.close(), dbt_style.close()

    final = _final_counts(path)
    assert {day for _, day in final} == {START + timedelta(days=i) for i in range(PUBLISHED_DAYS + NEW_DAYS)}
    for reader in readers:
        assert not reader.errors, reader.errors[:5]
        assert reader.queries > len(WATCHED)
        # a reader saw each partition either not at all or whole: never a count other than the final one
        torn = {key: counts for key, counts in reader.seen.items() if counts != {final[key]}}
        assert not torn, torn
    assert set(latest.values()) == {LAST_NEW}  # the open connections see the new days through the views


def test_creating_a_missing_view_waits_for_a_reader_to_let_go(warehouse):
    path = warehouse / "warehouse.duckdb"
    with duckdb.connect(str(path)) as conn:  # a table whose view does not exist yet
        conn.execute("drop view grocery.calendar")
        conn.execute("delete from main.grocery_catalog_views where view_name = 'calendar'")
    script = ("import sys; from pathlib import Path; from grocery_pipeline.storage.catalog import ensure_views; "
              "from grocery_pipeline.storage.lake import Lake; "
              "print(ensure_views(Path(sys.argv[1]), Lake(Path(sys.argv[2])), ['calendar', 'customers']))")
    hold = 3.0
    with duckdb.connect(str(path), read_only=True) as reader:
        started = time.monotonic()
        writer = start_process([sys.executable, "-c", script, str(path), str(warehouse / "lake")],
                               child_env(), warehouse / "ensure_views.log")
        time.sleep(hold)
        assert writer.poll() is None  # still waiting for the write lock
        assert reader.execute("select count(*) from grocery.customers").fetchone()[0] > 0
    assert writer.wait(timeout=60) == 0, (warehouse / "ensure_views.log").read_text()[-2000:]
    assert time.monotonic() - started >= hold
    assert "['calendar']" in (warehouse / "ensure_views.log").read_text()
    # with every view in place, nothing needs the write lock: a reader never blocks the refresh
    with duckdb.connect(str(path), read_only=True):
        assert ensure_views(path, Lake(warehouse / "lake"), ["calendar", "customers"]) == []
