"""Key uniqueness and referential integrity, derived from the table schemas for every table."""

from __future__ import annotations

import polars as pl

from grocery_pipeline.checks import Audit, AuditContext, Finding, finding_from
from grocery_pipeline.storage.lake import MissingPartitionError
from grocery_pipeline.tables import TABLES, Table


def _keys_unique(table: Table):
    def run(ctx: AuditContext) -> Finding:
        frame = ctx.frame(table.name)
        key = list(table.key)
        nulls = frame.filter(pl.any_horizontal(pl.col(k).is_null() for k in key))
        # a one-column key hashes the column itself, far cheaper than a struct of it
        dupes = frame.filter(pl.col(key[0]).is_duplicated() if len(key) == 1 else pl.struct(key).is_duplicated())
        return finding_from(pl.concat([nulls, dupes]), key, null_keys=nulls.height, duplicate_rows=dupes.height)
    return run


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
        published = ctx.lake.read_as_of(parent, ctx.business_date, [column])[column]
    except MissingPartitionError:
        published = pl.Series(column, [], dtype=TABLES[parent].column(column).dtype)
    return published


def _foreign_keys(table: Table):
    def run(ctx: AuditContext) -> Finding:
        frame = ctx.frame(table.name)
        offenders, per_column = [], {}
        for col in table.foreign_keys:
            parent, parent_col = col.references
            keys = parent_keys(ctx, parent, parent_col)  # is_in hashes them once; unique() would twice
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
                         _keys_unique(table)))
        out.append(Audit(f"{table.name}_required_columns", table.name,
                         f"No required column of {table.name} is null.", _not_null(table)))
        if table.foreign_keys:
            refs = ", ".join(f"{c.name} -> {c.references[0]}" for c in table.foreign_keys)
            out.append(Audit(f"{table.name}_foreign_keys", table.name,
                             f"Every reference resolves to a row that existed that day ({refs}).",
                             _foreign_keys(table)))
    return out


AUDITS = _audits()
