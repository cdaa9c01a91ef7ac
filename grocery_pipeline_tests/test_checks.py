"""Each audit, called directly on small hand-made frames: it passes on sound data and fails, with
the offending count and sample keys, on data that breaks the invariant it guards."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from grocery_pipeline import checks
from grocery_pipeline.checks import AuditContext
from grocery_pipeline.checks.realism import TARGETS, Target, evaluate
from grocery_pipeline.settings import load_settings
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.tables import TABLES

DAY = date(2025, 1, 1)
AUDITS = {a.name: a for a in checks.all_audits()}


def at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime.combine(day, datetime.min.time()) + timedelta(hours=hour, minutes=minute)


@pytest.fixture
def lake(tmp_path) -> Lake:
    return Lake(tmp_path / "lake")


def publish(lake: Lake, table: str, frame: pl.DataFrame, day: date = DAY) -> None:
    """Publish a partial frame of a table (missing columns filled with nulls) as a partition."""
    full = frame.with_columns(business_date=pl.lit(day), _loaded_at=pl.lit(at(5, day=day)))
    missing = [pl.lit(None, c.dtype).alias(c.name) for c in TABLES[table].columns if c.name not in full.columns]
    lake.publish(lake.stage(TABLES[table], TABLES[table].conform(full.with_columns(missing)), day))


def run(name: str, lake: Lake, day: date = DAY, **frames: pl.DataFrame):
    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)
    return AUDITS[name].run(AuditContext(settings, lake, day, frames))


# -- totals ------------------------------------------------------------------------------------

def receipt_lines(**changes) -> pl.DataFrame:
    lines = pl.DataFrame({"receipt_id": [1, 1, 2], "line_number": [1, 2, 1], "quantity": [2, 1, 3],
                          "unit_price": [1.99, 4.50, 0.99], "discount": [0.50, 0.0, 0.0],
                          "line_total": [3.48, 4.50, 2.97]})
    return lines.with_columns(**{k: pl.Series(v) for k, v in changes.items()})


def receipts(**changes) -> pl.DataFrame:
    frame = pl.DataFrame({"receipt_id": [1, 2], "line_count": [2, 1], "item_count": [3, 3],
                          "subtotal": [7.98, 2.97], "basket_discount": [0.0, 0.0], "tax": [0.56, 0.21],
                          "total": [8.54, 3.18]})
    return frame.with_columns(**{k: pl.Series(v) for k, v in changes.items()})


def test_receipt_total_equals_lines_plus_tax(lake):
    assert run("receipts_totals_to_the_cent", lake, receipts=receipts(), receipt_lines=receipt_lines()).passed
    finding = run("receipts_totals_to_the_cent", lake, receipts=receipts(total=[9.54, 3.18]),
                  receipt_lines=receipt_lines())
    assert not finding.passed and finding.offending == 1 and finding.sample_keys == [1]


def test_receipt_subtotal_is_the_sum_of_its_lines_to_the_cent(lake):
    finding = run("receipts_totals_to_the_cent", lake, receipts=receipts(subtotal=[7.99, 2.97], total=[8.55, 3.18]),
                  receipt_lines=receipt_lines())
    assert finding.offending == 1 and finding.sample_keys == [1]


def test_receipt_without_a_line_fails(lake):
    finding = run("receipts_totals_to_the_cent", lake, receipts=receipts(),
                  receipt_lines=receipt_lines().filter(pl.col("receipt_id") == 1))
    assert finding.sample_keys == [2] and finding.detail["without_lines"] == 1


def test_receipt_line_total_is_quantity_times_price_less_discount(lake):
    assert run("receipt_lines_line_total_to_the_cent", lake, receipt_lines=receipt_lines()).passed
    finding = run("receipt_lines_line_total_to_the_cent", lake, receipt_lines=receipt_lines(line_total=[3.48, 4.51, 2.97]))
    assert finding.offending == 1 and finding.sample_keys == [[1, 2]]


def test_a_receipt_line_sells_at_least_one_unit(lake):
    finding = run("receipt_lines_line_total_to_the_cent", lake,
                  receipt_lines=receipt_lines(quantity=[2, 0, 3], line_total=[3.48, 0.0, 2.97]))
    assert finding.sample_keys == [[1, 2]]


def orders(**changes) -> pl.DataFrame:
    frame = pl.DataFrame({"order_id": [10, 11], "status": ["DELIVERED", "CANCELLED"], "line_count": [1, 1],
                          "item_count": [2, 0], "subtotal": [5.00, 0.0], "basket_discount": [1.0, 0.0],
                          "tax": [0.30, 0.0], "delivery_fee": [3.99, 0.0], "tip": [2.0, 0.0],
                          "total": [10.29, 0.0]})
    return frame.with_columns(**{k: pl.Series(v) for k, v in changes.items()})


def order_items() -> pl.DataFrame:
    return pl.DataFrame({"order_id": [10, 11], "line_number": [1, 1], "quantity_ordered": [2, 1],
                         "quantity": [2, 0], "unit_price": [2.50, 3.0], "discount": [0.0, 0.0],
                         "line_total": [5.0, 0.0]})


def test_order_total_adds_fee_and_tip(lake):
    assert run("orders_totals_to_the_cent", lake, orders=orders(), order_items=order_items()).passed
    finding = run("orders_totals_to_the_cent", lake, orders=orders(tip=[3.0, 0.0]), order_items=order_items())
    assert finding.sample_keys == [10]


def test_cancelled_order_charges_nothing(lake):
    finding = run("orders_totals_to_the_cent", lake, orders=orders(delivery_fee=[3.99, 3.99], total=[10.29, 3.99]),
                  order_items=order_items())
    assert finding.sample_keys == [11] and finding.detail["charged_while_cancelled"] == 1


def test_order_items_may_deliver_nothing_but_must_add_up(lake):
    assert run("order_items_line_total_to_the_cent", lake, order_items=order_items()).passed
    bad = order_items().with_columns(line_total=pl.Series([5.0, 3.0]))
    assert run("order_items_line_total_to_the_cent", lake, order_items=bad).sample_keys == [[11, 1]]


# -- inventory ---------------------------------------------------------------------------------

def stock(on_hand: list[int], ids=(1, 2)) -> pl.DataFrame:
    return pl.DataFrame({"store_product_id": list(ids), "store_id": [1] * len(ids), "product_id": list(ids),
                         "on_hand": on_hand, "reorder_point": [2] * len(ids), "order_up_to": [9] * len(ids)})


def moves(rows: list[tuple[int, str, int]]) -> pl.DataFrame:
    return pl.DataFrame({"txn_id": list(range(1, len(rows) + 1)), "store_product_id": [r[0] for r in rows],
                         "txn_type": [r[1] for r in rows], "quantity": [r[2] for r in rows],
                         "reference_id": [100 + i for i in range(len(rows))]},
                        schema_overrides={"quantity": pl.Int64, "store_product_id": pl.Int64})


def test_on_hand_never_negative(lake):
    assert run("store_inventory_on_hand_not_negative", lake, store_inventory=stock([0, 5])).passed
    finding = run("store_inventory_on_hand_not_negative", lake, store_inventory=stock([-1, 5]))
    assert finding.offending == 1 and finding.detail["lowest_on_hand"] == -1


def test_closing_stock_is_yesterdays_plus_todays_movements(lake):
    publish(lake, "store_inventory", stock([10, 4]), DAY)
    day2 = DAY + timedelta(days=1)
    today_moves = moves([(1, "SALE", -3), (1, "RECEIVING", 6), (2, "SHRINK", -1)])
    assert run("store_inventory_conserved", lake, day2, store_inventory=stock([13, 3]),
               store_inventory_txn=today_moves).passed
    finding = run("store_inventory_conserved", lake, day2, store_inventory=stock([13, 4]),
                  store_inventory_txn=today_moves)
    assert finding.offending == 1 and finding.sample_keys == [2]


def test_a_store_product_dropped_from_the_chain_fails_conservation(lake):
    publish(lake, "store_inventory", stock([10, 4]), DAY)
    finding = run("store_inventory_conserved", lake, DAY + timedelta(days=1),
                  store_inventory=stock([10], ids=(1,)), store_inventory_txn=moves([]))
    assert finding.sample_keys == [2] and finding.detail["dropped_rows"] == 1


def test_a_product_first_day_opens_with_its_initial_stock(lake):
    publish(lake, "store_products", pl.DataFrame({"store_product_id": [1, 2], "initial_on_hand": [7, 4]}), DAY)
    today_moves = moves([(1, "SALE", -2)])
    assert run("store_inventory_conserved", lake, store_inventory=stock([5, 4]), store_inventory_txn=today_moves).passed
    assert run("store_inventory_conserved", lake, store_inventory=stock([7, 4]),
               store_inventory_txn=today_moves).sample_keys == [1]


def test_conservation_fails_when_yesterday_was_never_published(lake):
    finding = run("store_inventory_conserved", lake, DAY + timedelta(days=2), store_inventory=stock([1, 1]),
                  store_inventory_txn=moves([]))
    assert finding.offending == 2 and "not published" in finding.detail["reason"]


def test_dc_stock_is_conserved_and_opens_empty(lake):
    dc = pl.DataFrame({"dc_id": [1], "product_id": [5], "on_hand": [40]})
    receipts_in = pl.DataFrame({"txn_id": [1], "dc_id": [1], "product_id": [5], "txn_type": ["SUPPLIER_RECEIPT"],
                                "quantity": [40]})
    assert run("dc_inventory_conserved", lake, dc_inventory=dc, dc_inventory_txn=receipts_in).passed
    assert not run("dc_inventory_conserved", lake, dc_inventory=dc.with_columns(on_hand=pl.lit(41)),
                   dc_inventory_txn=receipts_in).passed


def test_movements_carry_the_sign_of_their_type(lake):
    assert run("store_inventory_txn_signed_by_type", lake,
               store_inventory_txn=moves([(1, "SALE", -1), (1, "RECEIVING", 4), (2, "ADJUSTMENT", 1)])).passed
    finding = run("store_inventory_txn_signed_by_type", lake,
                  store_inventory_txn=moves([(1, "SALE", 2), (1, "THEFT", -1), (2, "RECEIVING", 3)]))
    assert finding.sample_keys == [1, 2]


def test_sale_movements_match_the_receipts_and_orders(lake):
    lines = pl.DataFrame({"receipt_id": [100, 100], "store_product_id": [1, 2], "quantity": [2, 1]})
    items = pl.DataFrame({"order_id": [102], "store_product_id": [2], "quantity": [3]})
    txn = moves([(1, "SALE", -2), (2, "SALE", -1), (2, "ONLINE_SALE", -3)]).with_columns(
        reference_id=pl.Series([100, 100, 102]))
    assert run("store_inventory_txn_matches_sales", lake, store_inventory_txn=txn, receipt_lines=lines,
               order_items=items).passed
    finding = run("store_inventory_txn_matches_sales", lake, store_inventory_txn=txn.head(2), receipt_lines=lines,
                  order_items=items)
    assert finding.sample_keys == [[102, 2]] and finding.detail["orders_mismatched"] == 1


# -- lifecycle ---------------------------------------------------------------------------------

def events(rows: list[tuple[int, int, str, datetime]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["order_id", "event_seq", "status", "event_ts"], orient="row")


PATH = [(1, "PENDING", at(9)), (2, "CONFIRMED", at(9, 1)), (3, "PICKING", at(9, 30)),
        (4, "OUT_FOR_DELIVERY", at(10)), (5, "DELIVERED", at(10, 40))]


def test_order_status_timestamps_in_order(lake):
    good = events([(1, *e) for e in PATH] + [(2, 1, "PENDING", at(11)), (2, 2, "CANCELLED", at(11, 5))])
    assert run("order_events_in_order", lake, order_events=good).passed
    backwards = good.with_columns(event_ts=pl.when((pl.col("order_id") == 1) & (pl.col("event_seq") == 3))
                                  .then(pl.lit(at(8))).otherwise(pl.col("event_ts")))
    finding = run("order_events_in_order", lake, order_events=backwards)
    assert finding.sample_keys == [1] and "time goes backwards" in str(finding.detail)


def test_order_status_must_follow_the_path(lake):
    skipped = events([(1, 1, "PENDING", at(9)), (1, 2, "DELIVERED", at(10))])
    after_delivery = events([(2, *e) for e in PATH] + [(2, 6, "CANCELLED", at(11))])
    assert run("order_events_in_order", lake, order_events=skipped).sample_keys == [1]
    assert run("order_events_in_order", lake, order_events=after_delivery).sample_keys == [2]


def test_order_history_ends_in_the_orders_final_status(lake):
    history = events([(1, *e) for e in PATH])
    final = pl.DataFrame({"order_id": [1], "status": ["CANCELLED"]})
    assert run("order_events_in_order", lake, order_events=history, orders=final).sample_keys == [1]


def test_order_timestamps_and_final_state_agree(lake):
    frame = pl.DataFrame({"order_id": [1, 2], "status": ["DELIVERED", "CANCELLED"], "cancel_reason": [None, "CUSTOMER"],
                          "placed_at": [at(9), at(9)], "window_start": [at(10), at(10)],
                          "window_end": [at(11), at(11)], "delivered_at": [at(10, 30), None]})
    assert run("orders_timestamps_in_order", lake, orders=frame).passed
    broken = frame.with_columns(delivered_at=pl.Series([at(8), at(10)]))
    assert run("orders_timestamps_in_order", lake, orders=broken).sample_keys == [1, 2]


def test_delivered_orders_belong_to_exactly_one_bundle_stop(lake):
    statuses = pl.DataFrame({"order_id": [1, 2, 3], "status": ["DELIVERED", "DELIVERED", "CANCELLED"]})
    stops = pl.DataFrame({"bundle_id": [7, 7], "stop_seq": [1, 2], "order_id": [1, 2]})
    assert run("bundle_stops_one_per_delivered_order", lake, bundle_stops=stops, orders=statuses).passed
    twice = pl.DataFrame({"bundle_id": [7, 8, 8], "stop_seq": [1, 1, 2], "order_id": [1, 1, 3]})
    finding = run("bundle_stops_one_per_delivered_order", lake, bundle_stops=twice, orders=statuses)
    assert sorted(finding.sample_keys) == [1, 2, 3]
    assert finding.detail == {"delivered_without_exactly_one_stop": 2, "stops_for_undelivered_orders": 1}


def bundles(rows: list[tuple[int, int, datetime, datetime]]) -> pl.DataFrame:
    frame = pl.DataFrame(rows, schema=["bundle_id", "driver_id", "dispatched_at", "returned_at"], orient="row")
    return frame.with_columns(order_count=pl.lit(1))


def test_no_driver_is_double_booked(lake):
    fine = bundles([(1, 5, at(9), at(10)), (2, 5, at(10), at(11)), (3, 6, at(9, 30), at(10, 30))])
    assert run("bundles_driver_never_double_booked", lake, bundles=fine).passed
    overlap = bundles([(1, 5, at(9), at(10, 30)), (2, 5, at(10), at(11)), (3, 6, at(9, 30), at(10, 30))])
    finding = run("bundles_driver_never_double_booked", lake, bundles=overlap)
    assert finding.sample_keys == [2] and finding.detail["driver_ids_double_booked"] == 1


def test_a_run_past_midnight_blocks_the_driver_the_next_morning(lake):
    publish(lake, "bundles", bundles([(1, 5, at(23), at(0, 45, DAY + timedelta(days=1)))]))
    day2 = DAY + timedelta(days=1)
    finding = run("bundles_driver_never_double_booked", lake, day2, bundles=bundles([(2, 5, at(0, 30, day2), at(1, day=day2))]))
    assert finding.sample_keys == [2]


def test_stops_follow_the_route_of_their_run(lake):
    run_ = bundles([(7, 5, at(9), at(11))]).with_columns(order_count=pl.lit(2))
    stops = pl.DataFrame({"bundle_id": [7, 7], "stop_seq": [1, 2], "order_id": [1, 2],
                          "arrival_ts": [at(9, 20), at(9, 50)], "miles_from_previous": [1.5, 0.7]})
    assert run("bundle_stops_follow_the_route", lake, bundle_stops=stops, bundles=run_).passed
    late = stops.with_columns(arrival_ts=pl.Series([at(9, 20), at(11, 30)]))
    assert run("bundle_stops_follow_the_route", lake, bundle_stops=late, bundles=run_).sample_keys == [[7, 2]]


def test_shipment_timestamps_in_order_and_trucks_not_double_booked(lake):
    times = ("scheduled_at", "loading_at", "departed_at", "arrived_at", "unloading_at", "completed_at", "truck_back_at")
    frame = pl.DataFrame({"shipment_id": [1, 2], "truck_id": [3, 3],
                          **{c: [at(h), at(h + 5)] for h, c in enumerate(times)}})
    assert run("shipments_timestamps_in_order", lake, shipments=frame).passed
    assert run("shipments_truck_never_double_booked", lake, shipments=frame).passed
    swapped = frame.with_columns(arrived_at=pl.Series([at(1), at(8)]))
    assert run("shipments_timestamps_in_order", lake, shipments=swapped).sample_keys == [1]
    early = frame.with_columns(loading_at=pl.Series([at(1), at(2)]))
    assert run("shipments_truck_never_double_booked", lake, shipments=early).sample_keys == [2]


def test_truck_moves_follow_the_shipment_path(lake):
    path = ["SCHEDULED", "LOADING", "IN_TRANSIT", "ARRIVED", "UNLOADING", "COMPLETED"]
    moves_ = pl.DataFrame({"shipment_id": [1] * 6, "event_seq": list(range(1, 7)), "status": path,
                           "status_ts": [at(h) for h in range(6)]})
    assert run("truck_moves_in_order", lake, truck_moves=moves_).passed
    assert run("truck_moves_in_order", lake, truck_moves=moves_.head(4)).sample_keys == [1]


# -- volume and realism ------------------------------------------------------------------------

def test_volume_band_follows_the_calendar(lake):
    # tiny preset: 300 receipts a day; New Year's Day is a 0.6-ish day
    assert run("receipts_volume_in_band", lake, receipts=pl.DataFrame({"receipt_id": range(170)})).passed
    empty = run("receipts_volume_in_band", lake, receipts=pl.DataFrame({"receipt_id": range(10)}))
    doubled = run("receipts_volume_in_band", lake, receipts=pl.DataFrame({"receipt_id": range(1200)}))
    assert not empty.passed and not doubled.passed
    assert empty.sample_keys == [DAY.isoformat()] and empty.detail["band"][0] > 10


def test_realism_targets_warn_and_never_block():
    assert TARGETS and all(not AUDITS[t.name].blocking for t in TARGETS)


def test_a_realism_target_reports_the_measure_beside_its_band(lake):
    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)
    ctx = AuditContext(settings, lake, DAY + timedelta(days=90), {})
    basket = Target("t", "receipts", "", 30.0, 56.0, "FMI", lambda c: (42.0, 500), {})
    assert evaluate(basket, ctx).passed and evaluate(basket, ctx).detail["measured"] == 42.0
    thin = Target("t", "receipts", "", 30.0, 56.0, "FMI", lambda c: (12.0, 500), {})
    assert not evaluate(thin, ctx).passed
    small = Target("t", "receipts", "", 30.0, 56.0, "FMI", lambda c: (12.0, 20), {})
    assert evaluate(small, ctx).passed and evaluate(small, ctx).detail["evaluated"] is False


def test_history_dependent_targets_wait_for_the_warm_up(lake):
    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)
    reorders = Target("t", "order_items", "", 0.5, 0.67, "Instacart", lambda c: (0.1, 1000), {}, needs_history=True)
    early = evaluate(reorders, AuditContext(settings, lake, DAY + timedelta(days=2), {}))
    late = evaluate(reorders, AuditContext(settings, lake, DAY + timedelta(days=90), {}))
    assert early.passed and "warming up" in early.detail["reason"]
    assert not late.passed and late.detail["measured"] == 0.1


# -- in Dagster -------------------------------------------------------------------------------

@pytest.mark.integration
def test_a_one_partition_run_files_its_check_results_under_the_partition(tmp_path):
    import dagster as dg

    from grocery_pipeline.assets.dimensions import calendar_asset
    from grocery_pipeline.resources import GrocerySettings

    with dg.instance_for_test() as instance:
        result = dg.materialize([calendar_asset], partition_key="2025-01-02", instance=instance,
                                resources={"grocery": GrocerySettings(preset="tiny", data_dir=str(tmp_path))})
    evaluations = result.get_asset_check_evaluations()
    assert {e.check_name for e in evaluations} == {a.name for a in checks.audits_for("calendar")}
    assert all(e.passed and e.partition == "2025-01-02" for e in evaluations)
    assert all(e.metadata["offending_rows"].value == 0 for e in evaluations)


@pytest.mark.integration
def test_a_run_of_several_partitions_files_each_result_under_its_partition(tmp_path):
    import dagster as dg

    from grocery_pipeline.assets.dimensions import calendar_asset
    from grocery_pipeline.resources import GrocerySettings

    with dg.instance_for_test() as instance:
        result = dg.materialize([calendar_asset], instance=instance,
                                tags={"dagster/asset_partition_range_start": "2025-01-01",
                                      "dagster/asset_partition_range_end": "2025-01-03"},
                                resources={"grocery": GrocerySettings(preset="tiny", data_dir=str(tmp_path))})
    evaluations = result.get_asset_check_evaluations()
    names = {a.name for a in checks.audits_for("calendar")}
    by_partition = {(e.check_name, e.partition) for e in evaluations if e.partition}
    assert by_partition == {(n, d) for n in names for d in ("2025-01-01", "2025-01-02", "2025-01-03")}
    whole_run = [e for e in evaluations if e.partition is None]  # the gate: one result per check for the run
    assert {e.check_name for e in whole_run} == names
    assert all(e.metadata["partitions_audited"].value == 3 for e in whole_run)


def test_every_fact_and_realism_check_is_documented():
    from pathlib import Path

    from grocery_pipeline.checks import inventory, lifecycle, realism, totals, volume

    doc = (Path(__file__).resolve().parent.parent / "docs" / "quality-and-automation.md").read_text()
    missing = [a.name for m in (totals, inventory, lifecycle, volume, realism) for a in m.AUDITS
               if f"`{a.name}`" not in doc]
    assert not missing, f"add to docs/quality-and-automation.md: {missing}"


# -- cheap pass tests: they may send a sound day to the full check, never pass a broken one -----

def _plain_sales_mismatches(moves: pl.DataFrame, lines: pl.DataFrame, txn_type: str, reference: str) -> set:
    key = [reference, "store_product_id"]
    sold = lines.filter(pl.col("quantity") > 0).group_by(key).agg(pl.col("quantity").sum().alias("sold"))
    taken = (moves.filter(pl.col("txn_type") == txn_type).group_by(pl.col("reference_id").alias(reference),
                                                                    "store_product_id")
             .agg((-pl.col("quantity")).sum().alias("taken")))
    joined = sold.join(taken, on=key, how="full", coalesce=True)
    return set(joined.filter(pl.col("sold").is_null() | pl.col("taken").is_null()
                             | (pl.col("sold") != pl.col("taken"))).select(key).rows())


@pytest.mark.parametrize("seed", range(12))
def test_sales_shortcut_agrees_with_the_plain_definition(seed):
    from grocery_pipeline.checks.inventory import sales_mismatches

    rng = np.random.default_rng(seed)
    n = 60
    lines = pl.DataFrame({"receipt_id": np.sort(rng.integers(1, 20, n)), "store_product_id": rng.integers(1, 9, n),
                          "quantity": rng.integers(1, 4, n)})
    sales = lines.select(pl.lit("SALE").alias("txn_type"), pl.col("receipt_id").alias("reference_id"),
                         "store_product_id", -pl.col("quantity"))
    variants = {"same": sales, "shuffled": sales.sample(fraction=1.0, shuffle=True, seed=seed),
                "one unit off": sales.with_columns(quantity=pl.col("quantity") - (pl.int_range(pl.len()) == 7)),
                "moved to another basket": sales.with_columns(reference_id=pl.col("reference_id")
                                                              + (pl.int_range(pl.len()) == 3) * 100),
                "null basket": sales.with_columns(reference_id=pl.when(pl.int_range(pl.len()) == 5).then(None)
                                                  .otherwise(pl.col("reference_id"))),
                "missing": sales.head(n - 1), "doubled": pl.concat([sales, sales.tail(1)])}
    for name, moves in variants.items():
        found = sales_mismatches(moves, lines, "SALE", "receipt_id")
        plain = _plain_sales_mismatches(moves, lines, "SALE", "receipt_id")
        assert set(found.select("receipt_id", "store_product_id").rows()) == plain, name
        assert bool(plain) == (name not in ("same", "shuffled")), name


def _stock_day(rng: np.random.Generator) -> dict[str, pl.DataFrame]:
    """A store's two days of stock that balance: yesterday's 50 items, 10 new today, 80 moves."""
    ids = np.sort(rng.choice(1000, 60, replace=False)) + 1
    previous = pl.DataFrame({"store_product_id": ids[:50], "on_hand": rng.integers(0, 20, 50)})
    opening = pl.DataFrame({"store_product_id": ids[50:], "initial": rng.integers(0, 9, 10)})
    moves = pl.DataFrame({"store_product_id": rng.choice(ids, 80), "quantity": rng.integers(-3, 4, 80)})
    moved = moves.group_by("store_product_id").agg(pl.col("quantity").sum())
    today = (pl.concat([previous, opening.rename({"initial": "on_hand"})])
             .join(moved, on="store_product_id", how="left")
             .select("store_product_id", pl.col("on_hand") + pl.col("quantity").fill_null(0)).sort("store_product_id"))
    return {"today": today, "previous": previous, "opening": opening, "moves": moves}


@pytest.mark.parametrize("seed", range(8))
def test_conservation_shortcut_never_passes_a_break(seed):
    from grocery_pipeline.checks.inventory import balances, conservation_breaks

    rng = np.random.default_rng(seed)
    day = _stock_day(rng)
    today, previous, opening, moves = day["today"], day["previous"], day["opening"], day["moves"]
    first = pl.int_range(pl.len()) == 4
    variants = {
        "sound": (today, previous, moves, opening),
        "one unit off": (today.with_columns(on_hand=pl.col("on_hand") + first), previous, moves, opening),
        "row dropped": (today.filter(~first), previous, moves, opening),
        "movement of an unknown item": (today, previous, pl.concat([moves, pl.DataFrame(
            {"store_product_id": [5000], "quantity": [1]})]), opening),
        "no opening stock": (today, previous, moves, opening.head(0)),
        "null on hand": (today.with_columns(on_hand=pl.when(first).then(None).otherwise(pl.col("on_hand"))),
                         previous, moves, opening),
        "row doubled": (pl.concat([today, today.filter(first)]).sort("store_product_id"), previous, moves, opening),
        "rows out of order": (today.reverse(), previous.reverse(), moves, opening),
        "rows out of order, one unit off": (today.with_columns(on_hand=pl.col("on_hand") + first).reverse(),
                                            previous.reverse(), moves, opening),
    }
    key = ["store_product_id"]
    for name, (t, p, m, o) in variants.items():
        new = t.join(p, on=key, how="anti").select(key)
        breaks = conservation_breaks(t, p, o.join(new, on=key, how="semi"), m, key)
        fast = balances(t, p, lambda items, o=o: o.join(items, on=key, how="semi"), m, key)
        assert breaks.is_empty() == (name in ("sound", "row doubled", "rows out of order")), name
        # rows out of order are put in key order first (a day written region by region)
        assert fast == (name in ("sound", "rows out of order")), name


@pytest.mark.parametrize("seed", range(6))
def test_history_shortcut_finds_what_the_sorted_windows_find(seed):
    from grocery_pipeline.checks.lifecycle import ORDER_FINAL, ORDER_STEPS, broken_histories

    rng = np.random.default_rng(seed)
    rows = []
    for order_id in range(1, 30):
        steps = PATH[:rng.integers(1, 6)] if rng.random() < 0.3 else PATH
        rows += [(order_id, *e) for e in steps] + ([(order_id, len(steps) + 1, "CANCELLED", at(12))]
                                                   if len(steps) < 5 else [])
    good = events(rows)
    row = pl.int_range(pl.len()) == int(rng.choice(np.flatnonzero(good["event_seq"].to_numpy() > 1)))
    variants = {"sound": good,
                "backwards": good.with_columns(event_ts=pl.when(row).then(pl.lit(at(3))).otherwise("event_ts")),
                "skipped": good.filter(~row), "unknown status": good.with_columns(
                    status=pl.when(row).then(pl.lit("LOST")).otherwise("status")),
                "null status": good.with_columns(status=pl.when(row).then(None).otherwise("status")),
                "renumbered": good.with_columns(event_seq=pl.col("event_seq") + row),
                "doubled": pl.concat([good, good.filter(row)]).sort("order_id", "event_seq", maintain_order=True)}
    for name, frame in variants.items():
        found = broken_histories(frame, "order_id", "event_seq", "event_ts", ORDER_STEPS, "PENDING", ORDER_FINAL)
        # reversed, the rows are out of order: the sort-and-window definition decides
        plain = broken_histories(frame.reverse(), "order_id", "event_seq", "event_ts", ORDER_STEPS, "PENDING",
                                 ORDER_FINAL)
        assert sorted(found["order_id"]) == sorted(plain["order_id"]), name
        if name != "null status":  # a null last status is the required-columns audit's to catch
            assert found.is_empty() == (name == "sound"), name


def test_visits_at_the_two_nearest_stores_agree_with_nearest_stores():
    from grocery_pipeline.checks.realism import _at_two_nearest
    from grocery_pipeline.simulation.shopping import nearest_stores

    rng = np.random.default_rng(3)
    store_lat, store_lon = rng.uniform(40, 41, 30), rng.uniform(-75, -74, 30)
    # ties for second place: three stores at one spot, four at another, each with visitors on the spot
    store_lat[[4, 9]], store_lon[[4, 9]] = store_lat[2], store_lon[2]
    store_lat[[11, 17, 23]], store_lon[[11, 17, 23]] = store_lat[5], store_lon[5]
    store_ids = np.arange(30) * 10 + 100
    lat = np.concatenate([rng.uniform(40, 41, 3000), np.repeat(store_lat[[2, 5]], 60), [np.nan]])
    lon = np.concatenate([rng.uniform(-75, -74, 3000), np.repeat(store_lon[[2, 5]], 60), [-74.5]])
    near, _ = nearest_stores(lat, lon, store_lat, store_lon, k=2)
    visited = np.where(rng.random(len(lat)) < 0.5, store_ids[near[:, int(rng.integers(0, 2))]],
                       rng.choice(np.append(store_ids, 7), len(lat)))
    visited[3000:3120] = store_ids[np.tile([2, 4, 9, 5, 11, 17, 23], 18)[:120]]  # each tied store in turn
    expected = (store_ids[near] == visited[:, None]).any(axis=1)
    assert 0 < expected[3000:3120].mean() < 1
    assert 0.3 < expected.mean() < 0.9
    assert np.array_equal(_at_two_nearest(lat, lon, store_lat, store_lon, store_ids, visited, chunk=700), expected)


def test_references_staged_together_are_resolved_each_for_its_own_table(lake):
    products = pl.DataFrame({"store_product_id": [1, 2, 3]})
    unset = {"product_id": pl.lit(None, pl.Int64), "promotion_id": pl.lit(None, pl.Int64)}
    lines = pl.DataFrame({"receipt_id": [1, 1], "line_number": [1, 2], "store_product_id": [1, 3]})
    lines = lines.with_columns(**unset)
    items = pl.DataFrame({"order_id": [7, 7, 8], "line_number": [1, 2, 1], "store_product_id": [2, 9, 3],
                          "substituted_for_store_product_id": [None, 1, 4]}).with_columns(**unset)
    staged = {"store_products": products, "receipt_lines": lines, "order_items": items,
              "receipts": pl.DataFrame({"receipt_id": [1]}), "orders": pl.DataFrame({"order_id": [7, 8]})}
    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)
    ctx = AuditContext(settings, lake, DAY, staged)

    def references(table: str) -> dict:
        return {k: v for k, v in AUDITS[f"{table}_foreign_keys"].run(ctx).detail["orphans_by_reference"].items()
                if "store_products" in k}

    assert references("receipt_lines") == {"store_product_id -> store_products.store_product_id": 0}
    assert references("order_items") == {"store_product_id -> store_products.store_product_id": 1,
                                         "substituted_for_store_product_id -> store_products.store_product_id": 1}


def test_a_part_resolves_nullable_references_to_published_parents_as_a_whole_day_does(lake):
    """A part resolves nullable references (an anonymous receipt, an item without substitute) to
    published parents as the whole day does: a null is no orphan."""
    publish(lake, "store_products", pl.DataFrame({"store_product_id": [1, 2, 3, 5]}))
    publish(lake, "customers", pl.DataFrame({"customer_id": [10, 11]}))
    items = pl.DataFrame({"order_id": [7, 7, 8, 8], "line_number": [1, 2, 1, 2], "store_product_id": [2, 9, 3, 5],
                          "substituted_for_store_product_id": [None, 1, 4, None],
                          "product_id": pl.Series([None] * 4, dtype=pl.Int64),
                          "promotion_id": pl.Series([None] * 4, dtype=pl.Int64)})
    receipts = pl.DataFrame({"receipt_id": [1, 2, 3], "customer_id": [None, 12, 10],
                             "store_id": pl.Series([None] * 3, dtype=pl.Int64)})
    staged = {"order_items": items, "orders": pl.DataFrame({"order_id": [7, 8]}), "receipts": receipts}
    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)
    whole = AuditContext(settings, lake, DAY, staged)
    part = AuditContext(settings, lake, DAY, {}).of_part(staged)
    for table, orphans in [("order_items", {"store_product_id -> store_products.store_product_id": 1,
                                            "substituted_for_store_product_id -> store_products.store_product_id": 1}),
                           ("receipts", {"customer_id -> customers.customer_id": 1})]:
        findings = [AUDITS[f"{table}_foreign_keys"].run(ctx) for ctx in (whole, part)]
        for finding in findings:
            assert {k: v for k, v in finding.detail["orphans_by_reference"].items() if k in orphans} == orphans
        assert findings[0].sample_keys == findings[1].sample_keys


def test_audits_run_side_by_side_give_the_outcomes_of_audits_run_in_turn_in_the_same_order(lake):
    from grocery_pipeline.assets.factory import run_audits

    publish(lake, "store_products", pl.DataFrame({"store_product_id": [1, 2, 3]}))
    staged = {"store_inventory": pl.DataFrame({"store_product_id": [1, 2, 2, 3], "on_hand": [4, -1, 2, 7]}),
              "receipt_lines": receipt_lines(), "receipts": pl.DataFrame({"receipt_id": [1, 3]})}
    for table, frame in staged.items():  # missing columns null, as `publish` fills them
        frame = frame.with_columns(business_date=pl.lit(DAY), _loaded_at=pl.lit(at(5)))
        staged[table] = TABLES[table].conform(frame.with_columns(
            pl.lit(None, c.dtype).alias(c.name) for c in TABLES[table].columns if c.name not in frame.columns))
    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)

    def outcomes(threads: int) -> list:
        ctx = AuditContext(settings, lake, DAY, dict(staged))
        # the audits that read nothing published but the store products
        picked = ("keys_unique", "required_columns", "on_hand_not_negative", "conserved", "to_the_cent")
        return [(o.audit.name, o.finding) for o in run_audits(staged, ctx, lambda a: a.name.endswith(picked) or (
            a.name == "store_inventory_foreign_keys"), threads=threads)]

    in_turn = outcomes(1)
    assert len(in_turn) == 11 and {name for name, finding in in_turn if not finding.passed} == {
        "store_inventory_keys_unique", "store_inventory_on_hand_not_negative", "store_inventory_conserved",
        "receipts_required_columns", "store_inventory_required_columns", "receipt_lines_required_columns",
        "receipts_totals_to_the_cent"}
    assert outcomes(2) == in_turn


def test_ticks_above_msrp_are_listed_in_tick_order(lake):
    snapshot = pl.DataFrame({"store_product_id": [1, 2, 3], "msrp": [5.0, 5.0, 5.0], "unit_cost": [1.0, 1.0, 1.0]})
    ticks = pl.DataFrame({"store_product_id": [3, 1, 2, 3], "tick_at": [at(0), at(1), at(1), at(2)],
                          "new_price": [6.0, 2.0, 9.0, 4.0]})
    finding = run("price_updates_price_between_cost_and_msrp", lake, price_updates=ticks, price_snapshots=snapshot)
    assert finding.offending == 2 and finding.sample_keys == [[3, at(0)], [2, at(1)]]
    assert run("price_updates_price_between_cost_and_msrp", lake, price_updates=ticks.filter(pl.col("new_price") < 5),
               price_snapshots=snapshot).passed
    unknown = ticks.with_columns(store_product_id=pl.Series([3, 1, 8, 3]))
    assert run("price_updates_foreign_keys", lake, price_updates=unknown, price_snapshots=snapshot).sample_keys == \
        [[8, at(1)]]


@pytest.mark.parametrize("order", [["store_product_id", "tick_at"], ["tick_at", "store_product_id"]])
def test_a_repeated_key_is_found_in_rows_written_in_key_order(lake, order):
    ticks = pl.DataFrame({"store_product_id": [1, 2, 1, 2, 3], "tick_at": [at(0), at(0), at(1), at(1), at(1)]})
    ticks = ticks.with_columns(new_price=pl.lit(2.0))
    repeated = pl.concat([ticks, ticks[3:4]]).sort(order, maintain_order=True)
    assert run("price_updates_keys_unique", lake, price_updates=ticks.sort(order)).passed
    finding = run("price_updates_keys_unique", lake, price_updates=repeated)
    assert finding.offending == 2 and finding.sample_keys == [[2, at(1)], [2, at(1)]]


def test_visits_at_the_two_nearest_stores_beyond_the_sample_size_are_measured_on_an_even_sample(
        tmp_path, monkeypatch):
    from grocery_pipeline.checks import realism

    rng = np.random.default_rng(5)
    stores = pl.DataFrame({"store_id": np.arange(1, 21), "lat": rng.uniform(40, 41, 20),
                           "lon": rng.uniform(-75, -74, 20), "opened_on": [date(2024, 1, 1)] * 20})
    customers = pl.DataFrame({"customer_id": np.arange(1, 3001), "lat": rng.uniform(40, 41, 3000),
                              "lon": rng.uniform(-75, -74, 3000)})
    receipts = pl.DataFrame({"customer_id": rng.integers(1, 3001, 6000),
                             "store_id": rng.integers(1, 21, 6000)})
    monkeypatch.setattr(realism, "_as_of", lambda ctx, table: {"stores": stores, "customers": customers}[table])
    ctx = AuditContext(load_settings(env={}, preset="tiny", data_dir=tmp_path), Lake(tmp_path / "lake"),
                       date(2025, 1, 2), {"receipts": receipts})
    full, everyone = realism._visits_at_two_nearest(ctx)
    monkeypatch.setattr(realism, "NEAREST_SAMPLE", 1000)
    sampled, sample = realism._visits_at_two_nearest(ctx)
    assert everyone == 6000 and sample == 1000  # every sixth visit
    assert 0.05 < full < 0.2 and abs(sampled - full) < 0.03  # random stores: about 2 in 20 are the nearest two
