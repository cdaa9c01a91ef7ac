"""Daily operations on the tiny preset: every invariant of the product, proven by SQL on a window of
days simulated in memory (fast), then the same SQL on a warehouse written by a real Dagster run."""

import duckdb
import polars as pl
import pytest

from grocery_pipeline.simulation import operations
from grocery_pipeline.simulation.chain import run_days
from grocery_pipeline.simulation.pricing import PriceBook
from grocery_pipeline.tables import TABLES

DAYS = 5
OPERATIONS = [t.name for t in TABLES.values() if t.group in ("sales", "delivery", "supply_chain")]
DIMENSIONS = ["calendar", "stores", "trucks", "products", "store_products", "customers", "drivers"]

# Each query counts rows that break one invariant of SPEC.md; all must be 0.
INVARIANTS = {
    "receipt line total = qty x unit price - discount": """
        SELECT count(*) FROM grocery.receipt_lines
        WHERE abs(round(quantity * unit_price - discount, 2) - line_total) > 0.001 OR quantity < 1 OR discount < 0""",
    "receipt subtotal = lines, total = subtotal - discount + tax, >= 1 line": """
        SELECT count(*) FROM grocery.receipts r LEFT JOIN (
            SELECT receipt_id, sum(line_total) s, count(*) n, sum(quantity) q FROM grocery.receipt_lines GROUP BY 1) l
            USING (receipt_id)
        WHERE l.n IS NULL OR abs(r.subtotal - round(l.s, 2)) > 0.001 OR r.line_count != l.n OR r.item_count != l.q
           OR abs(r.total - round(r.subtotal - r.basket_discount + r.tax, 2)) > 0.001 OR r.total < 0""",
    "order item total = delivered qty x unit price - discount": """
        SELECT count(*) FROM grocery.order_items
        WHERE abs(round(quantity * unit_price - discount, 2) - line_total) > 0.001 OR quantity > quantity_ordered""",
    "order subtotal = items, total = subtotal - discount + tax + fee + tip, >= 1 item": """
        SELECT count(*) FROM grocery.orders o LEFT JOIN (
            SELECT order_id, sum(line_total) s, count(*) n FROM grocery.order_items GROUP BY 1) i USING (order_id)
        WHERE i.n IS NULL OR abs(o.subtotal - round(i.s, 2)) > 0.001 OR o.line_count != i.n
           OR abs(o.total - round(o.subtotal - o.basket_discount + o.tax + o.delivery_fee + o.tip, 2)) > 0.001""",
    "cancelled orders charge nothing and have no delivered units": """
        SELECT count(*) FROM grocery.orders o JOIN grocery.order_items i USING (order_id)
        WHERE o.status = 'CANCELLED' AND (o.total != 0 OR i.quantity != 0)""",
    "unit price is the price in effect at sale time": """
        SELECT count(*) FROM (SELECT store_product_id, unit_price FROM grocery.receipt_lines
                              UNION ALL SELECT store_product_id, unit_price FROM grocery.order_items) l
        JOIN (SELECT DISTINCT store_product_id, list_price FROM grocery.store_products) p USING (store_product_id)
        WHERE l.unit_price != p.list_price""",
    "on-hand never negative": """
        SELECT (SELECT count(*) FROM grocery.store_inventory WHERE on_hand < 0)
             + (SELECT count(*) FROM grocery.dc_inventory WHERE on_hand < 0)""",
    "store EOD(d) = EOD(d-1) (or initial stock) + txn(d), no row disappears": """
        WITH moves AS (SELECT store_product_id, business_date, sum(quantity) q FROM grocery.store_inventory_txn
                       GROUP BY ALL),
             opening AS (SELECT DISTINCT store_product_id, initial_on_hand FROM grocery.store_products),
             first_day AS (SELECT min(business_date) d FROM grocery.store_inventory)
        SELECT count(*) FROM grocery.store_inventory t
        LEFT JOIN grocery.store_inventory y ON y.store_product_id = t.store_product_id
             AND y.business_date = t.business_date - 1
        LEFT JOIN opening o ON o.store_product_id = t.store_product_id
        LEFT JOIN moves m ON m.store_product_id = t.store_product_id AND m.business_date = t.business_date
        WHERE t.on_hand != coalesce(y.on_hand, o.initial_on_hand) + coalesce(m.q, 0)
           OR (y.on_hand IS NULL AND t.business_date > (SELECT d FROM first_day)
               AND t.store_product_id IN (SELECT store_product_id FROM grocery.store_inventory
                                          WHERE business_date = t.business_date - 1))""",
    "store rows carried every day": """
        SELECT count(*) FROM grocery.store_inventory y
        WHERE y.business_date < (SELECT max(business_date) FROM grocery.store_inventory)
          AND NOT EXISTS (SELECT 1 FROM grocery.store_inventory t WHERE t.store_product_id = y.store_product_id
                          AND t.business_date = y.business_date + 1)""",
    "DC EOD(d) = EOD(d-1) (or 0) + txn(d)": """
        WITH moves AS (SELECT dc_id, product_id, business_date, sum(quantity) q FROM grocery.dc_inventory_txn
                       GROUP BY ALL)
        SELECT count(*) FROM grocery.dc_inventory t
        LEFT JOIN grocery.dc_inventory y ON y.dc_id = t.dc_id AND y.product_id = t.product_id
             AND y.business_date = t.business_date - 1
        LEFT JOIN moves m ON m.dc_id = t.dc_id AND m.product_id = t.product_id AND m.business_date = t.business_date
        WHERE t.on_hand != coalesce(y.on_hand, 0) + coalesce(m.q, 0)""",
    "sales movements equal the lines sold": """
        WITH sold AS (SELECT 'SALE' txn_type, receipt_id ref, store_product_id, sum(quantity) q
                      FROM grocery.receipt_lines GROUP BY ALL
                      UNION ALL SELECT 'ONLINE_SALE', order_id, store_product_id, sum(quantity) FROM grocery.order_items
                      WHERE quantity > 0 GROUP BY ALL),
             moved AS (SELECT txn_type, reference_id ref, store_product_id, -sum(quantity) q
                       FROM grocery.store_inventory_txn WHERE txn_type IN ('SALE', 'ONLINE_SALE') GROUP BY ALL)
        SELECT count(*) FROM sold FULL JOIN moved USING (txn_type, ref, store_product_id)
        WHERE sold.q IS DISTINCT FROM moved.q""",
    "order status timestamps in order, ending in the order's status": """
        WITH e AS (SELECT *, lag(event_ts) OVER w prev_ts, lag(status) OVER w prev_status,
                          row_number() OVER w rn, count(*) OVER (PARTITION BY order_id) n
                   FROM grocery.order_events WINDOW w AS (PARTITION BY order_id ORDER BY event_seq))
        SELECT count(*) FROM e JOIN grocery.orders o USING (order_id)
        WHERE e.event_ts < e.prev_ts OR e.event_seq != e.rn
           OR (e.rn = 1 AND e.status != 'PENDING') OR (e.rn = e.n AND e.status != o.status)
           OR (e.rn > 1 AND (e.prev_status, e.status) NOT IN (
               ('PENDING', 'CONFIRMED'), ('CONFIRMED', 'PICKING'), ('PICKING', 'OUT_FOR_DELIVERY'),
               ('OUT_FOR_DELIVERY', 'DELIVERED'), ('CONFIRMED', 'CANCELLED'), ('PICKING', 'CANCELLED')))
           OR o.placed_at != (SELECT min(event_ts) FROM grocery.order_events x WHERE x.order_id = o.order_id)""",
    "delivered orders are exactly one bundle stop, others none": """
        SELECT count(*) FROM grocery.orders o LEFT JOIN (
            SELECT order_id, count(*) n FROM grocery.bundle_stops GROUP BY 1) s USING (order_id)
        WHERE (o.status = 'DELIVERED') != (coalesce(s.n, 0) = 1) OR coalesce(s.n, 0) > 1""",
    "a driver is never in two bundles at once": """
        SELECT count(*) FROM grocery.bundles a JOIN grocery.bundles b
          ON a.driver_id = b.driver_id AND a.bundle_id < b.bundle_id
         AND a.dispatched_at < b.returned_at AND b.dispatched_at < a.returned_at""",
    "bundles carry 1-5 orders of their own store, stops in arrival order within the run": """
        WITH s AS (SELECT s.*, o.store_id order_store, o.delivered_at,
                          lag(arrival_ts) OVER (PARTITION BY bundle_id ORDER BY stop_seq) prev_arrival
                   FROM grocery.bundle_stops s JOIN grocery.orders o USING (order_id))
        SELECT count(*) FROM s JOIN grocery.bundles b USING (bundle_id)
        WHERE b.order_count NOT BETWEEN 1 AND 5 OR s.order_store != b.store_id
           OR s.arrival_ts NOT BETWEEN b.dispatched_at AND b.returned_at OR s.arrival_ts < s.prev_arrival
           OR s.delivered_at != s.arrival_ts
           OR b.order_count != (SELECT count(*) FROM grocery.bundle_stops x WHERE x.bundle_id = b.bundle_id)""",
    "reordered only if the customer received the product before": """
        WITH lines AS (SELECT o.customer_id, i.product_id, i.reordered, i.quantity, o.business_date
                       FROM grocery.order_items i JOIN grocery.orders o USING (order_id))
        SELECT count(*) FROM lines l WHERE l.reordered AND NOT EXISTS (
            SELECT 1 FROM lines e WHERE e.customer_id = l.customer_id AND e.product_id = l.product_id
              AND e.quantity > 0 AND e.business_date < l.business_date)""",
    "a truck runs one shipment at a time, within capacity, refrigerated goods on reefers": """
        SELECT (SELECT count(*) FROM grocery.shipments a JOIN grocery.shipments b
                  ON a.truck_id = b.truck_id AND a.shipment_id < b.shipment_id
                 AND a.loading_at < b.truck_back_at AND b.loading_at < a.truck_back_at)
             + (SELECT count(*) FROM grocery.shipments s JOIN grocery.trucks t USING (truck_id)
                WHERE s.cases > t.capacity_cases OR (s.refrigerated AND NOT t.refrigerated))
             + (SELECT count(*) FROM grocery.shipment_lines l JOIN grocery.shipments s USING (shipment_id)
                JOIN grocery.trucks t USING (truck_id) JOIN grocery.products p USING (product_id)
                WHERE p.refrigerated AND NOT t.refrigerated)""",
    "truck moves in order, completing before the receiving": """
        SELECT count(*) FROM grocery.truck_moves m
        JOIN grocery.truck_moves n ON n.shipment_id = m.shipment_id AND n.event_seq = m.event_seq + 1
        WHERE n.status_ts < m.status_ts""",
    "sales and stock moves happen on their day, late runs land before the facts do": """
        SELECT (SELECT count(*) FROM grocery.receipts WHERE receipt_ts::DATE != business_date)
             + (SELECT count(*) FROM grocery.store_inventory_txn WHERE txn_ts::DATE != business_date)
             + (SELECT count(*) FROM grocery.orders WHERE placed_at::DATE != business_date)
             + (SELECT count(*) FROM grocery.order_events WHERE event_ts >= _loaded_at)
             + (SELECT count(*) FROM grocery.bundles WHERE returned_at >= _loaded_at)""",
}


