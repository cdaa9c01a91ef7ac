"""What a run records and reopens beyond the data: per-partition check results only where someone
can read them, and the catalog opened only when its views change."""

from __future__ import annotations

import pytest

from grocery_pipeline import checks
from grocery_pipeline.storage import catalog
from grocery_pipeline.storage.lake import Lake

RANGE = {"dagster/asset_partition_range_start": "2025-01-01",
         "dagster/asset_partition_range_end": "2025-01-03"}


@pytest.mark.integration
def test_a_range_run_on_an_ephemeral_instance_records_only_the_gate(tmp_path):
    import dagster as dg

    from grocery_pipeline.assets.dimensions import calendar_asset
    from grocery_pipeline.resources import GrocerySettings

    result = dg.materialize([calendar_asset], instance=dg.DagsterInstance.ephemeral(), tags=RANGE,
                            resources={"grocery": GrocerySettings(preset="tiny", data_dir=str(tmp_path))})
    evaluations = result.get_asset_check_evaluations()
    assert result.success
    assert all(e.partition is None for e in evaluations)
    assert sorted(e.check_name for e in evaluations) == sorted(a.name for a in checks.audits_for("calendar"))
    assert all(e.metadata["partitions_audited"].value == 3 for e in evaluations)


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
    from grocery_pipeline.resources import GrocerySettings
    from grocery_pipeline.storage import world as worlds
    from grocery_pipeline.storage.lake import Lake as LakeOf

    result = dg.materialize(DIMENSION_ASSETS, instance=dg.DagsterInstance.ephemeral(), tags=RANGE,
                            resources={"grocery": GrocerySettings(preset="tiny", data_dir=str(tmp_path))})
    assert result.success
    lake = LakeOf(tmp_path / "lake")
    worlds.load_world(lake, date(2025, 1, 3))  # the as-of reader now holds all three days
    first = worlds.load_world(lake, date(2025, 1, 2))
    assert worlds.load_world(lake, date(2025, 1, 2)) is first
    assert first.business_date == date(2025, 1, 2)
