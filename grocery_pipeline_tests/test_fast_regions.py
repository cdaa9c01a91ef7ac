"""A day of operations simulated one DC region at a time (simulation/regions.py): regions are
self-contained, their ids follow one another without gaps, and the day is reproducible."""

from __future__ import annotations

import dataclasses

import numpy as np
import polars as pl
import pytest

from grocery_pipeline.simulation import operations, regions
from grocery_pipeline.simulation.chain import run_days
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.simulation.operations import ID_STRIDES, Numbering
from grocery_pipeline.simulation.pricing import PriceBook

DAYS = 3


@pytest.fixture(scope="module")
def three_dcs(tiny_settings):
    # every DC a region of its own
    return dataclasses.replace(tiny_settings, distribution_centers=3, stores=9, customers=1_500, drivers=24,
                               region_store_products=1)


@pytest.fixture(scope="module")
def chain(three_dcs, dictionaries):
    return list(run_days(three_dcs, dictionaries, DAYS))


def _dc_of_store(world) -> dict[int, int]:
    return dict(zip(world.stores["store_id"].to_list(), world.stores["dc_id"].to_list()))


def test_the_chain_has_several_regions_of_whole_dcs_up_to_the_size_set(chain):
    _, world, _ = chain[-1]
    served = world.stores["dc_id"].n_unique()  # the DCs that serve an open store
    assert len(regions.Regions.of(world, 1)) == served >= 2
    assert len(regions.Regions.of(world, world.store_products.height)) == 1
    listed = (world.store_products.join(world.stores.select("store_id", "dc_id"), on="store_id")
              .group_by("dc_id").len().sort("dc_id")["len"].to_list())
    dcs = sorted(world.stores["dc_id"].unique().to_list())
    together = regions.Regions.of(world, listed[0] + listed[1])  # the first two DCs share a region
    assert len(together) == served - 1 and together.first_dcs() == [dcs[0], *dcs[2:]]
    apart = regions.Regions.of(world, listed[0] + listed[1] - 1)
    assert len(apart) == served and apart.first_dcs() == dcs
    assert np.isclose(together.share.sum(), 1.0) and np.isclose(apart.share.sum(), 1.0)


def test_shoppers_customers_drivers_and_trucks_stay_in_their_region(chain):
    for _, world, frames in chain[1:]:
        dc = _dc_of_store(world)
        home = dict(zip(world.customers["customer_id"].to_list(), world.customers["home_store_id"].to_list()))
        loyal = frames["receipts"].filter(pl.col("customer_id").is_not_null())
        assert loyal.height
        assert all(dc[s] == dc[home[c]] for s, c in loyal.select("store_id", "customer_id").iter_rows())
        orders = frames["orders"]
        assert orders.height
        assert all(dc[s] == dc[home[c]] for s, c in orders.select("store_id", "customer_id").iter_rows())
        driver_home = dict(zip(world.drivers["driver_id"].to_list(), world.drivers["home_store_id"].to_list()))
        bundles = frames["bundles"]
        assert all(dc[s] == dc[driver_home[d]] for s, d in bundles.select("store_id", "driver_id").iter_rows())
        shipments = frames["shipments"]
        assert all(dc[s] == d for s, d in shipments.select("store_id", "dc_id").iter_rows())


def test_every_store_product_is_stocked_once_and_the_day_ids_follow_one_another(chain):
    for day, world, frames in chain:
        stock = frames["store_inventory"]["store_product_id"]
        assert stock.n_unique() == stock.len() == world.store_products.height
        for table, stride in ID_STRIDES.items():
            key = operations_key(table)
            ids = np.sort(frames[table][key].to_numpy())
            first = (day.index + 1) * stride + 1
            assert np.array_equal(ids, np.arange(first, first + len(ids))), table


def operations_key(table: str) -> str:
    return {"receipts": "receipt_id", "orders": "order_id", "bundles": "bundle_id", "shipments": "shipment_id",
            "store_inventory_txn": "txn_id", "dc_inventory_txn": "txn_id"}[table]


def test_the_day_is_the_same_when_simulated_again(chain):
    (_, _, first), (day, world, frames) = chain[0], chain[1]
    yesterday = operations.Yesterday(first["store_inventory"], first["dc_inventory"], first["delivery_customers"],
                                     first["shipments"])
    again = regions.simulate_day(day, world, PriceBook.from_list_prices(day.business_date, world.store_products),
                                 yesterday)
    assert set(again) == set(frames)
    for name, frame in frames.items():
        assert again[name].equals(frame), name