def violations(conn: duckdb.DuckDBPyConnection, queries: dict[str, str] = INVARIANTS) -> dict[str, int]:
    return {name: conn.execute(sql).fetchone()[0] for name, sql in queries.items()}


def load_in_memory(frames_by_day: list[dict[str, pl.DataFrame]], dims: dict[str, pl.DataFrame]) -> duckdb.DuckDBPyConnection:
    """A DuckDB database with schema `grocery` holding the simulated window."""
    conn = duckdb.connect()
    conn.execute("CREATE SCHEMA grocery")
    for name in OPERATIONS:
        frame = pl.concat([TABLES[name].conform(f[name]) for f in frames_by_day])
        conn.register(f"_{name}", frame.to_arrow())
        conn.execute(f'CREATE TABLE grocery."{name}" AS SELECT * FROM _{name}')
    for name, frame in dims.items():
        conn.register(f"_{name}", frame.to_arrow())
        conn.execute(f'CREATE TABLE grocery."{name}" AS SELECT * FROM _{name}')
    return conn


def dimensions_of(world) -> dict[str, pl.DataFrame]:
    return {"store_products": world.store_products, "products": world.products, "trucks": world.trucks,
            "stores": world.stores}


@pytest.fixture(scope="module")
def window(tiny_settings, dictionaries):
    """Five business days of the tiny chain, simulated in memory, with the dimensions as of the last."""
    runs = list(run_days(tiny_settings, dictionaries, DAYS))
    frames = [f for _, _, f in runs]
    return runs, frames, load_in_memory(frames, dimensions_of(runs[-1][1]))


