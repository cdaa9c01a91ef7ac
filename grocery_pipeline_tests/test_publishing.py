"""Publishing a run's days: the next day generated while the previous one is written and audited,
and partitions read back from memory only while their file is the one this process wrote."""

import dataclasses
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterable
from datetime import date, datetime, timedelta

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from grocery_pipeline import checks as audits, memory
from grocery_pipeline.assets import factory
from grocery_pipeline.settings import load_settings
from grocery_pipeline.simulation import regions
from grocery_pipeline.simulation.calendar import generate_calendar
from grocery_pipeline.storage import lake as lake_module
from grocery_pipeline.storage.lake import Lake, MissingPartitionError
from grocery_pipeline.tables import TABLES

# The tiny 3-day window of the warehouse tests (its fixture runs once for this module too).
from grocery_pipeline_tests.test_warehouse import START, generated  # noqa: F401

CALENDAR = TABLES["calendar"]
KEYS = [(START + timedelta(days=i)).isoformat() for i in range(3)]


def _calendar(day: date) -> pl.DataFrame:
    return CALENDAR.conform(generate_calendar(day))


@pytest.mark.integration
def test_a_partition_served_from_memory_is_exactly_its_file(generated):
    data, _, _ = generated
    root = (data / "lake").resolve()
    remembered = {table: entry for (r, table), entry in lake_module._PUBLISHED.items() if r == root}
    assert set(remembered) == {t for t, table in TABLES.items() if table.read_back}  # the run's last of each
    for table, (path, _, frame) in remembered.items():
        assert_frame_equal(frame, pl.read_parquet(path), check_dtypes=True)  # schema and rows, in order


def test_a_partition_replaced_by_another_writer_is_read_from_its_file(tmp_path, monkeypatch):
    monkeypatch.setitem(TABLES, "calendar", dataclasses.replace(CALENDAR, read_back=True))
    lake = Lake(tmp_path / "lake")
    lake.publish(lake.stage(CALENDAR, _calendar(START), START))
    assert lake.read_partition("calendar", START) is lake_module._PUBLISHED[(lake.root, "calendar")][2]
    replaced = _calendar(START).with_columns(traffic_multiplier=pl.lit(7.0))
    path = lake.partition_path("calendar", START)
    replaced.write_parquet(str(path) + ".other")
    os.replace(str(path) + ".other", path)  # another process re-materialized the day
    assert lake.read_partition("calendar", START)["traffic_multiplier"].to_list() == [7.0]
    path.unlink()
    with pytest.raises(MissingPartitionError, match="calendar"):
        lake.read_partition("calendar", START)


def test_pending_frames_are_seen_only_by_their_lake_and_only_until_released(tmp_path):
    lake, other = Lake(tmp_path / "lake"), Lake(tmp_path / "lake")
    lake.hold_pending(START, {"calendar": _calendar(START)})
    assert lake.read_partition("calendar", START, columns=["date"]).columns == ["date"]
    with pytest.raises(MissingPartitionError):
        other.read_partition("calendar", START)
    lake.release_pending(START, ["calendar"])
    with pytest.raises(MissingPartitionError):
        lake.read_partition("calendar", START)


def _run(tmp_path, produce, overlap: bool):
    settings = load_settings(env={}, preset="tiny", data_dir=tmp_path / "data")
    lake = Lake(settings.lake_dir)
    return lake, list(factory.publish_partitions(settings, None, lake, KEYS, produce, overlap))


@pytest.mark.parametrize("overlap", [False, True])
def test_days_publish_in_order_and_the_next_day_reads_the_previous_one(tmp_path, overlap):
    seen = []

    def produce(day, lake):
        if not day.is_initial:  # yesterday: pending (overlap) or published, identical either way
            seen.append(lake.read_partition("calendar", day.business_date - timedelta(days=1)).height)
        return {"calendar": _calendar(day.business_date)}

    lake, published = _run(tmp_path, produce, overlap)
    assert [p.key for p in published] == KEYS and seen == [1, 1]
    assert all(p.outcomes and all(o.finding.passed for o in p.outcomes) for p in published)
    assert [lake.read_partition("calendar", START + timedelta(days=i)).height for i in range(3)] == [1, 1, 1]
    assert not lake._pending


