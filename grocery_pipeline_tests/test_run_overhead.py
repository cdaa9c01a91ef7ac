"""What a run records and reopens beyond the data: per-partition check results and planned
partitions only where someone can read them, and the catalog opened only when its views change."""

from __future__ import annotations

import pytest

from grocery_pipeline import checks
from grocery_pipeline.storage import catalog
from grocery_pipeline.storage.lake import Lake

RANGE = {"dagster/asset_partition_range_start": "2025-01-01",
         "dagster/asset_partition_range_end": "2025-01-03"}


def _materialize_range(assets, instance, data_dir):
    """The three days of RANGE as one run of `assets` on `instance`, tiny preset, lake in `data_dir`."""
    import dagster as dg

    from grocery_pipeline.resources import GrocerySettings

    return dg.materialize(assets, instance=instance, tags=RANGE,
                          resources={"grocery": GrocerySettings(preset="tiny", data_dir=str(data_dir))})


@pytest.mark.integration
def test_a_range_run_on_an_ephemeral_instance_records_only_the_gate(tmp_path):
    import dagster as dg

    from grocery_pipeline.assets.dimensions import calendar_asset

    result = _materialize_range([calendar_asset], dg.DagsterInstance.ephemeral(), tmp_path)
    evaluations = result.get_asset_check_evaluations()
    assert result.success
    assert all(e.partition is None for e in evaluations)
    assert sorted(e.check_name for e in evaluations) == sorted(a.name for a in checks.audits_for("calendar"))
    assert all(e.metadata["partitions_audited"].value == 3 for e in evaluations)


@pytest.mark.integration
@pytest.mark.parametrize("persistent", [False, True])
def test_an_ephemeral_instance_plans_a_range_run_as_one_event_per_asset(tmp_path, monkeypatch, persistent):
    """On an ephemeral instance a window's run announces each asset's partitions as one range; a
    persistent one keeps one event per partition (its UI marks a failed run's partitions by them),
    and the process's environment is as it was after the run."""
    import os

    import dagster as dg

    from grocery_pipeline import runner
    from grocery_pipeline.assets.dimensions import calendar_asset

    monkeypatch.delenv(runner.PLANNED_AS_RANGE, raising=False)
    (tmp_path / "dagster_home").mkdir()
    instance = (dg.DagsterInstance.local_temp(str(tmp_path / "dagster_home")) if persistent
                else dg.DagsterInstance.ephemeral())
    with runner.planned_as_ranges(instance):
        result = _materialize_range([calendar_asset], instance, tmp_path)
    assert result.success
    assert runner.PLANNED_AS_RANGE not in os.environ
    planned = instance.get_event_records(dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED), limit=100)
    assert len(planned) == (3 if persistent else 1)
    materialized = instance.get_event_records(dg.EventRecordsFilter(
        event_type=dg.DagsterEventType.ASSET_MATERIALIZATION), limit=100)
    assert sorted(r.partition_key for r in materialized) == ["2025-01-01", "2025-01-02", "2025-01-03"]


