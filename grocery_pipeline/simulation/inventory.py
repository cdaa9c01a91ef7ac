"""Stock on hand during a business day: lines are served in time order against what is on the
shelf, so sales never take stock below zero."""

from __future__ import annotations

from typing import Callable

import numpy as np

from grocery_pipeline.simulation import shopping
from grocery_pipeline.simulation.shopping import search_sorted, strictly_increasing


class StockLedger:
    """On-hand units per store product, updated as demand is served (vectorized)."""

    def __init__(self, store_product_ids: np.ndarray, on_hand: np.ndarray):
        ids = np.asarray(store_product_ids, dtype=np.int64)
        if strictly_increasing(ids):   # a day's stock comes in id order: no sort, no copy
            self.store_product_ids = ids
            self.on_hand = np.array(on_hand, dtype=np.int64)
        else:
            order = np.argsort(ids, kind="stable")
            self.store_product_ids = ids[order]
            self.on_hand = np.asarray(on_hand, dtype=np.int64)[order]

    def positions(self, store_product_ids) -> np.ndarray:
        ids = np.asarray(store_product_ids, dtype=np.int64)
        pos = search_sorted(self.store_product_ids, ids)
        pos = np.minimum(pos, len(self.store_product_ids) - 1)
        unknown = self.store_product_ids[pos] != ids if len(ids) else np.zeros(0, dtype=bool)
        if unknown.any():
            raise KeyError(f"store_product_id {ids[unknown][0]} is not stocked in this ledger")
        return pos

    def serve(self, store_product_ids, quantities) -> np.ndarray:
        """Grant each line (given in time order) what is left on the shelf; returns granted units.

        A line whose product runs out gets what remains (possibly 0); later lines of the same
        product get nothing.
        """
        qty = np.asarray(quantities, dtype=np.int64)
        if qty.size == 0:
            return qty.copy()
        return self.serve_at(self.positions(store_product_ids), qty)

    def serve_at(self, pos: np.ndarray, qty: np.ndarray) -> np.ndarray:
        """`serve` of lines already located in the ledger (`positions`), so a day's demand is
        looked up once rather than hour by hour."""
        order = np.argsort(pos, kind="stable")  # group lines by product, keep time order inside
        granted = np.empty_like(qty)
        granted[order] = self.serve_grouped(pos[order], qty[order])
        return granted

    def serve_grouped(self, pos: np.ndarray, qty: np.ndarray) -> np.ndarray:
        """`serve_at` of lines already grouped by position (each product's lines together, in
        time order): granted units in the lines' order."""
        if not len(pos):
            return np.zeros(0, dtype=np.int64)
        group_start = np.r_[True, pos[1:] != pos[:-1]]
        cum = np.cumsum(qty)
        base = np.maximum.accumulate(np.where(group_start, cum - qty, 0))
        before = cum - qty - base  # units requested earlier in the same product
        granted = np.clip(self.on_hand[pos] - before, 0, qty)
        starts = np.flatnonzero(group_start)
        self.on_hand[pos[starts]] -= np.add.reduceat(granted, starts)
        return granted

    def receive(self, store_product_ids, quantities) -> None:
        np.add.at(self.on_hand, self.positions(store_product_ids), np.asarray(quantities, dtype=np.int64))

    def on_hand_of(self, store_product_ids) -> np.ndarray:
        return self.on_hand[self.positions(store_product_ids)]

    def snapshot(self) -> tuple[np.ndarray, np.ndarray]:
        """(ids, on-hand) sorted by id: the stock at this moment."""
        return self.store_product_ids.copy(), self.on_hand.copy()


SECONDS_PER_HOUR = 3600
# Where cycle counts find the books wrong: share of store products counted per day.
CYCLE_COUNT_SHARE = 0.01
CYCLE_COUNT_DELTAS = np.array([-2, -1, 1, 2], dtype=np.int64)
CYCLE_COUNT_ODDS = np.array([0.2, 0.4, 0.3, 0.1])
SHRINK_SCALE = 0.40  # scales the department shrink rates (share of units sold) to the chain's ~2-3%