@pytest.mark.parametrize("overlap,max_rows,generated_days", [(False, 10, 2), (True, 10, 3), (True, 0, 2)])
def test_a_rejected_day_publishes_neither_itself_nor_any_later_day(tmp_path, overlap, max_rows, generated_days):
    produced = []

    def produce(day, lake):
        produced.append(day.business_date)
        frame = _calendar(day.business_date)
        return {"calendar": pl.concat([frame, frame]) if day.business_date == START + timedelta(days=1) else frame}

    lake = None
    with pytest.raises(factory.PartitionRejected, match="2025-01-02") as rejected:
        settings = load_settings(env={}, preset="tiny", data_dir=tmp_path / "data", overlap_max_rows=max_rows)
        lake = Lake(settings.lake_dir)
        for _ in factory.publish_partitions(settings, None, lake, KEYS, produce, overlap):
            pass
    assert [o.audit.name for o in rejected.value.failed] == ["calendar_keys_unique"]
    assert lake.has_partition("calendar", START)
    assert not lake.has_partition("calendar", START + timedelta(days=1))
    assert not lake.has_partition("calendar", START + timedelta(days=2))
    assert not list((tmp_path / "data" / "lake").rglob("*.staging")) and not lake._pending
    # with overlap (a day within overlap_max_rows) the third day was generated while the second
    # was audited, then thrown away
    assert len(produced) == generated_days


@pytest.mark.parametrize("overlap", [False, True])
def test_parts_are_staged_as_made_and_a_failing_day_leaves_nothing(tmp_path, overlap):
    settings = load_settings(env={}, preset="tiny", data_dir=tmp_path / "data")
    lake = Lake(settings.lake_dir)
    staged_before_next_part = []

    def make_day(day: date, fail: bool):
        def make():
            yield None, {"calendar": _calendar(day)}
            # the first part's file is written while the next part is made: it appears, staged
            # (not published), before this generator goes on
            folder = lake.partition_dir("calendar", day)
            deadline = time.monotonic() + 10
            staged = False
            while not staged and time.monotonic() < deadline:
                staged = bool(list(folder.glob("*.staging")))
                time.sleep(0.01)
            staged_before_next_part.append(staged)
            if fail:
                raise RuntimeError("the day's second part could not be made")
        return make

    days = [(KEYS[0], START, make_day(START, fail=False)),
            (KEYS[1], START + timedelta(days=1), make_day(START + timedelta(days=1), fail=True))]
    with pytest.raises(RuntimeError, match="second part"):
        for _ in factory.publish_in_order(settings, lake, days, overlap):
            pass
    assert lake.has_partition("calendar", START)  # the first day was whole and sound
    assert not lake.has_partition("calendar", START + timedelta(days=1))
    assert not list((tmp_path / "data" / "lake").rglob("*.staging")) and not lake._pending
    assert staged_before_next_part == [True, True]


def test_tables_finished_early_are_staged_before_the_day_is_made_and_published_with_it(tmp_path):
    settings = load_settings(env={}, preset="tiny", data_dir=tmp_path / "data")
    lake = Lake(settings.lake_dir)
    staged_while_making = []

    def make():
        frame = _calendar(START)
        factory.finished_early()({"calendar": frame})
        deadline = time.monotonic() + 10
        while not list((tmp_path / "data" / "lake" / "calendar").rglob("*.staging")) and time.monotonic() < deadline:
            time.sleep(0.01)
        staged_while_making.append(bool(list((tmp_path / "data" / "lake" / "calendar").rglob("*.staging"))))
        return [(None, {"calendar": frame})]  # the early table again, with the rest of the day

    [published] = list(factory.publish_in_order(settings, lake, [(KEYS[0], START, make)], overlap=False))
    assert staged_while_making == [True]
    assert list(published.frames) == ["calendar"]
    assert_frame_equal(lake.read_partition("calendar", START), _calendar(START))
    assert not list((tmp_path / "data" / "lake").rglob("*.staging"))
    assert factory.finished_early() is None  # only while a day is made


def _listed(day: date, ids: list[int]) -> pl.DataFrame:
    return pl.DataFrame({"store_product_id": ids, "business_date": [day] * len(ids)})


def _write_listings(lake: Lake, listed: dict[date, list[int]]) -> list[str]:
    files = []
    for day, ids in listed.items():
        path = lake.partition_path("store_products", day)
        path.parent.mkdir(parents=True)
        _listed(day, ids).write_parquet(path)
        files.append(str(path))
    return files


