"""Stock on hand during a business day: lines are served in time order against what is on the
shelf, so sales never take stock below zero."""

from __future__ import annotations

import numpy as np


class StockLedger:
    """On-hand units per store product, updated as demand is served (vectorized)."""

    def __init__(self, store_product_ids: np.ndarray, on_hand: np.ndarray):
        order = np.argsort(store_product_ids, kind="stable")
        self.store_product_ids = np.asarray(store_product_ids, dtype=np.int64)[order]
        self.on_hand = np.asarray(on_hand, dtype=np.int64)[order].copy()

    def positions(self, store_product_ids) -> np.ndarray:
        ids = np.asarray(store_product_ids, dtype=np.int64)
        pos = np.searchsorted(self.store_product_ids, ids)
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
        pos = self.positions(store_product_ids)
        order = np.argsort(pos, kind="stable")  # group lines by product, keep time order inside
        p, q = pos[order], qty[order]
        group_start = np.r_[True, p[1:] != p[:-1]]
        cum = np.cumsum(q)
        base = np.maximum.accumulate(np.where(group_start, cum - q, 0))
        before = cum - q - base  # units requested earlier in the same product
        granted_sorted = np.clip(self.on_hand[p] - before, 0, q)
        granted = np.empty_like(granted_sorted)
        granted[order] = granted_sorted
        np.subtract.at(self.on_hand, p, granted_sorted)
        return granted

    def receive(self, store_product_ids, quantities) -> None:
        np.add.at(self.on_hand, self.positions(store_product_ids), np.asarray(quantities, dtype=np.int64))
