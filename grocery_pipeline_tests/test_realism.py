"""The realism report on a simulated window: every SPEC realism target is printed beside a measured
value, and the targets that ten days of three stores can show are met (store choice, weekday rhythm,
repeat ordering and the promotion share, which follows how many promotions run, need the 90-day
small window: see docs/operations.md)."""

import duckdb
import polars as pl
import pytest

from grocery_pipeline import report
from grocery_pipeline.simulation.chain import Dimensions, run_days
from grocery_pipeline.tables import TABLES

DAYS = 10


@pytest.fixture(scope="module")
def warehouse(tiny_settings, dictionaries, tmp_path_factory):
    """A DuckDB file with schema `grocery` holding ten simulated days and their dimensions."""
    runs = list(run_days(tiny_settings, dictionaries, DAYS))
    path = tmp_path_factory.mktemp("realism") / "warehouse.duckdb"
    tables: dict[str, list[pl.DataFrame]] = {}
    for _, _, frames in runs:
        for name, frame in frames.items():
            tables.setdefault(name, []).append(TABLES[name].conform(frame))
    dims = Dimensions()
    for day, _, _ in runs:
        dims.grow(day)
    with duckdb.connect(str(path)) as conn:
        conn.execute("CREATE SCHEMA grocery")
        for name, frame in [*((n, pl.concat(f)) for n, f in tables.items()), *dims.tables.items()]:
            conn.register("frame", frame.to_arrow())
            conn.execute(f'CREATE TABLE grocery."{name}" AS SELECT * FROM frame')
            conn.unregister("frame")
    return path


@pytest.fixture(scope="module")
def measures(warehouse):
    return {m.target: m for m in report.measure(warehouse)}


def test_every_target_of_the_spec_is_reported(measures):
    text = " ".join(measures)
    for phrase in ("items per basket", "basket value", "reorder share", "days between", "hour of day",
                   "weekday factors", "Thanksgiving", "promotion", "produce", "top 1% of SKUs",
                   "coefficient of variation", "two nearest stores", "under 10 miles", "shrink"):
        assert phrase in text, phrase
    assert all(m.measured for m in measures.values())


@pytest.mark.parametrize("target", [
    "items per basket ~10", "in-store basket value ~$42", "reordered only if bought before",
    "produce ~10% of sales", "top 1% of SKUs carry far more than 2% of lines",
])
def test_targets_a_short_window_can_show_are_met(measures, target):
    assert measures[target].ok, measures[target].measured


def test_holiday_peaks_are_not_applicable_outside_the_window(measures):
    assert measures["day before Thanksgiving +80-95%; Dec 23-24 about +60%"].ok is None


def test_report_renders_status_and_value_per_target(warehouse):
    text = report.render(report.measure(warehouse))
    lines = text.splitlines()
    assert len(lines) == len(report.CHECKS) + 3
    assert all(("ok" in line or "MISS" in line or "n/a" in line) for line in lines[2:-1])


def test_report_names_a_missing_warehouse(tmp_path):
    with pytest.raises(FileNotFoundError, match="grocery-pipeline generate"):
        report.measure(tmp_path / "warehouse.duckdb")
