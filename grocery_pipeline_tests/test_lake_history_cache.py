"""Reading a table "as of" a date reads each partition once per process (a backfill's per-day cost
stays flat), yet always returns exactly what a fresh read of the published files would, but their
load time (`_loaded_at`), which no reader of a history wants."""

from datetime import date, timedelta

import polars as pl

from grocery_pipeline.simulation.calendar import generate_calendar
from grocery_pipeline.storage.lake import Lake
from grocery_pipeline.storage.world import read_as_of_cached
from grocery_pipeline.tables import TABLES

CALENDAR = TABLES["calendar"]
START = date(2025, 1, 1)


def _publish(lake: Lake, day: date, multiplier: float | None = None) -> None:
    frame = generate_calendar(day)
    if multiplier is not None:
        frame = frame.with_columns(traffic_multiplier=pl.lit(multiplier))
    lake.publish(lake.stage(CALENDAR, CALENDAR.conform(frame), day))


def _fresh(lake: Lake, through: date) -> pl.DataFrame:
    files = [lake.partition_path("calendar", d) for d in lake.partition_dates("calendar") if d <= through]
    return pl.read_parquet(files).drop("_loaded_at")


def test_days_published_later_are_added_to_what_was_read(tmp_path):
    lake = Lake(tmp_path / "lake")
    for i in range(3):
        _publish(lake, START + timedelta(days=i))
    assert lake.read_as_of("calendar", START + timedelta(days=2)).equals(_fresh(lake, START + timedelta(days=2)))
    for i in range(3, 6):
        _publish(lake, START + timedelta(days=i))
        through = START + timedelta(days=i)
        assert lake.read_as_of("calendar", through).equals(_fresh(lake, through))
        assert read_as_of_cached(lake, "calendar", through).equals(_fresh(lake, through))


def test_an_earlier_date_after_a_later_one_returns_only_the_earlier_rows(tmp_path):
    lake = Lake(tmp_path / "lake")
    for i in range(5):
        _publish(lake, START + timedelta(days=i))
    assert lake.read_as_of("calendar", START + timedelta(days=4)).height == 5
    earlier = lake.read_as_of("calendar", START + timedelta(days=1), ["date"])
    assert earlier["date"].to_list() == [START, START + timedelta(days=1)]
    assert read_as_of_cached(lake, "calendar", START + timedelta(days=2)).equals(_fresh(lake, START + timedelta(days=2)))


def test_a_rematerialized_partition_is_read_again(tmp_path):
    lake = Lake(tmp_path / "lake")
    for i in range(3):
        _publish(lake, START + timedelta(days=i), multiplier=1.0)
    last = START + timedelta(days=2)
    assert lake.read_as_of("calendar", last)["traffic_multiplier"].to_list() == [1.0, 1.0, 1.0]
    _publish(lake, START + timedelta(days=1), multiplier=7.0)
    assert lake.read_as_of("calendar", last)["traffic_multiplier"].to_list() == [1.0, 7.0, 1.0]
    assert read_as_of_cached(lake, "calendar", last)["traffic_multiplier"].to_list() == [1.0, 7.0, 1.0]


def test_two_lakes_do_not_share_rows(tmp_path):
    first, second = Lake(tmp_path / "a"), Lake(tmp_path / "b")
    _publish(first, START, multiplier=1.0)
    _publish(second, START, multiplier=2.0)
    assert first.read_as_of("calendar", START)["traffic_multiplier"].to_list() == [1.0]
    assert second.read_as_of("calendar", START)["traffic_multiplier"].to_list() == [2.0]


def test_nothing_published_since_gives_the_very_same_frame(tmp_path):
    """load_world reuses the day's world while its dimension frames are the same objects."""
    lake = Lake(tmp_path / "lake")
    for i in range(2):
        _publish(lake, START + timedelta(days=i))
    last = START + timedelta(days=1)
    first_read = read_as_of_cached(lake, "calendar", last)
    assert read_as_of_cached(lake, "calendar", last) is first_read
    _publish(lake, last, multiplier=3.0)
    assert read_as_of_cached(lake, "calendar", last) is not first_read


def test_every_dimension_is_held_as_polars_reads_its_file(tmp_path, dictionaries):
    """The history reads its files with pyarrow (off polars' busy pool): the same columns, types
    and values as polars' own read of each generated dimension's first day, but the columns no
    step reads back."""
    import grocery_pipeline.definitions  # noqa: F401  (registers the generators)
    from grocery_pipeline.assets import factory
    from grocery_pipeline.settings import load_settings
    from grocery_pipeline.simulation.context import Day
    from grocery_pipeline.storage.world import DIMENSIONS

    settings = load_settings(env={}, preset="tiny", data_dir=tmp_path)
    lake = Lake(settings.lake_dir)
    for name in ("calendar", "distribution_centers", "products", "stores", "trucks", "promotions",
                 "customers", "drivers", "store_products"):  # parents first
        frames = factory.GENERATORS[name].produce(Day(settings, dictionaries, START), lake)
        factory.write_audit_publish_ticks(settings, lake, START, [(None, frames)])
    for table in DIMENSIONS:
        held = lake.read_as_of(table, START)
        read = pl.read_parquet(lake.partition_path(table, START)).drop(TABLES[table].not_held)
        assert held.height > 0, table
        assert held.schema == read.schema and held.equals(read), table
