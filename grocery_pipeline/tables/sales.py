"""Tables of the sales group."""

from grocery_pipeline.tables import Table

TABLES: tuple[Table, ...] = ()