def test_a_history_is_held_in_id_order_and_read_as_of_an_earlier_day_without_the_later_rows(tmp_path):
    """Store products are keyed by store and product, so a later day's listings go among the earlier
    ones: the history of the days read is held in id order (the world and the ticks' catalog need
    no sorted copy of their own), and as of an earlier day it holds that day's rows and no later."""
    lake = Lake(tmp_path / "lake")
    days = [START + timedelta(days=i) for i in range(3)]
    listed = {days[0]: [1_000_001, 1_000_005, 2_000_001], days[1]: [1_000_003, 3_000_002], days[2]: [2_000_004]}
    files = _write_listings(lake, listed)
    whole = lake_module.read_files_cached(lake, "store_products", files)
    assert whole["store_product_id"].to_list() == sorted(i for ids in listed.values() for i in ids)
    assert whole["store_product_id"].flags["SORTED_ASC"]
    assert lake_module.read_files_cached(lake, "store_products", files) is whole  # nothing read again
    earlier = lake_module.read_files_cached(lake, "store_products", files[:2])
    assert earlier["store_product_id"].to_list() == sorted(listed[days[0]] + listed[days[1]])
    assert earlier["business_date"].max() == days[1]
    assert lake_module.read_files_cached(lake, "store_products", files[:2]) is earlier  # one frame for the day


def test_a_history_asked_for_an_earlier_day_holds_that_day_alone_and_merges_later_days_back(tmp_path, monkeypatch):
    """A window's days before its last ask for the store products as of their own day while the history
    through the last day is held: the history becomes the day's rows, with the later rows set aside
    (no second history beside it), and a later day's rows go back in without reading a file again."""
    lake = Lake(tmp_path / "lake")
    days = [START + timedelta(days=i) for i in range(4)]
    listed = {days[0]: [1_000_001, 1_000_005, 2_000_001], days[1]: [1_000_002], days[2]: [2_000_002, 1_000_009],
              days[3]: [1_000_003]}
    files = _write_listings(lake, listed)
    whole = lake_module.read_files_cached(lake, "store_products", files[:3])
    key = (lake.root, "store_products")

    first = lake_module.read_files_cached(lake, "store_products", files[:1])
    assert first["store_product_id"].to_list() == sorted(listed[days[0]])
    held = lake_module._AS_OF_CACHE[key]
    assert held.frame is first and len(held.signatures) == 1  # one frame: the day's rows
    assert [f["store_product_id"].to_list() for _, f in held.ahead] == [[1_000_002], [1_000_009, 2_000_002]]

    def no_read(path):
        raise AssertionError(f"read again: {path}")

    read = lake_module._read_held
    monkeypatch.setattr(lake_module, "_read_held", no_read)
    second = lake_module.read_files_cached(lake, "store_products", files[:2])
    assert second["store_product_id"].to_list() == sorted(listed[days[0]] + listed[days[1]])
    assert second["store_product_id"].flags["SORTED_ASC"]
    assert len(lake_module._AS_OF_CACHE[key].ahead) == 1  # the third day's rows, still aside
    assert lake_module.read_files_cached(lake, "store_products", files[:3]).equals(whole)
    assert lake_module._AS_OF_CACHE[key].ahead == []

    monkeypatch.setattr(lake_module, "_read_held", read)  # a day never read: read once, merged in
    lake_module.read_files_cached(lake, "store_products", files[:1])
    through = lake_module.read_files_cached(lake, "store_products", files)
    assert through["store_product_id"].to_list() == sorted(i for ids in listed.values() for i in ids)
    assert through["business_date"].to_list() == [d for i, d in sorted((i, d) for d, ids in listed.items()
                                                                          for i in ids)]


def test_a_reader_of_an_earlier_day_filters_the_history_held_without_setting_it_back(tmp_path):
    """An audit of a window's day reads the store products while the next day's are held: it gets
    the day's rows, and the history stays through the next day (no merge to make again)."""
    lake = Lake(tmp_path / "lake")
    days = [START + timedelta(days=i) for i in range(2)]
    files = _write_listings(lake, {days[0]: [1_000_001, 2_000_001], days[1]: [1_000_002]})
    whole = lake_module.read_files_cached(lake, "store_products", files)
    first = lake_module.read_files_lazily(lake, "store_products", files[:1]).collect()
    assert first["store_product_id"].to_list() == [1_000_001, 2_000_001]
    assert lake_module.read_files_cached(lake, "store_products", files) is whole
    assert lake_module.read_files_lazily(lake, "store_products", files).collect().equals(whole)