def test_every_invariant_holds_on_a_simulated_window(window):
    _, frames, conn = window
    assert all(f["receipts"].height and f["orders"].height for f in frames)
    assert sum(f["shipments"].height for f in frames) > 0, "no replenishment in the window"
    assert violations(conn) == {name: 0 for name in INVARIANTS}


def test_invariant_queries_catch_broken_data(window):
    runs, frames, _ = window
    broken = [dict(f) for f in frames]
    broken[0]["receipts"] = broken[0]["receipts"].with_columns(
        total=pl.when(pl.int_range(pl.len()) == 0).then(pl.col("total") + 1).otherwise(pl.col("total")))
    broken[1]["store_inventory"] = broken[1]["store_inventory"].with_columns(on_hand=pl.col("on_hand") - 1)
    found = violations(load_in_memory(broken, dimensions_of(runs[-1][1])))
    assert found["receipt subtotal = lines, total = subtotal - discount + tax, >= 1 line"] == 1
    assert found["store EOD(d) = EOD(d-1) (or initial stock) + txn(d), no row disappears"] > 0


def test_every_table_conforms_to_its_schema(window):
    runs, frames, _ = window
    for (day, _, _), f in zip(runs, frames):
        assert set(f) == set(OPERATIONS)
        for name, frame in f.items():
            TABLES[name].conform(frame)
            assert set(frame["business_date"].to_list()) <= {day.business_date}, name
            assert frame["_loaded_at"].null_count() == 0


