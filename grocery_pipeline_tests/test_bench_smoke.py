"""The benchmark harness runs (tiny preset, one day) and measures every table and generator the
project defines. Timings are printed, never asserted: `make bench` is a benchmark, not a test."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from grocery_pipeline.tables import TABLES

PROJECT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_bench_measures_every_table_end_to_end_and_without_dagster(tmp_path):
    result = subprocess.run(
        [sys.executable, "benchmarks/run.py", "--presets", "tiny", "--days", "2", "--generate-days", "2",
         "--no-tpch", "--results-dir", str(tmp_path), "--work-dir", str(tmp_path / "data")],
        cwd=PROJECT, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "SUMMARY tiny:" in result.stdout

    summary = json.loads(next(tmp_path.glob("*/summary.json")).read_text())
    assert summary["machine"]["cpus"] >= 1
    tiny = summary["presets"][0]
    e2e, generate = tiny["e2e"], tiny["generate"]
    assert e2e["success"], e2e.get("failure")
    assert e2e["checks_passed"] > 0
    assert set(e2e["tables"]) == set(TABLES)          # a new table is measured without editing the bench
    assert e2e["peak_rss_mb"] > 0 and e2e["rows"] > 0
    # The Dagster-free loop runs the same generators: the same partition has the same rows.
    generated = {t: n for a in generate["assets"].values() for t, n in a["tables"].items()}
    assert generated == {t: n for t, n in e2e["tables"].items() if t in generated}
    assert set(generated) == set(TABLES)
    assert tiny["generate"]["write_seconds"] > 0 and tiny["generate"]["audit_seconds"] > 0  # both timed
    assert e2e["growth"]["1"]["rows"] + e2e["growth"]["2"]["rows"] == e2e["rows"]
    # the last day again as a run of its own, over the day before it: the same rows
    nightly = tiny["nightly"]
    assert nightly["success"] and nightly["day"] == "2025-01-02" and nightly["peak_rss_mb"] > 0
    assert nightly["rows"] == e2e["growth"]["2"]["rows"]
    assert 0 < nightly["ticks_seconds"] < nightly["wall_seconds"]  # the day's price ticks, reported apart
    assert "xl_nightly_day_seconds" not in tiny["targets"]