def test_a_history_set_aside_is_read_again_when_its_file_was_replaced(tmp_path):
    lake = Lake(tmp_path / "lake")
    days = [START + timedelta(days=i) for i in range(2)]
    files = _write_listings(lake, {days[0]: [1_000_001, 2_000_001], days[1]: [1_000_002]})
    lake_module.read_files_cached(lake, "store_products", files)
    lake_module.read_files_cached(lake, "store_products", files[:1])
    _listed(days[1], [1_000_007, 2_000_009]).write_parquet(files[1])  # the day made again
    again = lake_module.read_files_cached(lake, "store_products", files)
    assert again["store_product_id"].to_list() == [1_000_001, 1_000_007, 2_000_001, 2_000_009]


def test_a_history_whose_ids_grow_day_by_day_is_its_files_one_after_another(tmp_path):
    lake = Lake(tmp_path / "lake")
    files = []
    for i, ids in enumerate([[1, 2], [3], [4, 5]]):
        day = START + timedelta(days=i)
        path = lake.partition_path("customers", day)
        path.parent.mkdir(parents=True)
        pl.DataFrame({"customer_id": ids, "business_date": [day] * len(ids)}).write_parquet(path)
        files.append(str(path))
    assert lake_module.read_files_cached(lake, "customers", files)["customer_id"].to_list() == [1, 2, 3, 4, 5]
    assert lake_module.read_files_cached(lake, "customers", files[:2])["customer_id"].to_list() == [1, 2, 3]


def test_a_history_leaves_out_the_columns_no_step_reads_back(tmp_path):
    """The customers' names and contact details (and every table's load time) stay in the files:
    a history held in memory has the columns the simulation and the audits read of it."""
    table = TABLES["customers"]
    sample = {pl.Int64: 7, pl.Float64: 1.5, pl.String: "x", pl.Date: START,
              pl.Datetime("us"): datetime(2025, 1, 2)}
    lake = Lake(tmp_path / "lake")
    path = lake.partition_path("customers", START)
    path.parent.mkdir(parents=True)
    pl.DataFrame({c.name: [sample[c.dtype]] for c in table.columns}, schema=table.polars_schema).write_parquet(path)
    held = lake_module.read_files_cached(lake, "customers", [str(path)])
    assert held.columns == [c.name for c in table.columns if c.held]
    assert not {"first_name", "email", "address", "loyalty_id", "_loaded_at"} & set(held.columns)
    read_back = {*regions.CUSTOMER_COLUMNS, "signup_date", "business_date"}  # the world and the audits
    assert read_back <= set(held.columns)
    assert lake.read_as_of("customers", START).columns == held.columns
    assert pl.read_parquet(path).columns == table.column_names  # the lake has them all


def test_a_file_staged_part_by_part_keeps_its_parts_for_the_next_day_unless_told_not_to(tmp_path, monkeypatch):
    table = dataclasses.replace(CALENDAR, read_back=True)
    monkeypatch.setitem(TABLES, "calendar", table)
    lake = Lake(tmp_path / "lake")
    kept, dropped = lake.staging(table, START), lake.staging(table, START + timedelta(days=1))
    for staging, read_back in ((kept, [True, True]), (dropped, [True, False])):
        for flag in read_back:
            staging.append(_calendar(START), read_back=flag)
    assert kept.close().frame.height == 2
    assert dropped.close().frame is None  # and neither is its first part held any longer


def test_a_day_audited_part_by_part_holds_a_bounded_number_of_parts_in_its_queues(tmp_path, monkeypatch):
    """The simulation of a big day's regions waits for the oldest part in the writer's and the
    auditor's queues once IN_FLIGHT_PARTS are there, so a faster simulation does not pile up
    regions in memory."""
    settings = dataclasses.replace(load_settings(env={}, preset="tiny", data_dir=tmp_path / "data"),
                                   overlap_max_rows=0)
    audited: list[int] = []

    def slow_audit(self, frames):
        time.sleep(0.2)
        audited.append(frames["calendar"]["date"][0].day)
        return {}

    monkeypatch.setattr(factory.DayWriter, "_audit_part", slow_audit)
    writer = factory.DayWriter(settings, Lake(settings.lake_dir), START)
    audited_when_added = []
    parts = factory.IN_FLIGHT_PARTS + 3
    try:
        for i in range(parts):
            writer.add(None, {"calendar": _calendar(START + timedelta(days=i))}, self_contained=True)
            audited_when_added.append(len(audited))
    finally:
        writer.discard()
    # the part added waited for all but the IN_FLIGHT_PARTS - 1 before it
    assert audited_when_added == [max(0, i - factory.IN_FLIGHT_PARTS + 1) for i in range(parts)]
    assert audited == list(range(1, parts + 1))