def test_a_day_is_identical_when_simulated_again(window, tiny_settings, dictionaries):
    runs, frames, _ = window
    day, world, expected = runs[2]
    previous = frames[1]
    yesterday = operations.Yesterday(previous["store_inventory"], previous["dc_inventory"],
                                     previous["delivery_customers"])
    again = operations.simulate_day(day, world, PriceBook.from_list_prices(day.business_date, world.store_products),
                                    yesterday)
    for name in OPERATIONS:
        assert again[name].equals(expected[name]), name


def test_another_seed_gives_another_day(window, tiny_settings, dictionaries):
    from grocery_pipeline.settings import replace

    other = next(iter(run_days(replace(tiny_settings, seed=7), dictionaries, 1)))[2]
    assert not other["receipt_lines"].equals(window[1][0]["receipt_lines"])


def test_first_day_starts_from_initial_stock_and_later_days_from_yesterday(window):
    runs, frames, _ = window
    first_world = runs[0][1]
    stock = operations.opening_stock(operations.Yesterday.before_first_day().store_stock, first_world.store_products)
    assert (stock["opening"] == stock.join(first_world.store_products, on="store_product_id")["initial_on_hand"]).all()
    carried = operations.opening_stock(frames[0]["store_inventory"], runs[1][1].store_products)
    joined = carried.join(frames[0]["store_inventory"], on="store_product_id")
    assert (joined["opening"] == joined["on_hand"]).all()


