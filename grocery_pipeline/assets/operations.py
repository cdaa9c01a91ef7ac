"""Daily operations: in-store sales, home delivery, inventory and the supply chain of each day."""

OPERATIONS_ASSETS: list = []
