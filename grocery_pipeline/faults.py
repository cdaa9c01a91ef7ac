"""Deliberate corruption of a generated partition before it is audited, for demos and for tests of
the gates. With a fault on (setting `faults`, env `GROCERY_FAULTS=bad_total,orphan_fk`), the
check named in `Fault.caught_by` fails, the partition is not published, and nothing downstream
of it runs.

Each fault corrupts the first row of the tables it targets, whenever the partition being written
holds rows of them; the corruption is deterministic, like everything else in the data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import polars as pl

from grocery_pipeline.settings import KNOWN_FAULTS


def _first_row(frame: pl.DataFrame) -> pl.Expr:
    return pl.int_range(pl.len()) == 0


def _orphan(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    # Ids are positive everywhere, so a negative one can never resolve to a parent row.
    return frame.with_columns(pl.when(_first_row(frame)).then(-1 - pl.col(column)).otherwise(pl.col(column))
                              .cast(frame.schema[column]).alias(column))


def _off_by_a_dollar(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.with_columns(pl.when(_first_row(frame)).then(pl.col(column) + 1.0).otherwise(pl.col(column))
                              .alias(column))


def _negative(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    return frame.with_columns(pl.when(_first_row(frame)).then(-1 - pl.col(column).abs()).otherwise(pl.col(column))
                              .cast(frame.schema[column]).alias(column))


def _above_msrp(frame: pl.DataFrame, column: str) -> pl.DataFrame:
    # No MSRP in the catalog is ten times a store's price, so the corrupted price exceeds it.
    return frame.with_columns(pl.when(_first_row(frame)).then((pl.col(column) * 10).round(2))
                              .otherwise(pl.col(column)).alias(column))


def _duplicate(frame: pl.DataFrame, column: str | None) -> pl.DataFrame:
    return pl.concat([frame, frame.head(1)])


@dataclass(frozen=True)
class Fault:
    name: str
    description: str
    targets: dict[str, str | None]  # table -> the column it corrupts
    caught_by: tuple[str, ...]      # the blocking checks that reject it
    corrupt: Callable[[pl.DataFrame, str | None], pl.DataFrame]


FAULTS: dict[str, Fault] = {f.name: f for f in (
    Fault("orphan_fk", "A delivery order whose customer does not exist.",
          {"orders": "customer_id"}, ("orders_foreign_keys",), _orphan),
    Fault("bad_total", "A receipt whose total is off by one dollar.",
          {"receipts": "total"}, ("receipts_totals_to_the_cent",), _off_by_a_dollar),
    Fault("negative_stock", "A store product with negative end-of-day on-hand.",
          {"store_inventory": "on_hand"}, ("store_inventory_on_hand_not_negative",), _negative),
    Fault("price_above_msrp", "A store list price and a price tick above the product's MSRP.",
          {"store_products": "list_price", "price_updates": "new_price"},
          ("store_products_price_between_cost_and_msrp", "price_updates_price_between_cost_and_msrp"),
          _above_msrp),
    Fault("duplicate_key", "A customer row published twice.",
          {"customers": None}, ("customers_keys_unique",), _duplicate),
)}

assert set(FAULTS) == set(KNOWN_FAULTS), "every known fault needs an injection and vice versa"


def inject(faults: Iterable[str], frames: dict[str, pl.DataFrame]) -> dict[str, pl.DataFrame]:
    """The partition's frames with each named fault applied to the tables it targets."""
    out = dict(frames)
    for name in faults:
        fault = FAULTS[name]
        for table, column in fault.targets.items():
            if table in out and out[table].height:
                out[table] = fault.corrupt(out[table], column)
    return out
