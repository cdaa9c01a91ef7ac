"""A run killed with SIGKILL in the middle of writing a partition leaves the warehouse readable with
the previous state, and re-running completes it exactly as a sequential generation would."""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from grocery_pipeline.storage import catalog
from grocery_pipeline.storage.lake import (
    PAUSE_BEFORE_PUBLISH_ENV, Lake, MissingPartitionError, remove_abandoned_staging)
from grocery_pipeline.tables import TABLES
from grocery_pipeline_tests.test_deploy_support import (
    assert_same_partitions, generate_reference, published_files, start_generation, stop_process)

START = date(2025, 1, 1)
DAYS = 3
END = START + timedelta(days=DAYS - 1)
KILLED_DAY = START + timedelta(days=1)  # already published once: its previous version must survive

def _digests(lake_root: Path) -> dict[str, str]:
    return {name: hashlib.sha256(path.read_bytes()).hexdigest() for name, path in published_files(lake_root).items()}


def _view_counts(warehouse: Path) -> dict[str, int]:
    with duckdb.connect(str(warehouse), read_only=True) as conn:
        views = [r[0] for r in conn.execute(
            "select view_name from duckdb_views() where schema_name = 'grocery'").fetchall()]
        return {v: conn.execute(f'select count(*) from grocery."{v}"').fetchone()[0] for v in views}


def _staged_files(lake_root: Path) -> list[Path]:
    return sorted(lake_root.rglob(".*.staging"))


@pytest.mark.integration
def test_run_killed_mid_write_keeps_the_previous_state_and_a_rerun_completes_it(tmp_path, monkeypatch):
    monkeypatch.setenv("GROCERY_PRESET", "tiny")
    monkeypatch.delenv("GROCERY_FAULTS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    reference = tmp_path / "reference"
    generate_reference(reference, START, END, monkeypatch)

    # The warehouse before the crash: the first two days published and catalogued.
    data = tmp_path / "data"
    for name in published_files(reference / "lake"):
        if f"date={END.isoformat()}" not in name:
            (data / "lake" / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(reference / "lake" / name, data / "lake" / name)
    catalog.ensure_views(data / "warehouse.duckdb", Lake(data / "lake"), list(TABLES))
    before, counts_before = _digests(data / "lake"), _view_counts(data / "warehouse.duckdb")
    assert counts_before and any(f"date={KILLED_DAY}" in name for name in before)

    # Re-run days 2-3; the writer stops between staging and publishing day 2, and is killed there.
    run = start_generation(data, KILLED_DAY, END, tmp_path / "killed.log", **{PAUSE_BEFORE_PUBLISH_ENV: KILLED_DAY.isoformat()})
    deadline = time.monotonic() + 180
    while not _staged_files(data / "lake"):
        assert run.poll() is None, (tmp_path / "killed.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "the run never staged a file"
        time.sleep(0.05)
    stop_process(run, signal.SIGKILL)
    assert run.returncode == -signal.SIGKILL

    left_behind = _staged_files(data / "lake")
    assert left_behind, "the kill did not happen mid-write"
    assert _digests(data / "lake") == before  # every published file is the previous version, byte for byte
    assert not any(f"date={END}" in name for name in published_files(data / "lake"))  # nothing of day 3
    assert _view_counts(data / "warehouse.duckdb") == counts_before  # readable; staged files invisible

    rerun = start_generation(data, KILLED_DAY, END, tmp_path / "rerun.log")
    assert rerun.wait(timeout=300) == 0, (tmp_path / "rerun.log").read_text()[-3000:]
    assert not any(path.exists() for path in left_behind)  # the dead writer's staging was cleaned up
    assert assert_same_partitions(data / "lake", reference / "lake") >= len(before)
    assert _view_counts(data / "warehouse.duckdb") == _view_counts(reference / "warehouse.duckdb")


def test_staging_of_a_dead_writer_is_removed_and_a_live_writers_is_kept(tmp_path):
    final = tmp_path / "calendar" / "date=2025-01-01" / "calendar.parquet"
    final.parent.mkdir(parents=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = os.uname().nodename
    abandoned = final.with_name(f".calendar.parquet.{host}.{dead.pid}.0a1b.staging")
    live = final.with_name(f".calendar.parquet.{host}.{os.getppid()}.2c3d.staging")
    elsewhere = final.with_name(f".calendar.parquet.other-host.{dead.pid}.4e5f.staging")
    for path in (abandoned, live, elsewhere):
        path.write_bytes(b"partial")
    assert remove_abandoned_staging(final) == [abandoned]
    assert live.exists() and elsewhere.exists()  # another machine's writer is only abandoned after a day
    old = time.time() - 2 * 24 * 3600
    os.utime(elsewhere, (old, old))
    assert remove_abandoned_staging(final) == [elsewhere]


def test_reading_as_of_a_day_with_an_earlier_day_unpublished_fails_naming_the_gap(tmp_path):
    from grocery_pipeline.simulation.calendar import generate_calendar

    lake = Lake(tmp_path / "lake")
    for day in (START, START + timedelta(days=2)):
        lake.publish(lake.stage(TABLES["calendar"], TABLES["calendar"].conform(generate_calendar(day)), day))
    with pytest.raises(MissingPartitionError, match=r"'calendar'.*2025-01-02"):
        lake.read_as_of("calendar", START + timedelta(days=2))
    assert lake.read_as_of("calendar", START).height == 1
