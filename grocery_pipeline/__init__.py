"""grocery_pipeline: a grocery chain simulated day by day and published as a warehouse."""

from grocery_pipeline.memory import polars_pages_back_sooner

polars_pages_back_sooner()  # before any module of the package imports polars
