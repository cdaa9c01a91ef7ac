"""The lake writes atomically: stage beside, rename into place; readers never see a half file."""

import shutil
from datetime import date, timedelta

import duckdb
import polars as pl
import pytest

from grocery_pipeline.storage import catalog
from grocery_pipeline.storage.lake import Lake, MissingPartitionError
from grocery_pipeline.tables import TABLES

DAY = date(2025, 1, 1)
CALENDAR = TABLES["calendar"]


def _calendar_row(multiplier: float) -> pl.DataFrame:
    from grocery_pipeline.simulation.calendar import generate_calendar
    return CALENDAR.conform(generate_calendar(DAY).with_columns(traffic_multiplier=pl.lit(multiplier)))


def test_publish_replaces_the_partition(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.publish(lake.stage(CALENDAR, _calendar_row(1.0), DAY))
    lake.publish(lake.stage(CALENDAR, _calendar_row(2.0), DAY))
    frame = lake.read_partition("calendar", DAY)
    assert frame.height == 1 and frame["traffic_multiplier"][0] == 2.0
    assert [p.name for p in lake.partition_dir("calendar", DAY).iterdir()] == ["calendar.parquet"]


def test_interrupted_write_leaves_the_old_partition_readable_and_intact(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.publish(lake.stage(CALENDAR, _calendar_row(1.0), DAY))
    catalog.ensure_views(tmp_path / "warehouse.duckdb", lake, ["calendar"])
    # the new version is fully written to its staging name, then the process dies before the rename
    staged = lake.stage(CALENDAR, _calendar_row(9.0), DAY)
    assert staged.staged_path.exists()
    assert lake.read_partition("calendar", DAY)["traffic_multiplier"][0] == 1.0
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as conn:
        assert conn.execute("select count(*), max(traffic_multiplier) from grocery.calendar").fetchone() == (1, 1.0)


def test_missing_upstream_partition_names_table_and_date(tmp_path):
    lake = Lake(tmp_path / "lake")
    with pytest.raises(MissingPartitionError, match=r"'stores'.*2025-01-01"):
        lake.read_partition("stores", DAY)


def test_catalog_views_are_created_once_and_readable_read_only(tmp_path):
    lake = Lake(tmp_path / "lake")
    lake.publish(lake.stage(CALENDAR, _calendar_row(1.0), DAY))
    path = tmp_path / "warehouse.duckdb"
    assert catalog.ensure_views(path, lake, ["calendar", "stores"]) == ["calendar"]
    assert catalog.ensure_views(path, lake, ["calendar"]) == []
    with duckdb.connect(str(path), read_only=True) as conn:
        assert conn.execute("select day_name from grocery.calendar").fetchone() == ("Wednesday",)


def test_discarding_a_first_version_leaves_no_empty_partition_folder(tmp_path):
    lake = Lake(tmp_path / "lake")
    staged = lake.stage(CALENDAR, _calendar_row(1.0), DAY)
    lake.discard(staged)
    assert not lake.partition_dir("calendar", DAY).exists()
    assert lake.partition_dates("calendar") == []
    # a published partition keeps its folder when a later version is discarded
    lake.publish(lake.stage(CALENDAR, _calendar_row(1.0), DAY))
    lake.discard(lake.stage(CALENDAR, _calendar_row(2.0), DAY))
    assert lake.read_partition("calendar", DAY)["traffic_multiplier"][0] == 1.0


def test_a_file_written_part_by_part_gives_a_dictionary_only_to_columns_whose_values_repeat(tmp_path):
    import numpy as np
    import pyarrow.parquet as pq

    table = TABLES["store_inventory"]
    n = 4_000
    parts = [table.conform(pl.DataFrame({
        "store_product_id": np.arange(n) + start, "store_id": np.arange(n) // 1_000 + 1,
        "product_id": np.arange(n) % 100, "on_hand": np.arange(n) * 7 + start, "reorder_point": np.full(n, 5),
        "order_up_to": np.full(n, 20), "business_date": [DAY] * n,
    }).with_columns(_loaded_at=pl.lit(None, pl.Datetime("us")))) for start in (0, n)]
    lake = Lake(tmp_path / "lake")
    staging = lake.staging(table, DAY)
    for part in parts:
        staging.append(part)
    path = lake.publish(staging.close())
    metadata = pq.ParquetFile(path).metadata
    assert metadata.num_row_groups == 2
    dictionary = {metadata.row_group(0).column(i).path_in_schema
                  for i in range(metadata.num_columns) if metadata.row_group(0).column(i).has_dictionary_page}
    assert dictionary == {"store_id", "product_id", "reorder_point", "order_up_to", "business_date", "_loaded_at"}
    assert pl.read_parquet(path).equals(pl.concat(parts))


def test_conform_orders_and_casts_and_leaves_a_conformed_frame_as_it_is():
    from grocery_pipeline.simulation.calendar import generate_calendar

    raw = generate_calendar(DAY)
    shuffled = raw.select(list(reversed(raw.columns))).with_columns(pl.col("traffic_multiplier").cast(pl.Float32))
    conformed = CALENDAR.conform(shuffled)
    assert list(conformed.schema.items()) == list(CALENDAR.polars_schema.items())
    assert CALENDAR.conform(conformed) is conformed  # nothing to do: no plan built (thousands a window)
    with pytest.raises(ValueError, match="missing: \\['traffic_multiplier'\\]"):
        CALENDAR.conform(raw.drop("traffic_multiplier"))


def test_published_through_follows_the_folder_after_its_names_were_listed(tmp_path):
    """The listing of a table's folder is parsed once per set of names: a day published, staged only,
    replaced or removed after a listing shows in the next one."""
    lake = Lake(tmp_path / "lake")
    days = [DAY + timedelta(days=i) for i in range(3)]
    for day in days[:2]:
        lake.publish(lake.stage(CALENDAR, _calendar_row(1.0), day))
    assert lake.published_through("calendar", days[2])[0] == days[:2]
    assert lake.published_through("calendar", days[0])[0] == days[:1]
    staged = lake.stage(CALENDAR, _calendar_row(1.0), days[2])  # its folder, not yet its file
    assert lake.published_through("calendar", days[2])[0] == days[:2]
    assert lake.partition_dates("calendar") == days
    lake.publish(staged)
    listed, files, signatures = lake.published_through("calendar", days[2])
    assert listed == days and files[-1] == str(lake.partition_path("calendar", days[2]))
    lake.publish(lake.stage(CALENDAR, _calendar_row(2.0), days[1]))  # replaced: a new signature
    assert lake.published_through("calendar", days[2])[2][1] != signatures[1]
    shutil.rmtree(lake.partition_dir("calendar", days[0]))
    assert lake.published_through("calendar", days[2])[0] == days[1:]
    assert lake.partition_dates("calendar") == days[1:]
