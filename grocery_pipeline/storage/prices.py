"""Reading the prices in effect during a business day from the lake."""

from __future__ import annotations

from grocery_pipeline.simulation.pricing import PriceBook
from grocery_pipeline.simulation.world import World
from grocery_pipeline.storage.lake import Lake


def load_pricebook(lake: Lake, world: World) -> PriceBook:
    """The day's opening prices and tick changes for every store product live that day."""
    return PriceBook.from_list_prices(world.business_date, world.store_products)
