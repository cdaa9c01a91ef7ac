"""A day of operations simulated one region at a time.

A region is one or more distribution centers (consecutive in id order, as many as keep its store
products within `Settings.region_store_products`), the open stores they serve, their store
products, their trucks, and the customers and drivers whose home store is one of its stores. Shoppers, delivery customers,
drivers and trucks stay in their region, so a region's rows depend on nothing outside it: each
region draws from random streams of its own (`Day.region`), takes its share of the day's traffic
(its stores' traffic weight), and numbers its rows after the regions before it (`Numbering`), so
the day's ids stay dense and unique. What the simulation builds for a day (the shelf, its ledger,
baskets, carts, the tables) it then builds for one region at a time, not for the whole chain at
once. A chain that fits one region (`tiny`, `small`, `medium` by default) is simulated whole.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Callable

import numpy as np
import polars as pl

from grocery_pipeline.memory import arrays_from_the_heap, give_back
from grocery_pipeline.simulation import operations, shopping
from grocery_pipeline.simulation.context import Day
from grocery_pipeline.simulation.operations import Numbering, Yesterday
from grocery_pipeline.simulation.pricing import PriceBook
from grocery_pipeline.simulation.world import World

RUN_ROWS = 64  # mean rows per run of one region from which a frame is sliced by runs, not gathered by row
# The customers' columns a day's operations read (their signup and business dates stay out of the regions' copies)
CUSTOMER_COLUMNS = ("customer_id", "segment", "lat", "lon", "delivery_propensity", "home_store_id")
# The store products' columns a day's operations read (their listing and business dates stay out)
STORE_PRODUCT_COLUMNS = ("store_product_id", "store_id", "product_id", "list_price", "reorder_point", "order_up_to",
                         "initial_on_hand")


class Split:
    """The rows of a frame by region (each region's rows in frame order), from a region index per
    row (-1: in no region)."""

    def __init__(self, labels: np.ndarray, n_regions: int):
        self.order = np.argsort(labels, kind="stable")
        self.bounds = np.searchsorted(labels[self.order], np.arange(n_regions + 1))

    def rows(self, region: int) -> np.ndarray:
        return self.order[self.bounds[region]:self.bounds[region + 1]]


@dataclasses.dataclass(frozen=True)
class Regions:
    """The day's regions: the DCs serving open stores, in id order, grouped while their store
    products number at most `region_store_products` (a DC with more is a region of its own)."""

    dc_ids: np.ndarray          # the DCs serving open stores, ascending
    dc_region: np.ndarray       # region index of each of `dc_ids`
    store_ids: np.ndarray       # the open stores, ascending
    store_region: np.ndarray    # region index of each of `store_ids`
    share: np.ndarray           # each region's share of the day's traffic (its stores' traffic weight)

    @classmethod
    def of(cls, world: World, region_store_products: int) -> "Regions":
        stores = world.stores  # sorted by store_id
        dc = stores["dc_id"].to_numpy()
        dc_ids = np.unique(dc)
        dc_of_store = np.searchsorted(dc_ids, dc)
        store_of_listing = shopping.row_of(stores["store_id"].to_numpy(), world.store_products["store_id"].to_numpy())
        listed = np.bincount(dc_of_store[store_of_listing[store_of_listing >= 0]], minlength=len(dc_ids))
        dc_region = np.zeros(len(dc_ids), dtype=np.int64)
        held = 0
        for i, n in enumerate(listed.tolist()):  # one step per DC
            if i and held + n > region_store_products:
                dc_region[i], held = dc_region[i - 1] + 1, n
            else:
                dc_region[i], held = dc_region[i - 1] if i else 0, held + n
        region = dc_region[dc_of_store]
        n_regions = int(dc_region[-1]) + 1 if len(dc_ids) else 0
        weight = np.bincount(region, weights=stores["traffic_weight"].to_numpy(), minlength=n_regions)
        total = weight.sum()
        share = weight / total if total > 0 else np.full(n_regions, 1.0 / max(n_regions, 1))
        return cls(dc_ids, dc_region, stores["store_id"].to_numpy(), region, share)

    def __len__(self) -> int:
        return len(self.share)

    def first_dcs(self) -> list[int]:
        """Each region's first DC id (its name in the random streams)."""
        return [int(self.dc_ids[np.flatnonzero(self.dc_region == r)[0]]) for r in range(len(self))]

    def of_stores(self, store_ids: np.ndarray) -> np.ndarray:
        """Region index of each store id (-1 for a store that is not open)."""
        return region_by_id(self.store_ids, self.store_region, store_ids)

    def of_dcs(self, dc_ids: np.ndarray) -> np.ndarray:
        """Region index of each DC id (-1 for a DC that serves no open store)."""
        return region_by_id(self.dc_ids, self.dc_region, dc_ids)


def region_by_id(sorted_ids: np.ndarray, region: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The region of each id, given the region of each of the sorted ids (-1 for an id not among them)."""
    row = shopping.row_of(sorted_ids, ids)
    return np.where(row >= 0, region[np.maximum(row, 0)], -1)


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """The row where each run of one key starts."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)


class _Sliced:
    """A frame cut into its regions' rows, given each row's key (a store, DC, customer or truck id)
    and the region of keys (-1: in no region). A frame in store order comes in long runs of one
    key: those runs are sliced out and put together, a copy at memory speed; other frames are
    gathered by row."""

    def __init__(self, frame: pl.DataFrame, keys: np.ndarray, region_of: Callable[[np.ndarray], np.ndarray],
                 n_regions: int):
        self.frame = frame
        starts = _run_starts(keys)
        self.runs: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
        self.split: Split | None = None
        if len(starts) and (len(starts) - 1) * RUN_ROWS < len(keys):
            self.runs = (starts, np.diff(np.r_[starts, len(keys)]), region_of(keys[starts]))
        else:
            self.split = Split(region_of(keys), n_regions)

    def __call__(self, region: int) -> pl.DataFrame:
        if self.runs is not None:
            starts, lengths, label = self.runs
            mine = np.flatnonzero(label == region)
            if lengths[mine].sum() == self.frame.height:
                return self.frame  # every row is the region's
            if not len(mine):
                return self.frame.clear()
            return pl.concat([self.frame.slice(int(starts[i]), int(lengths[i])) for i in mine], rechunk=True)
        rows = self.split.rows(region)
        if len(rows) == self.frame.height:
            return self.frame  # every row is the region's (rows come in frame order)
        return shopping.gather_rows(self.frame, rows)


class _Scanned:
    """A scanned partition whose rows come region after region, in the order of the regions (a
    state table the day before wrote region by region, with the same regions): a region's rows
    are a slice of the scan, read from the file's row groups alone. None from `of` when the rows
    are not so, or a key is in no region."""

    def __init__(self, scan: pl.LazyFrame, bounds: np.ndarray):
        self.scan, self.bounds = scan, bounds

    @classmethod
    def of(cls, scan: pl.LazyFrame, column: str, region_of: Callable[[np.ndarray], np.ndarray],
           n_regions: int) -> "_Scanned | None":
        keys = scan.select(column).collect()[column].to_numpy()
        starts = _run_starts(keys)  # the region of each run of one key: a state table comes store by store
        labels = region_of(keys[starts])
        if len(labels) and (labels[0] < 0 or bool((labels[1:] < labels[:-1]).any())):
            return None
        return cls(scan, np.r_[starts, len(keys)][np.searchsorted(labels, np.arange(n_regions + 1))])

    def __call__(self, region: int) -> pl.DataFrame:
        start, stop = int(self.bounds[region]), int(self.bounds[region + 1])
        return self.scan.slice(start, stop - start).collect()


def simulate_day(day: Day, world: World, prices: PriceBook, yesterday: Yesterday,
                 finished: Callable[..., None] | None = None) -> dict[str, pl.DataFrame]:
    """The day's operations tables, region by region, each table's rows region after region.
    With `finished`, each region's tables are handed to it as soon as they are made, as a
    self-contained part of the day, and nothing is returned (a chain of one region hands over and
    returns as `operations.simulate_day` does)."""
    regions = Regions.of(world, day.settings.region_store_products)
    if len(regions) <= 1:
        return operations.simulate_day(day, world, prices, yesterday, finished)
    arrays_from_the_heap()  # a chain this big: its arrays reused from the heap, given back region by region
    n = len(regions)

    def by_store(frame: pl.DataFrame, column: str) -> _Sliced:
        return _Sliced(frame, frame[column].to_numpy(), regions.of_stores, n)

    def by_dc(frame: pl.DataFrame) -> _Sliced:
        return _Sliced(frame, frame["dc_id"].to_numpy(), regions.of_dcs, n)

    def by_region(frame: pl.DataFrame, region: np.ndarray) -> _Sliced:
        return _Sliced(frame, region, lambda labels: labels, n)

    def by_owner(frame: pl.DataFrame, column: str, owners: pl.DataFrame, owner_region: np.ndarray) -> _Sliced:
        """By the region of the row of `owners` (sorted by `column`) each row's `column` names."""
        return _Sliced(frame, frame[column].to_numpy(),
                       lambda ids: region_by_id(owners[column].to_numpy(), owner_region, ids), n)

    customers = world.customers.select(CUSTOMER_COLUMNS)
    customer_region = regions.of_stores(customers["home_store_id"].to_numpy())
    truck_region = regions.of_dcs(world.trucks["dc_id"].to_numpy())
    parts = {
        "stores": by_dc(world.stores),
        "distribution_centers": by_dc(world.distribution_centers),
        "trucks": by_region(world.trucks, truck_region),
        "store_products": by_store(world.store_products.select(STORE_PRODUCT_COLUMNS), "store_id"),
        "customers": by_region(customers, customer_region),
        "drivers": by_store(world.drivers, "home_store_id"),
    }
    stock = yesterday.store_stock
    if isinstance(stock, pl.LazyFrame):  # yesterday's 8M rows at xl are not read whole when they need not be
        stock = _Scanned.of(stock, "store_id", regions.of_stores, n) or stock.collect()
    state = {
        "store_stock": stock if isinstance(stock, _Scanned) else by_store(stock, "store_id"),
        "dc_stock": by_dc(yesterday.dc_stock),
        "customers": by_owner(yesterday.customers, "customer_id", customers, customer_region),
        "shipments": by_owner(yesterday.shipments, "truck_id", world.trucks, truck_region),
    }

    numbering = Numbering(day.index + 1)
    made: dict[str, list[pl.DataFrame]] = defaultdict(list)
    for r, dc in enumerate(regions.first_dcs()):
        frames = operations.simulate_day(
            dataclasses.replace(day, region=dc),
            dataclasses.replace(world, **{name: part(r) for name, part in parts.items()}),
            prices,  # the chain's book: its lookup is built once, for every region and the audits
            Yesterday(**{name: part(r) for name, part in state.items()}),
            share=float(regions.share[r]), numbering=numbering)
        numbering = numbering.after(frames)
        if finished is not None:
            finished(frames, self_contained=True)
        else:
            for name, frame in frames.items():
                made[name].append(frame)
        del frames
        give_back()  # the region's working arrays, before the next region allocates its own
    return {name: pl.concat(frames) if len(frames) > 1 else frames[0] for name, frames in made.items()}
