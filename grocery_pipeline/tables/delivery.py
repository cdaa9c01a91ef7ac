"""Tables of the delivery group."""

from grocery_pipeline.tables import Table

TABLES: tuple[Table, ...] = ()