def test_yesterdays_stock_scanned_from_its_file_gives_the_same_day(chain, tmp_path, monkeypatch):
    """Yesterday's stock, written region after region, is read one region's slice at a time; in
    another order it is read whole: the day is the same either way."""
    (_, _, first), (day, world, frames) = chain[0], chain[1]
    sliced = []
    monkeypatch.setattr(regions._Scanned, "__call__",
                        lambda self, region, call=regions._Scanned.__call__: sliced.append(region) or call(self, region))
    stock = first["store_inventory"]
    for name, rows in (("written", stock), ("shuffled", stock.sample(fraction=1.0, shuffle=True, seed=1))):
        rows.write_parquet(tmp_path / f"{name}.parquet", row_group_size=100)
        yesterday = operations.Yesterday(pl.scan_parquet(tmp_path / f"{name}.parquet"), first["dc_inventory"],
                                         first["delivery_customers"], first["shipments"])
        again = regions.simulate_day(day, world, PriceBook.from_list_prices(day.business_date, world.store_products),
                                     yesterday)
        for table, frame in frames.items():
            assert again[table].equals(frame), (name, table)
        if name == "written":
            assert sliced == list(range(len(regions.Regions.of(world, 1))))
    assert len(sliced) == len(regions.Regions.of(world, 1))  # the shuffled rows were read whole


def test_tables_handed_over_region_by_region_are_the_returned_day(chain):
    (_, _, first), (day, world, frames) = chain[0], chain[1]
    yesterday = operations.Yesterday(first["store_inventory"], first["dc_inventory"], first["delivery_customers"],
                                     first["shipments"])
    handed: dict[str, list[pl.DataFrame]] = {}
    contained = []

    def finished(part: dict[str, pl.DataFrame], self_contained: bool = False) -> None:
        contained.append(self_contained)
        for name, frame in part.items():
            handed.setdefault(name, []).append(frame)

    returned = regions.simulate_day(day, world, PriceBook.from_list_prices(day.business_date, world.store_products),
                                    yesterday, finished)
    assert returned == {} and all(contained)
    assert all(len(parts) == len(regions.Regions.of(world, 1)) for parts in handed.values())
    for name, frame in frames.items():
        assert pl.concat(handed[name]).equals(frame), name


def test_a_chain_of_one_region_is_simulated_whole(tiny_settings, dictionaries):
    runs = list(run_days(tiny_settings, dictionaries, 2))
    (_, _, first), (day, world, frames) = runs
    assert len(regions.Regions.of(world, tiny_settings.region_store_products)) == 1
    yesterday = operations.Yesterday(first["store_inventory"], first["dc_inventory"], first["delivery_customers"],
                                     first["shipments"])
    whole = operations.simulate_day(day, world, PriceBook.from_list_prices(day.business_date, world.store_products),
                                    yesterday)
    for name, frame in frames.items():
        assert whole[name].equals(frame), name


def test_each_region_draws_its_own_streams(tiny_settings, dictionaries):
    day = Day(tiny_settings, dictionaries, tiny_settings.start_date)
    draws = {region: Day(tiny_settings, dictionaries, day.business_date, region).rng("operations", "trips").random(4)
             for region in (None, 1, 2)}
    assert not np.array_equal(draws[None], draws[1]) and not np.array_equal(draws[1], draws[2])
    assert np.array_equal(draws[2], dataclasses.replace(day, region=2).rng("operations", "trips").random(4))


def test_numbering_starts_after_the_earlier_regions_and_refuses_to_overflow():
    frames = {table: pl.DataFrame({"x": np.arange(n)}) for table, n in zip(ID_STRIDES, (5, 4, 3, 2, 1, 0))}
    after = Numbering(7).after(frames)
    assert after.first("receipts") == 7 * ID_STRIDES["receipts"] + 1 + 5
    assert after.first("dc_inventory_txn") == 7 * ID_STRIDES["dc_inventory_txn"] + 1
    full = Numbering(7, {"shipments": ID_STRIDES["shipments"] - 2}).after(frames)  # the stride's last id
    assert full.taken["shipments"] == ID_STRIDES["shipments"]
    with pytest.raises(ValueError, match="shipments"):
        Numbering(7, {"shipments": ID_STRIDES["shipments"] - 1}).after(frames)


@pytest.mark.parametrize("keys", [[1] * 100 + [2] * 100 + [3] * 70 + [5] * 20 + [1] * 10,   # long runs: sliced
                                  [3, 3, 3, 1, 1, 2, 2, 2, 2] * 20, [1, 2, 3, 1, 2, 3, 3, 1, 5, 2],  # gathered
                                  [], [4]])
