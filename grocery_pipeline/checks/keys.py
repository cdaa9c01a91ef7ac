"""Key uniqueness and referential integrity, derived from the table schemas for every table."""

from __future__ import annotations

import numpy as np
import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from
from grocery_pipeline.storage.lake import MissingPartitionError
from grocery_pipeline.tables import TABLES, Table


def _keys_unique(table: Table):
    def run(ctx: AuditContext) -> Finding:
        frame = ctx.frame(table.name)
        key = list(table.key)
        has_nulls = frame.select(pl.sum_horizontal(pl.col(key).null_count())).item() > 0
        nulls = frame.filter(pl.any_horizontal(pl.col(k).is_null() for k in key)) if has_nulls else frame.clear()
        dupes = duplicated_keys(frame, key)
        return finding_from(pl.concat([nulls, dupes]), key, null_keys=nulls.height, duplicate_rows=dupes.height)
    return run


_PACKABLE = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32, pl.Date, pl.Datetime)


def _constant(frame: pl.DataFrame, column: str) -> bool:
    s = frame[column]
    nulls = s.null_count()
    return nulls == len(s) or (nulls == 0 and s.min() == s.max())


def _packed_key(frame: pl.DataFrame, key: list[str]) -> pl.Series | None:
    """The key as one Int64 (mixed radix over each column's range) when its columns are integers
    or dates whose ranges fit, else None: one integer hashes far faster than a struct, and an
    (id, line_number) key of rows written in order comes out sorted, which needs no hashing."""
    if frame.is_empty() or any(not isinstance(frame.schema[k], _PACKABLE) for k in key):
        return None
    physical = [pl.col(k).to_physical().cast(pl.Int64) for k in key]
    bounds = frame.select([e.min().alias(f"lo{i}") for i, e in enumerate(physical)]
                          + [e.max().alias(f"hi{i}") for i, e in enumerate(physical)]).row(0)
    lows, highs = bounds[:len(key)], bounds[len(key):]
    if any(b is None for b in bounds):
        return None
    packed, span = pl.lit(0, dtype=pl.Int64), 1
    for column, low, high in zip(physical, lows, highs):
        span *= high - low + 1
        if span >= 2 ** 62:
            return None
        packed = packed * (high - low + 1) + (column - low)
    return frame.select(packed.alias("key"))["key"]


def _strictly_sorted(frame: pl.DataFrame, key: tuple[str, ...]) -> bool:
    """Whether each row's key (no nulls) is above the row before it, comparing the columns in this
    order: rows written in key order, as most partitions are, then need no hashing to be unique.
    Integer and date columns are compared in numpy, a pass or two over each column."""
    if all(isinstance(frame.schema[k], _PACKABLE) for k in key):
        above = np.zeros(max(frame.height - 1, 0), dtype=bool)
        for column in reversed(key):
            values = frame[column].to_physical().to_numpy()
            later, earlier = values[1:], values[:-1]
            above = (later > earlier) | ((later == earlier) & above)
        return bool(above.all())
    above = pl.lit(False)
    for column in reversed(key):
        previous = pl.col(column).shift(1)
        above = (pl.col(column) > previous) | ((pl.col(column) == previous) & above)
    return frame.select(above.fill_null(True).all()).item()


def duplicated_keys(frame: pl.DataFrame, key: list[str]) -> pl.DataFrame:
    """The rows whose key occurs more than once, in frame order (null keys compare equal)."""
    if frame.height < 2:
        return frame.head(0)
    # a key column constant over the partition (its business date) cannot tell two rows apart
    varying = [k for k in key if not _constant(frame, k)]
    if not varying:
        return frame
    has_nulls = frame.select(pl.sum_horizontal(pl.col(varying).null_count())).item() > 0
    orders = dict.fromkeys([tuple(varying), tuple(reversed(varying))])
    if not has_nulls and any(_strictly_sorted(frame, order) for order in orders):
        return frame.head(0)
    packed = None if has_nulls else _packed_key(frame, varying)
    if packed is not None:
        return frame.head(0) if packed.n_unique() == frame.height else frame.filter(packed.is_duplicated())
    if len(varying) == 1:
        return frame.filter(pl.col(varying[0]).is_duplicated())
    return frame.filter(pl.struct(varying).is_duplicated())


