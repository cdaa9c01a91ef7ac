"""grocery_pipeline: a grocery chain simulated day by day and published as a warehouse."""

from grocery_pipeline.memory import arrow_buffers_from_the_c_heap, one_heap_for_all_threads, polars_pages_back_sooner

polars_pages_back_sooner()  # before any module of the package imports polars
one_heap_for_all_threads()  # before the package starts any thread
arrow_buffers_from_the_c_heap()