def test_freed_memory_is_given_back_through_glibc_where_there_is_one(monkeypatch):
    memory.give_back()  # does nothing, and does not fail, on another C library
    memory.arrays_from_the_heap()
    chosen = memory._chosen_by_user()
    assert (memory._TRIM is not None) == (platform.libc_ver()[0] == "glibc" and not chosen)
    for name in memory.GLIBC_ALLOCATOR_VARIABLES:
        monkeypatch.setenv(name, "1")
        assert memory._chosen_by_user()  # the user's settings are left alone
        monkeypatch.delenv(name)
    monkeypatch.setenv("MALLOC_REPORT", "1")  # not one of glibc's variables
    assert memory._chosen_by_user() == chosen


def _fresh_python(code: str, env: dict[str, str], unset: Iterable[str]) -> subprocess.CompletedProcess:
    """`code` run by a fresh interpreter, in this environment without the variables `unset`, plus `env`."""
    base = {k: v for k, v in os.environ.items() if k not in set(unset)}
    return subprocess.run([sys.executable, "-c", code], env=base | env, capture_output=True, text=True, check=True)


_ARENA_PROBE = """
import ctypes, ctypes.util, threading
import grocery_pipeline
held, together = [], threading.Barrier(5)
def work():
    held.append([bytearray(64 * 1024) for _ in range(4)])  # glibc's heap, not Python's small-object pool
    together.wait()  # every thread alive at once, each holding its blocks
    together.wait()
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads:
    thread.start()
together.wait()
ctypes.CDLL(ctypes.util.find_library("c")).malloc_stats()  # one "Arena N:" block per heap, on stderr
together.wait()
"""


def test_every_thread_takes_memory_from_one_heap_unless_the_user_tuned_glibc():
    """Four threads holding blocks at once share glibc's one heap once the package is imported; a
    process started with glibc's allocator tuned keeps glibc's own choice (a heap per thread)."""
    if platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc's heaps: another C library is left as it is")

    def heaps(env: dict[str, str]) -> int:
        run = _fresh_python(_ARENA_PROBE, env, unset=memory.GLIBC_ALLOCATOR_VARIABLES)
        return sum(line.startswith("Arena ") for line in run.stderr.splitlines())

    assert heaps({}) == 1
    assert heaps({"GLIBC_TUNABLES": "glibc.malloc.check=0"}) > 1  # glibc's own: a heap per thread (5 here)


def _allocator_settings(env: dict[str, str], first: str) -> str:
    """The allocator settings polars composed in a fresh process that imports `first` first."""
    code = (f"import os, {first}, grocery_pipeline, polars; "
            f"print(os.environ.get({memory.POLARS_ALLOCATOR_VARIABLE!r}, ''))")
    return _fresh_python(code, env, unset=[memory.POLARS_ALLOCATOR_VARIABLE]).stdout.strip()


def test_polars_gives_freed_pages_back_sooner_unless_the_user_set_its_allocator():
    """polars reads its allocator's settings from the environment when it is first imported, and the
    last setting of a name wins: importing the package first puts muzzy_decay_ms:0 last; a user's
    own settings, or polars imported before the package, are left alone."""
    ours = _allocator_settings({}, "sys")
    assert ours.split(",")[-1] == memory.POLARS_ALLOCATOR_SETTINGS and "muzzy_decay_ms:1000" in ours
    assert memory.POLARS_ALLOCATOR_SETTINGS not in _allocator_settings({}, "polars")
    users = _allocator_settings({memory.POLARS_ALLOCATOR_VARIABLE: "dirty_decay_ms:2000"}, "sys")
    assert users.split(",")[-1] == "dirty_decay_ms:2000" and memory.POLARS_ALLOCATOR_SETTINGS not in users


def _arrow_pool(env: dict[str, str], first: str) -> str:
    """The memory pool that holds a table pyarrow read, in a fresh process that imports `first` first."""
    code = (f"import io, os, {first}, grocery_pipeline, pyarrow as pa, pyarrow.parquet as pq; "
            "sink = io.BytesIO(); pq.write_table(pa.table({'a': list(range(100_000))}), sink); "
            "held = pq.read_table(io.BytesIO(sink.getvalue())); pool = pa.default_memory_pool(); "
            "print(pool.backend_name if pool.bytes_allocated() >= held.nbytes else 'elsewhere', flush=True); "
            # pyarrow's threads sometimes abort the interpreter's exit (apache/arrow#34314), pool or not
            "os._exit(0)")
    return _fresh_python(code, env, unset=[memory.ARROW_POOL_VARIABLE]).stdout.strip()


