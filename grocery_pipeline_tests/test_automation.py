"""The nightly schedule, tested through Dagster's schedule context: which partition, which job,
which run key, and how its time and default status are configured."""

from __future__ import annotations

import warnings
from datetime import date, datetime, timezone

import dagster as dg
import pytest

from grocery_pipeline import automation
from grocery_pipeline.definitions import defs
from grocery_pipeline.partitions import LOAD_SETTINGS
from grocery_pipeline.settings import SettingsError
from grocery_pipeline.tables import TABLES

warnings.filterwarnings("ignore", message=".*get_schedule_def.*")


def _tick(schedule: dg.ScheduleDefinition, at: datetime):
    with dg.instance_for_test() as instance:
        return schedule.evaluate_tick(dg.build_schedule_context(instance=instance, scheduled_execution_time=at))


def _resolved(schedule) -> dg.ScheduleDefinition:
    alongside = dg.Definitions(assets=defs.assets, jobs=[automation.daily_job], schedules=[schedule],
                               resources=defs.resources)
    return alongside.get_schedule_def(schedule.name)


def test_nightly_schedule_requests_yesterdays_partition_of_the_daily_graph():
    schedule = defs.get_schedule_def("nightly_daily_graph")
    assert schedule.cron_schedule == "0 1 * * *" and schedule.execution_timezone == "UTC"
    result = _tick(schedule, datetime(2025, 1, 5, 1, 0, tzinfo=timezone.utc))
    [request] = result.run_requests
    assert request.partition_key == "2025-01-04"
    assert request.run_key == "2025-01-04"  # a retried tick never runs the same day twice
    assert request.job_name == "daily_graph"


def test_nightly_schedule_runs_nothing_before_the_first_business_date():
    schedule = defs.get_schedule_def("nightly_daily_graph")
    before = datetime.combine(LOAD_SETTINGS.start_date, datetime.min.time(), timezone.utc).replace(hour=1)
    result = _tick(schedule, before)
    assert result.run_requests == [] and "no partitions" in result.skip_message


def test_nightly_schedule_is_stopped_until_switched_on():
    assert defs.get_schedule_def("nightly_daily_graph").default_status == dg.DefaultScheduleStatus.STOPPED


def test_nightly_time_and_status_come_from_the_environment():
    schedule = _resolved(automation.build_nightly_schedule(
        {"GROCERY_NIGHTLY_AT": "03:30", "GROCERY_NIGHTLY_STATUS": "running"}))
    assert schedule.cron_schedule == "30 3 * * *"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    [request] = _tick(schedule, datetime(2025, 2, 1, 3, 30, tzinfo=timezone.utc)).run_requests
    assert request.partition_key == "2025-01-31"


@pytest.mark.parametrize("env, named", [
    ({"GROCERY_NIGHTLY_AT": "25:00"}, "GROCERY_NIGHTLY_AT"),
    ({"GROCERY_NIGHTLY_AT": "one am"}, "GROCERY_NIGHTLY_AT"),
    ({"GROCERY_NIGHTLY_STATUS": "paused"}, "GROCERY_NIGHTLY_STATUS"),
])
def test_bad_nightly_configuration_fails_naming_the_variable(env, named):
    with pytest.raises(SettingsError, match=named):
        automation.build_nightly_schedule(env)


def test_daily_graph_covers_every_daily_table_and_no_price_ticks():
    job = defs.get_job_def("daily_graph")
    selected = {key.path[1] for key in job.asset_layer.selected_asset_keys if key.path[0] == "grocery"}
    assert selected == {name for name, table in TABLES.items() if table.partitioning == "daily"}
    assert "price_updates" not in selected and "price_snapshots" in selected
    assert date.fromisoformat(job.partitions_def.get_first_partition_key()) == LOAD_SETTINGS.start_date


def test_price_ticks_have_their_own_sensor_stopped_until_switched_on():
    sensor = defs.get_sensor_def("price_tick_sensor")
    assert sensor.default_status == dg.DefaultSensorStatus.STOPPED
    assert {k.path[1] for k in sensor.asset_selection.resolve(defs.resolve_asset_graph())} == {"price_updates"}