def serve_by_hour(ledger: StockLedger, demand_seconds: np.ndarray, demand_ids: np.ndarray,
                  demand_qty: np.ndarray, arrival_seconds: np.ndarray, arrival_ids: np.ndarray,
                  arrival_qty: np.ndarray,
                  on_shortfall: Callable[[np.ndarray, np.ndarray, StockLedger], None] | None = None,
                  demand_slots: np.ndarray | None = None) -> np.ndarray:
    """Serve the day's demand in time order while trucks unload during the day.

    Demand lines of each hour are served (in time order) against the shelf; then `on_shortfall`
    may serve replacements for the hour's short lines (e.g. substitutes); then stock unloaded
    during the hour goes on the shelf, available from the next hour. Serving later than the truck
    unloads is conservative: the stock on the books never goes below what the shelf held.
    `demand_slots`: the lines' ledger positions when the caller knows them (`demand_ids` is then
    not read). Returns the units granted per demand line.
    """
    demand_seconds = np.asarray(demand_seconds, dtype=np.int64)
    arrival_seconds = np.asarray(arrival_seconds, dtype=np.int64)
    slots = ledger.positions(demand_ids) if demand_slots is None else np.asarray(demand_slots, dtype=np.int64)
    order = hour_slot_order(demand_seconds, slots, len(ledger.on_hand))
    hour_of_line = demand_seconds[order] // SECONDS_PER_HOUR
    arrival_hour = arrival_seconds // SECONDS_PER_HOUR
    last_hour = int(max(hour_of_line.max(initial=0), arrival_hour.max(initial=0)))
    bounds = np.searchsorted(hour_of_line, np.arange(last_hour + 2))
    del hour_of_line
    granted = np.zeros(len(demand_seconds), dtype=np.int64)
    demand_qty = np.asarray(demand_qty, dtype=np.int64)
    for hour in range(last_hour + 1):
        lines = order[bounds[hour]:bounds[hour + 1]]
        if len(lines):
            granted[lines] = ledger.serve_grouped(slots[lines], demand_qty[lines])
            if on_shortfall is not None:
                short = lines[granted[lines] < demand_qty[lines]]
                if len(short):
                    short = short[np.lexsort((short, demand_seconds[short]))]   # back in time order
                    on_shortfall(short, granted[short], ledger)
        unloaded = arrival_hour == hour
        if unloaded.any():
            ledger.receive(np.asarray(arrival_ids)[unloaded], np.asarray(arrival_qty)[unloaded])
    return granted


def hour_slot_order(seconds: np.ndarray, slots: np.ndarray, n_slots: int) -> np.ndarray:
    """Lines by hour, then ledger slot, then time (ties in line order): each hour's lines grouped
    by product in time order, as `StockLedger.serve_grouped` takes them, by one sort of the day."""
    n = len(seconds)
    if not n:
        return np.zeros(0, dtype=np.int64)
    hour, second = np.divmod(seconds, SECONDS_PER_HOUR)
    hours = int(hour.max()) + 1
    if int(hour.min()) >= 0 and hours * max(n_slots, 1) * SECONDS_PER_HOUR < 2 ** 62:
        order = shopping.packed_order((hour * n_slots + slots) * SECONDS_PER_HOUR + second)
        if order is not None:
            return order
    return np.lexsort((second, slots, hour))
def shrink_units(rng: np.random.Generator, on_hand: np.ndarray, sold_units: np.ndarray, shrink_rate: np.ndarray,
                 perishable: np.ndarray) -> np.ndarray:
    """Units lost at the close (spoilage, damage, theft): about the department's shrink rate of
    what sold, perishables also losing a little of what sits on the shelf; never more than is left."""
    expected = SHRINK_SCALE * shrink_rate
    expected *= sold_units      # in place: at the close these are store-product-sized arrays
    spoiled = 0.0015 * on_hand
    np.add(expected, spoiled, out=expected, where=perishable)
    del spoiled
    shrink = rng.poisson(expected)
    del expected
    return np.minimum(shrink, on_hand, out=shrink)


def cycle_count_adjustments(rng: np.random.Generator, on_hand: np.ndarray) -> np.ndarray:
    """Book corrections found by the day's cycle counts: a unit or two either way, never below zero.

    Every store product draws whether it is counted, then its correction as `Generator.choice`
    draws one (a uniform against the cumulative odds); the correction is looked up only where a
    count happened, about 1% of the day's store-product-sized arrays.
    """
    n = len(on_hand)
    counted = np.flatnonzero(rng.random(n) < CYCLE_COUNT_SHARE)
    cumulative = np.cumsum(CYCLE_COUNT_ODDS)
    cumulative /= cumulative[-1]
    pick = np.searchsorted(cumulative, rng.random(n)[counted], side="right")
    delta = np.zeros(n, dtype=np.int64)
    delta[counted] = np.maximum(CYCLE_COUNT_DELTAS[pick], -np.asarray(on_hand, dtype=np.int64)[counted])
    return delta
