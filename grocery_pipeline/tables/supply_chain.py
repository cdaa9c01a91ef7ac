"""Tables of the supply_chain group."""

from grocery_pipeline.tables import Table

TABLES: tuple[Table, ...] = ()