def test_pyarrow_takes_its_buffers_from_the_c_heap_unless_the_user_chose_its_pool():
    """Importing the package has pyarrow allocate from the C library's allocator, whether pyarrow
    was imported before it or after; a pool the user named in the environment stands."""
    assert _arrow_pool({}, "sys") == memory.ARROW_POOL
    assert _arrow_pool({}, "pyarrow") == memory.ARROW_POOL
    assert _arrow_pool({memory.ARROW_POOL_VARIABLE: "jemalloc"}, "sys") == "jemalloc"


@pytest.mark.integration
def test_a_published_partition_audited_part_by_part_finds_what_its_whole_audit_finds(generated, tmp_path):
    """The daily price_snapshots asset audits the day's snapshot again as read part by part (row
    groups): every audit finds what it finds on the whole partition, on sound and on broken rows."""
    data, _, _ = generated
    settings = dataclasses.replace(load_settings(env={}, preset="tiny", data_dir=data), region_store_products=50)
    day = START + timedelta(days=2)
    sound = Lake(settings.lake_dir).read_partition("price_snapshots", day)
    broken = pl.concat([sound.with_columns(price=pl.when(pl.int_range(pl.len()) == 7).then(None)
                                           .otherwise(pl.col("price"))), sound.head(3)])  # a null, 3 twice
    for frame in (sound, broken):
        copy = tmp_path / ("broken" if frame is broken else "sound")
        shutil.copytree(data / "lake", copy)
        lake = Lake(copy)
        frame.write_parquet(lake.partition_path("price_snapshots", day), row_group_size=40)
        by_parts, rows = factory.audit_published(settings, lake, day, "price_snapshots")
        whole = factory.run_audits(["price_snapshots"],
                                   audits.AuditContext(settings, lake, day, {"price_snapshots": frame}))
        assert rows == frame.height
        assert [(o.audit.name, o.finding.offending) for o in by_parts] == \
               [(o.audit.name, o.finding.offending) for o in whole]
    offending = {o.audit.name: o.finding.offending for o in by_parts}
    assert offending["price_snapshots_keys_unique"] >= 3 and offending["price_snapshots_required_columns"] == 1


def test_the_snapshot_checks_the_ticks_recorded_are_reported_for_that_very_file_only(generated, tmp_path,
                                                                                     monkeypatch):
    """The price ticks audit a day's snapshot before publishing it and record the outcomes beside the
    file; the daily price_snapshots asset reports them without reading the file again, unless the
    file is another since (or the audits are), and then audits it again."""
    data, _, _ = generated
    copy = tmp_path / "lake"
    shutil.copytree(data / "lake", copy, copy_function=shutil.copy2)
    settings = load_settings(env={}, preset="tiny", data_dir=data)
    day = START + timedelta(days=2)
    recorded_lake = Lake(data / "lake")
    recorded, rows = factory.recorded_outcomes(recorded_lake, "price_snapshots", day)
    frame = recorded_lake.read_partition("price_snapshots", day)
    whole = factory.run_audits(["price_snapshots"],
                               audits.AuditContext(settings, recorded_lake, day, {"price_snapshots": frame}))
    assert rows == frame.height
    assert [(o.audit.name, o.finding) for o in recorded] == [(o.audit.name, o.finding) for o in whole]

    reads, read_in_parts = [], Lake.read_in_parts
    monkeypatch.setattr(Lake, "read_in_parts", lambda self, *args: reads.append(args) or read_in_parts(self, *args))
    assert factory.audit_published(settings, recorded_lake, day, "price_snapshots")[1] == frame.height
    assert reads == []  # reported from the record

    lake = Lake(copy)  # the same bytes, another file: audited again
    assert factory.recorded_outcomes(lake, "price_snapshots", day) is None
    again, rows = factory.audit_published(settings, lake, day, "price_snapshots")
    assert len(reads) == 1 and rows == frame.height
    assert [(o.audit.name, o.finding.offending) for o in again] == [(o.audit.name, o.finding.offending) for o in whole]
    monkeypatch.setattr(audits, "audits_for", lambda table: [])  # other audits than recorded
    assert factory.recorded_outcomes(recorded_lake, "price_snapshots", day) is None
