"""Frame schemas, declared once: the writer enforces them, Dagster shows them as column schemas,
the generic key and foreign-key checks read them, and the dbt source contract is built from them.

Each group of tables lives in its own module; `TABLES` collects them all in referential order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import polars as pl


@dataclass(frozen=True)
class Column:
    name: str
    dtype: pl.DataType
    description: str
    nullable: bool = False
    references: tuple[str, str] | None = None  # (table, column) this column points to
    # False: no step of the pipeline reads it back (a customer's name and contact details; the
    # files, and the warehouse and dbt on them, keep it), so a table's history held in memory
    # leaves it out (`storage.lake.read_files_cached`)
    held: bool = True

    @property
    def sql_type(self) -> str:
        return sql_type(self.dtype)


@dataclass(frozen=True)
class Table:
    name: str
    group: str
    description: str
    columns: tuple[Column, ...]
    key: tuple[str, ...]
    partitioning: str = "daily"  # daily | price_tick
    owners: tuple[str, ...] = field(default=("team:data-platform",))
    # the next day reads this partition back (a state chain's state, or the history an audit of
    # the next day compares with): the lake keeps the last one it published in memory
    read_back: bool = False

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def polars_schema(self) -> dict[str, pl.DataType]:
        return {c.name: c.dtype for c in self.columns}

    @property
    def not_held(self) -> list[str]:
        """The columns a history of this table held in memory leaves out (`Column.held`)."""
        return [c.name for c in self.columns if not c.held]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name} has no column {name!r}")

    @property
    def foreign_keys(self) -> list[Column]:
        return [c for c in self.columns if c.references is not None]

    def conform(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The frame with exactly this table's columns, in order, cast to the declared types.

        A missing or extra column is a programming error and fails loudly rather than being
        written silently.
        """
        missing = [c for c in self.column_names if c not in frame.columns]
        extra = [c for c in frame.columns if c not in self.column_names]
        if missing or extra:
            raise ValueError(
                f"table {self.name}: frame does not match its schema "
                f"(missing: {missing or 'none'}; unexpected: {extra or 'none'})"
            )
        if list(frame.schema.items()) == list(self.polars_schema.items()):
            return frame  # already so: no plan to build and run (a 90-day window conforms 3,700 frames)
        return frame.select(pl.col(c.name).cast(c.dtype, strict=True) for c in self.columns)

    def empty(self) -> pl.DataFrame:
        return pl.DataFrame(schema=self.polars_schema)


_SQL_TYPES = {
    pl.Int8: "TINYINT", pl.Int16: "SMALLINT", pl.Int32: "INTEGER", pl.Int64: "BIGINT",
    pl.UInt8: "UTINYINT", pl.UInt16: "USMALLINT", pl.UInt32: "UINTEGER", pl.UInt64: "UBIGINT",
    pl.Float32: "FLOAT", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN",
    pl.Date: "DATE", pl.Datetime: "TIMESTAMP",
}

def sql_type(dtype: pl.DataType) -> str:
    """The DuckDB type a polars type is stored as in Parquet (lists as `INNER[]`)."""
    if isinstance(dtype, pl.List):
        return f"{sql_type(dtype.inner)}[]"
    return _SQL_TYPES.get(type(dtype), str(dtype).upper())


# Shared columns every partitioned table carries.
BUSINESS_DATE = Column("business_date", pl.Date(), "The business date (daily partition) this row belongs to.")
LOADED_AT = Column("_loaded_at", pl.Datetime("us"),
                   "Simulated time the row landed in the warehouse (deterministic; for dbt freshness).",
                   held=False)


def _collect() -> dict[str, Table]:
    from grocery_pipeline.tables import delivery, dimensions, pricing, sales, supply_chain

    out: dict[str, Table] = {}
    for module in (dimensions, pricing, sales, delivery, supply_chain):
        for table in module.TABLES:
            if table.name in out:
                raise ValueError(f"table {table.name} declared twice")
            out[table.name] = table
    return out


TABLES: dict[str, Table] = _collect()
