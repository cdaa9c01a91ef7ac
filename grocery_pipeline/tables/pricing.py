"""Tables of the pricing group."""

from grocery_pipeline.tables import Table

TABLES: tuple[Table, ...] = ()