def _not_null(table: Table):
    required = [c.name for c in table.columns if not c.nullable]

    def run(ctx: AuditContext) -> Finding:
        frame = ctx.frame(table.name)
        counts = frame.select(pl.col(required).null_count()).row(0, named=True)
        bad_cols = {c: n for c, n in counts.items() if n}
        offenders = frame.filter(pl.any_horizontal(pl.col(required).is_null())) if bad_cols else frame.head(0)
        return finding_from(offenders, list(table.key), null_counts_by_column=bad_cols)
    return run


def parent_keys(ctx: AuditContext, parent: str, column: str) -> pl.Series:
    """The parent's keys that exist on the audited date: staged alongside, else published as of then."""
    if parent in ctx.frames:
        return ctx.frames[parent][column]
    try:
        published = ctx.published_as_of(parent)[column]
    except MissingPartitionError:
        published = pl.Series(column, [], dtype=TABLES[parent].column(column).dtype)
    return published


def _orphans(ctx: AuditContext, parent: str, column: str) -> dict[tuple[str, str], pl.Series]:
    """Which rows do not resolve, for every reference of a staged table to `parent.column` (a mask
    by table and column), in one lookup: the parent's keys are hashed once for all of them, not
    once per referencing table and column."""
    refs = [(t, c.name) for t, frame in ctx.frames.items() if t in TABLES
            for c in TABLES[t].foreign_keys if c.references == (parent, column) and c.name in frame.columns]
    values = [ctx.frames[t][c] for t, c in refs]
    if not values or len({v.dtype for v in values}) > 1:
        return {}
    keys = parent_keys(ctx, parent, column)  # is_in hashes them once; unique() would twice
    stacked = pl.concat(values)
    orphan = stacked.is_not_null() & ~stacked.is_in(keys.implode())
    offsets = np.cumsum([0] + [v.len() for v in values])
    return {ref: orphan.slice(start, end - start) for ref, start, end in zip(refs, offsets, offsets[1:])}


def _foreign_keys(table: Table):
    def run(ctx: AuditContext) -> Finding:
        frame = ctx.frame(table.name)
        offenders, per_column = [], {}
        for col in table.foreign_keys:
            parent, parent_col = col.references
            orphans = ctx.shared(("orphans", parent, parent_col), lambda: _orphans(ctx, parent, parent_col))
            if (table.name, col.name) in orphans:
                orphan = orphans[table.name, col.name]
                bad = frame.filter(orphan) if orphan.any() else frame.clear()  # a filter copies every column
            else:
                keys = parent_keys(ctx, parent, parent_col)
                bad = frame.filter(pl.col(col.name).is_not_null() & ~pl.col(col.name).is_in(keys.implode()))
            per_column[f"{col.name} -> {parent}.{parent_col}"] = bad.height
            offenders.append(bad)
        return finding_from(pl.concat(offenders), list(table.key), orphans_by_reference=per_column)
    return run


def _audits() -> list[Audit]:
    out = []
    for table in TABLES.values():
        out.append(Audit(f"{table.name}_keys_unique", table.name,
                         f"Every {', '.join(table.key)} of {table.name} is present and unique.",
                         _keys_unique(table), day_reads={table.name: tuple(table.key)}))
        out.append(Audit(f"{table.name}_required_columns", table.name,
                         f"No required column of {table.name} is null.", _not_null(table)))
        if table.foreign_keys:
            refs = ", ".join(f"{c.name} -> {c.references[0]}" for c in table.foreign_keys)
            out.append(Audit(f"{table.name}_foreign_keys", table.name,
                             f"Every reference resolves to a row that existed that day ({refs}).",
                             _foreign_keys(table)))
    return out


AUDITS = _audits()