def test_opening_stock_merges_carried_and_listed_store_products_by_id():
    carried = pl.DataFrame({"store_product_id": [1_000_001, 1_000_002, 2_000_001], "store_id": [1, 1, 2],
                            "product_id": [1, 2, 1], "on_hand": [5, 0, 7], "reorder_point": [2, 2, 2],
                            "order_up_to": [9, 9, 9]})
    listed = pl.DataFrame({"store_product_id": [1_000_002, 1_000_003, 2_000_001], "store_id": [1, 1, 2],
                           "product_id": [2, 3, 1], "list_price": [1.0, 2.0, 3.0], "reorder_point": [3, 4, 5],
                           "order_up_to": [10, 11, 12], "initial_on_hand": [20, 21, 22]})
    stock = operations.opening_stock(carried, listed)
    assert stock.rows() == [(1_000_001, 1, 1, 5, 2, 9),      # delisted: yesterday's stock and levels
                            (1_000_002, 1, 2, 0, 3, 10),     # carried: yesterday's stock, today's levels
                            (1_000_003, 1, 3, 21, 4, 11),    # listed today: its initial stock
                            (2_000_001, 2, 1, 7, 5, 12)]
    # rows out of id order go through the join and agree
    assert operations.opening_stock(carried.reverse(), listed.reverse()).equals(stock)
    same = operations.opening_stock(carried.filter(pl.col("store_id") == 2), listed.filter(pl.col("store_id") == 2))
    assert same.rows() == [(2_000_001, 2, 1, 7, 5, 12)]


def test_volumes_follow_the_preset_and_calendar(window, tiny_settings):
    runs, frames, _ = window
    for (day, world, _), f in zip(runs, frames):
        expected_receipts = tiny_settings.receipts_per_day * world.traffic_multiplier
        expected_orders = tiny_settings.delivery_orders_per_day * world.traffic_multiplier
        assert abs(f["receipts"].height - expected_receipts) < 5 * expected_receipts ** 0.5 + 5
        assert abs(f["orders"].height - expected_orders) < 5 * expected_orders ** 0.5 + 5


def test_ids_are_unique_across_days(window):
    _, frames, _ = window
    for name, key in (("receipts", "receipt_id"), ("orders", "order_id"), ("bundles", "bundle_id"),
                      ("store_inventory_txn", "txn_id"), ("dc_inventory_txn", "txn_id"), ("shipments", "shipment_id")):
        ids = pl.concat([f[name][key] for f in frames])
        assert ids.n_unique() == len(ids), name


SIMULATE_IN_ANOTHER_PROCESS = """
import sys
from pathlib import Path
from grocery_pipeline.dictionaries import load_dictionaries
from grocery_pipeline.settings import load_settings
from grocery_pipeline.simulation.chain import run_days

settings = load_settings(env={}, preset="tiny", data_dir=sys.argv[1])
for day, _, frames in run_days(settings, load_dictionaries(settings.dictionaries_dir), int(sys.argv[2])):
    for name, frame in frames.items():
        frame.write_parquet(Path(sys.argv[1]) / f"{name}-{day.business_date}.parquet")
"""


@pytest.mark.integration
def test_days_are_identical_in_another_process_with_one_thread(window, tmp_path):
    import os
    import subprocess
    import sys

    env = {**os.environ, "POLARS_MAX_THREADS": "1", "PYTHONHASHSEED": "123"}
    subprocess.run([sys.executable, "-c", SIMULATE_IN_ANOTHER_PROCESS, str(tmp_path), str(DAYS)], env=env,
                   check=True, capture_output=True)
    runs, frames, _ = window
    for (day, _, _), expected in zip(runs, frames):
        for name in OPERATIONS:
            again = pl.read_parquet(tmp_path / f"{name}-{day.business_date}.parquet")
            assert again.equals(expected[name]), (name, day.business_date)


def test_tables_handed_over_early_are_the_very_frames_returned(window):
    runs, frames, _ = window
    day, world, expected = runs[2]
    previous = frames[1]
    yesterday = operations.Yesterday(previous["store_inventory"], previous["dc_inventory"],
                                     previous["delivery_customers"])
    handed: dict[str, object] = {}

    def finished(tables):
        assert not set(tables) & set(handed), "a table is handed over once"
        handed.update(tables)

    again = operations.simulate_day(day, world, PriceBook.from_list_prices(day.business_date, world.store_products),
                                    yesterday, finished)
    # the stock tables close the day; everything handed over before is final (the very frame returned)
    assert {"receipts", "receipt_lines", "orders", "order_items", "delivery_customers"} <= set(handed)
    assert not {"store_inventory", "store_inventory_txn", "dc_inventory"} & set(handed)
    for name, frame in handed.items():
        assert again[name] is frame, name
    for name in OPERATIONS:
        assert again[name].equals(expected[name]), name