@pytest.mark.integration
def test_each_partition_of_a_range_run_carries_its_own_rows_and_preview(tmp_path):
    """A range run's materializations: each day's row count and first rows are that day's (what a
    MaterializeResult carries goes on every partition), the run's settings and path on each."""
    from datetime import date

    import dagster as dg
    from dagster._core.execution.context.metadata_logging import OutputMetadataAccumulator

    from grocery_pipeline.assets.dimensions import DIMENSION_ASSETS
    from grocery_pipeline.assets.factory import asset_key

    calls = []
    add_one = OutputMetadataAccumulator.with_additional_asset_metadata

    def counted(self, *args, **kwargs):
        calls.append(kwargs.get("partition_key"))
        return add_one(self, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(OutputMetadataAccumulator, "with_additional_asset_metadata", counted)
        result = _materialize_range(DIMENSION_ASSETS, dg.DagsterInstance.ephemeral(), tmp_path)
    assert result.success
    # handed over at once: Dagster's call per partition copies all the metadata recorded before it
    assert calls == []
    lake = Lake(tmp_path / "lake")
    events = [e for e in result.get_asset_materialization_events() if e.asset_key == asset_key("customers")]
    assert sorted(e.partition for e in events) == ["2025-01-01", "2025-01-02", "2025-01-03"]
    counts = []
    for event in events:
        metadata = event.materialization.metadata
        day = lake.read_partition("customers", date.fromisoformat(event.partition))
        assert metadata["dagster/row_count"].value == day.height
        if day.height:
            assert str(day["customer_id"][0]) in metadata["preview"].value
        assert metadata["partitions"].value == 3 and "settings" in metadata and "path" in metadata
        counts.append(day.height)
    assert len(set(counts)) > 1  # the initial population, then the days' sign-ups


@pytest.mark.integration
@pytest.mark.parametrize("level", ["WARNING", "INFO"])
def test_a_windows_ephemeral_instance_keeps_the_run_logs_the_console_shows(tmp_path, monkeypatch, level):
    """The runner's ephemeral instance stores the log lines at the console's level and above (the
    per-day "published" lines are INFO), and every Dagster event whatever the level."""
    import dagster as dg

    from grocery_pipeline.assets.dimensions import calendar_asset
    from grocery_pipeline.instance import window_instance

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    instance = window_instance(level)
    result = _materialize_range([calendar_asset], instance, tmp_path)
    assert result.success and instance.is_ephemeral
    entries = instance.all_logs(result.run_id)
    published = [e for e in entries if e.dagster_event is None and "published" in e.user_message]
    assert len(published) == (3 if level == "INFO" else 0)
    assert len([e for e in entries if e.dagster_event_type == dg.DagsterEventType.ASSET_MATERIALIZATION]) == 3
    assert len(result.get_asset_check_evaluations()) == len(checks.audits_for("calendar"))


def _stored(instance) -> dict[str, object]:
    """What an instance's event log holds, without ids and times: events by type and asset, the
    assets' last materialized partitions (each asset's record checked against the event it names),
    and the check executions with their events."""
    import collections

    import sqlalchemy as db
    from dagster._core.event_api import EventLogRecord
    from dagster._core.storage.event_log.schema import (AssetCheckExecutionsTable, AssetKeyTable,
                                                        SqlEventLogStorageTable)
    from dagster_shared.serdes import deserialize_value

    storage = instance.event_log_storage
    with storage.index_connection() as conn:
        rows = conn.execute(db.select(SqlEventLogStorageTable)).all()
        events = collections.Counter((row.dagster_event_type, row.asset_key, row.partition) for row in rows)
        stored_events = {row.id: row.event for row in rows}
        assets = []
        for row in conn.execute(db.select(AssetKeyTable)).all():
            if row.last_materialization:
                last = deserialize_value(row.last_materialization)
                # the record of the very event stored last for the asset, by its storage id
                assert last == EventLogRecord(storage_id=last.storage_id,
                                              event_log_entry=deserialize_value(stored_events[last.storage_id]))
                assets.append((row.asset_key, last.partition_key, row.last_run_id == last.run_id,
                               row.last_materialization_timestamp is not None))
        assets.sort()
        executions = sorted(
            (row.asset_key, row.check_name, str(row.partition), row.execution_status,
             deserialize_value(row.evaluation_event).dagster_event.event_type_value)
            for row in conn.execute(db.select(AssetCheckExecutionsTable)).all())
    return {"events": events, "assets": assets, "executions": executions}


@pytest.mark.integration
@pytest.mark.parametrize("in_thread", [False, True])
def test_a_windows_event_log_stores_what_dagsters_in_memory_one_does(tmp_path, monkeypatch, in_thread):
    """`WindowEventLogStorage` stores the rows Dagster's own in-memory storage stores for the same
    range run (planned checks per partition among them), serializing each planned check once, also
    when the run is made by a thread other than the one that made the instance (SQLite lets a
    connection be used only by the thread that opened it)."""
    from concurrent.futures import ThreadPoolExecutor

    import dagster as dg

    from grocery_pipeline import instance as window
    from grocery_pipeline.assets.dimensions import DIMENSION_ASSETS

    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    serialized = []
    real = window.serialize_value
    monkeypatch.setattr(window, "serialize_value", lambda v: serialized.append(v) or real(v))
    stored = {}
    for name, instance in (("dagster", dg.DagsterInstance.ephemeral()), ("window", window.window_instance("INFO"))):
        def run(instance=instance, name=name):
            return _materialize_range(DIMENSION_ASSETS, instance, tmp_path / name)
        if in_thread:
            with ThreadPoolExecutor(1) as pool:
                result = pool.submit(run).result()
        else:
            result = run()
        assert result.success
        stored[name] = _stored(instance)
    assert isinstance(instance.event_log_storage, window.WindowEventLogStorage)
    assert stored["window"] == stored["dagster"]
    planned = [e for e in stored["window"]["executions"] if e[4] == "ASSET_CHECK_EVALUATION_PLANNED"]
    assert len(planned) == 3 * len(serialized) > 0  # three days per check, one serialization per check


def test_a_planned_events_setting_the_user_made_stands(monkeypatch):
    import os

    import dagster as dg

    from grocery_pipeline import runner

    monkeypatch.setenv(runner.PLANNED_AS_RANGE, "false")
    with runner.planned_as_ranges(dg.DagsterInstance.ephemeral()):
        assert os.environ[runner.PLANNED_AS_RANGE] == "false"
    assert os.environ[runner.PLANNED_AS_RANGE] == "false"


def _publish_calendar(lake: Lake) -> None:
    from datetime import date

    from grocery_pipeline.assets.factory import write_audit_publish
    from grocery_pipeline.settings import load_settings
    from grocery_pipeline.simulation.calendar import generate_calendar

    settings = load_settings(env={}, preset="tiny", data_dir=lake.root.parent)
    day = date(2025, 1, 1)
    write_audit_publish(settings, lake, day, {"calendar": generate_calendar(day)})


def test_the_catalog_is_opened_again_only_when_its_file_changed(tmp_path, monkeypatch):
    lake = Lake(tmp_path / "lake")
    _publish_calendar(lake)
    path = tmp_path / "warehouse.duckdb"
    assert catalog.ensure_views(path, lake, ["calendar"]) == ["calendar"]

    def refuse(*args, **kwargs):
        raise AssertionError("the catalog was opened although its views are known")

    with monkeypatch.context() as m:
        m.setattr(catalog, "connect_with_retry", refuse)
        assert catalog.ensure_views(path, lake, ["calendar"]) == []

    path.unlink()  # a new catalog file: what this process knew of the old one no longer holds
    assert catalog.ensure_views(path, lake, ["calendar"]) == ["calendar"]
    assert catalog.query_catalog(path, 'SELECT count(*) AS n FROM grocery."calendar"')["n"][0] == 1


@pytest.mark.integration
def test_the_days_world_is_built_once_even_when_later_days_were_read(tmp_path):
    """A range run publishes every dimension day before the facts read them, so the as-of reader is
    ahead of the day asked for; the simulation and the audits of that day still share one world
    (and through it one price book)."""
    from datetime import date

    import dagster as dg

    from grocery_pipeline.assets.dimensions import DIMENSION_ASSETS
    from grocery_pipeline.storage import world as worlds
    from grocery_pipeline.storage.lake import Lake as LakeOf

    result = _materialize_range(DIMENSION_ASSETS, dg.DagsterInstance.ephemeral(), tmp_path)
    assert result.success
    lake = LakeOf(tmp_path / "lake")
    worlds.load_world(lake, date(2025, 1, 3))  # the as-of reader now holds all three days
    first = worlds.load_world(lake, date(2025, 1, 2))
    assert worlds.load_world(lake, date(2025, 1, 2)) is first
    assert first.business_date == date(2025, 1, 2)


def test_partition_metadata_is_only_for_the_runs_assets_and_partitions():
    """What Dagster's `add_asset_metadata` refuses, `PartitionMetadata.add` refuses, naming it."""
    from types import SimpleNamespace

    from grocery_pipeline.assets.factory import PartitionMetadata, asset_key

    context = SimpleNamespace(assets_def=SimpleNamespace(keys={asset_key("customers")}),
                              partition_keys=["2025-01-01", "2025-01-02"])  # what `add` reads of a run's context
    metadata = PartitionMetadata(context)
    metadata.add("customers", "2025-01-02", 5, "| customer_id |")
    with pytest.raises(ValueError, match="customers partition 2025-01-03"):
        metadata.add("customers", "2025-01-03", 5)
    with pytest.raises(ValueError, match="stores partition 2025-01-01"):
        metadata.add("stores", "2025-01-01", 5)
