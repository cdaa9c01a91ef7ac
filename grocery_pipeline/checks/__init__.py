"""Audits: invariants validated on a staged partition before it is published.

Each audit guards one table; blocking audits keep a failing partition out of the warehouse and
stop downstream assets. Every audit reports how many rows offend and up to ten sample keys.
Audits are collected from the modules of this package, one module per concern.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Callable, Mapping, TypeVar

import numpy as np
import polars as pl

from grocery_pipeline.settings import Settings
from grocery_pipeline.simulation.shopping import packed_order
from grocery_pipeline.storage.lake import Lake, MissingPartitionError

SAMPLE_SIZE = 10
T = TypeVar("T")


@dataclass(frozen=True)
class AuditContext:
    settings: Settings
    lake: Lake
    business_date: date
    frames: dict[str, pl.DataFrame]  # every table staged in the same step, by name
    # tables read as of the audited date: nothing is published while a partition is audited, and
    # a dozen audits of a day ask for the same parents (stores, products)
    _as_of: dict[str, pl.DataFrame] = field(default_factory=dict, compare=False, repr=False)
    _shared: dict[tuple, object] = field(default_factory=dict, compare=False, repr=False)

    def frame(self, table: str) -> pl.DataFrame:
        return self.frames[table]

    def of_part(self, frames: dict[str, pl.DataFrame]) -> "AuditContext":
        """The context of one self-contained part of this context's day (a region's tables: see
        `Audit.day_reads`): it shares the day's reads of published rows."""
        return AuditContext(self.settings, self.lake, self.business_date, frames, _as_of=self._as_of)

    def shared(self, key: tuple, compute: Callable[[], T]) -> T:
        """A result that several audits of the partition derive from one pass, computed once."""
        if key not in self._shared:
            self._shared[key] = compute()
        return self._shared[key]

    def published_as_of(self, table: str) -> pl.DataFrame:
        """Every published row of a daily table as of the audited date (`Lake.read_as_of`)."""
        if table not in self._as_of:
            self._as_of[table] = self.lake.read_as_of(table, self.business_date)
        return self._as_of[table]

    def same_day(self, table: str) -> pl.DataFrame | None:
        """Another table's rows of the audited date: staged alongside, else published, else None."""
        if table in self.frames:
            return self.frames[table]
        return self.shared(("same_day", table), lambda: self._published(table, self.business_date))

    def previous_day(self, table: str, columns: list[str] | None = None) -> pl.DataFrame | None:
        """A table's published partition of the day before (the only history a state check reads)."""
        return self._published(table, self.business_date - timedelta(days=1), columns)

    def _published(self, table: str, day: date, columns: list[str] | None = None) -> pl.DataFrame | None:
        try:  # from memory when this process just published it (`Lake.read_partition`)
            return self.lake.read_partition(table, day, columns=columns)
        except MissingPartitionError:
            return None


@dataclass(frozen=True)
class Finding:
    offending: int
    sample_keys: list = field(default_factory=list)
    detail: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.offending == 0


@dataclass(frozen=True)
class Audit:
    name: str
    table: str
    description: str
    run: Callable[[AuditContext], Finding]
    blocking: bool = True
    # A day made in self-contained parts (a day of operations, region by region) is audited part
    # by part as the parts come, and the findings added up; an audit of the whole day (a
    # statistic of it, uniqueness across it, a state or a timeline that one part cannot show
    # whole) runs once on the day's rows instead, and names here the columns of the day's tables
    # it reads, which are all the day keeps of its parts.
    day_reads: Mapping[str, tuple[str, ...]] | None = None


def finding_from(offenders: pl.DataFrame, key: list[str] | str, **detail) -> Finding:
    """A finding from the frame of offending rows: their count and up to ten sample keys."""
    cols = [key] if isinstance(key, str) else key
    sample = offenders.select(cols).head(SAMPLE_SIZE)
    keys = sample.to_series().to_list() if len(cols) == 1 else [list(r) for r in sample.rows()]
    return Finding(offenders.height, [str(k) if not isinstance(k, (int, float, list)) else k for k in keys], detail)


def merged_finding(findings: list[Finding]) -> Finding:
    """One finding of a day audited part by part: offending rows and counts added up, the lowest
    of the lowest, the first ten sample keys, and other details as the first part gave them."""
    if len(findings) == 1:
        return findings[0]
    detail: dict = {}
    for finding in findings:
        for key, value in finding.detail.items():
            detail[key] = value if key not in detail else _merged(key, detail[key], value)
    return Finding(sum(f.offending for f in findings),
                   [k for f in findings for k in f.sample_keys][:SAMPLE_SIZE], detail)


def _merged(key: str, first, value):
    if isinstance(first, bool) or isinstance(value, bool):
        return first
    if isinstance(first, (int, float)) and isinstance(value, (int, float)):
        if key.startswith("lowest"):
            return min(first, value)
        return first if key.endswith("_pct") else first + value
    if first is None:
        return value
    if isinstance(first, dict) and isinstance(value, dict):
        return {k: _merged(k, first[k], value[k]) if k in first and k in value else first.get(k, value.get(k))
                for k in {**first, **value}}
    return first


def packed_sort(values: pl.Series) -> tuple[np.ndarray, np.ndarray] | None:
    """(order, sorted values) of an integer column, stable (equal values keep their row order), by
    one plain numpy sort of each value packed with its row number: several times cheaper than an
    argsort or a frame sort. None when the column has nulls, is no integer, or spans too wide a
    range to pack."""
    if values.null_count() or values.dtype not in (pl.Int8, pl.Int16, pl.Int32, pl.Int64,
                                                   pl.UInt8, pl.UInt16, pl.UInt32):
        return None
    numbers = values.to_numpy().astype(np.int64, copy=True)   # sorted in place
    order = packed_order(numbers)
    return None if order is None else (order, numbers)


def all_audits() -> list[Audit]:
    from grocery_pipeline.checks import inventory, keys, lifecycle, pricing, realism, totals, volume

    return [a for module in (keys, totals, pricing, inventory, lifecycle, volume, realism) for a in module.AUDITS]


def day_columns(table: str) -> list[str]:
    """The columns of a table that the whole-day audits of any table read (see `Audit.day_reads`)."""
    return list(dict.fromkeys(c for a in all_audits() if a.day_reads for c in a.day_reads.get(table, ())))


def audits_for(table: str) -> list[Audit]:
    return [a for a in all_audits() if a.table == table]