def test_a_frame_is_cut_into_its_regions_rows_in_frame_order(keys):
    region_of_key = {1: 0, 2: 1, 3: 0, 4: 1, 5: -1}
    frame = pl.DataFrame({"key": pl.Series(keys, dtype=pl.Int64), "row": np.arange(len(keys)),
                          "label": pl.Series([str(k) for k in keys], dtype=pl.String)})
    sliced = regions._Sliced(frame, frame["key"].to_numpy(),
                             lambda ks: np.array([region_of_key[k] for k in ks], dtype=np.int64), 2)
    assert (sliced.runs is not None) == (len(keys) in (300, 1))
    for region in (0, 1):
        expected = frame.filter(pl.col("key").replace_strict(region_of_key, return_dtype=pl.Int64) == region)
        assert sliced(region).equals(expected)


def test_the_whole_day_audits_measure_the_same_on_the_columns_a_day_keeps(chain, three_dcs, tmp_path):
    from grocery_pipeline.assets.factory import _day_reads
    from grocery_pipeline.checks import AuditContext, all_audits
    from grocery_pipeline.checks.realism import TARGETS
    from grocery_pipeline.storage.lake import Lake
    from grocery_pipeline.tables import TABLES

    day, world, frames = chain[-1]
    frames = {name: TABLES[name].conform(frame) for name, frame in frames.items()}
    kept = _day_reads(frames)
    assert len(kept["store_inventory"].columns) < len(frames["store_inventory"].columns)
    assert all(kept[name].height == frame.height for name, frame in frames.items())
    lake = Lake(tmp_path / "lake")
    for table in ("stores", "customers", "products"):  # what the measures look up, as published
        lake.publish(lake.stage(TABLES[table], TABLES[table].conform(getattr(world, table)), day.business_date))

    def context(tables):
        return AuditContext(three_dcs, lake, day.business_date, dict(tables))

    for target in TARGETS:  # each measure, warm-up or not, reads only the columns it declares
        measured = target.measure(context(frames))
        assert measured[0] is not None, target.name
        own = {table: frames[table].select(list(dict.fromkeys([*TABLES[table].key, *columns])))
               for table, columns in target.reads.items()}
        assert target.measure(context(own)) == measured, target.name
    for audit in all_audits():
        if audit.day_reads is not None and audit.table in frames:
            assert audit.run(context(kept)) == audit.run(context(frames)), audit.name


def test_audits_of_a_state_or_timeline_across_the_day_run_on_the_whole_day():
    """A region cannot show that none of yesterday's stock rows disappeared (a store whose rows all
    vanished leaves no trace in its region), nor that a driver or truck is never on two runs at
    once across regions: those audits run once on the day's rows."""
    from grocery_pipeline.checks import all_audits

    whole_day = {a.name for a in all_audits() if a.day_reads is not None}
    assert {"store_inventory_conserved", "dc_inventory_conserved", "bundles_driver_never_double_booked",
            "shipments_truck_never_double_booked"} <= whole_day
    assert not {"receipts_totals_to_the_cent", "receipt_lines_price_in_effect"} & whole_day  # row by row


def test_scanned_bounds_come_from_the_runs_of_one_key():
    """A region's rows of a scanned state table are found from the region of each run of one store,
    the same bounds as the region of each row; rows out of region order, or of a store in no
    region, are not sliced."""
    store_region = {10: 0, 11: 0, 12: 2, 13: 2, 14: 3}   # region 1 has no rows

    def region_of(ids: np.ndarray) -> np.ndarray:
        return np.array([store_region.get(int(i), -1) for i in ids], dtype=np.int64)

    stores = np.array([10, 10, 10, 11, 12, 12, 13, 13, 13, 13, 14])
    scanned = regions._Scanned.of(pl.LazyFrame({"store_id": stores}), "store_id", region_of, 4)
    per_row = np.searchsorted(region_of(stores), np.arange(5))
    assert scanned is not None and scanned.bounds.tolist() == per_row.tolist() == [0, 4, 4, 10, 11]
    assert scanned(1).height == 0 and scanned(2)["store_id"].to_list() == [12, 12, 13, 13, 13, 13]
    assert regions._Scanned.of(pl.LazyFrame({"store_id": stores[::-1]}), "store_id", region_of, 4) is None
    assert regions._Scanned.of(pl.LazyFrame({"store_id": np.r_[stores, 99]}), "store_id", region_of, 4) is None
    empty = regions._Scanned.of(pl.LazyFrame({"store_id": np.zeros(0, dtype=np.int64)}), "store_id", region_of, 4)
    assert empty is not None and empty.bounds.tolist() == [0] * 5
