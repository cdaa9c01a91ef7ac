"""One measurement in a fresh process, so its peak memory is its own: `run.py` starts it as

    python benchmarks/measure.py e2e|generate --preset P --days N --data-dir DIR --out RESULT.json
    python benchmarks/measure.py e2e --preset P --days N --from LAST_DATE --data-dir DIR --out RESULT.json

`e2e` materializes the window the way `grocery-pipeline generate` does (Dagster single-run
backfills, Parquet written, checks run, catalog updated) and records each published partition's
cost (`--from`: only the window's days from that date on, over a lake that holds the earlier
ones: the last day in a process of its own, its price ticks and daily graph in one run, reading
the day before from the lake). `generate` walks the same
days without Dagster, asset by asset in dependency order, timing the generator (`produce`) apart
from the Parquet write and the audits; the generators are found in
`assets.factory.GENERATORS`, so a new asset is measured without touching this file. The written
result is JSON; the parent reads peak RSS from the kernel when this process exits.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=("e2e", "generate"))
    parser.add_argument("--preset", required=True)
    parser.add_argument("--days", type=int, required=True)
    parser.add_argument("--start", default="2025-01-01")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--profile", default=None, help="write a pyinstrument HTML profile here")
    parser.add_argument("--select", default="", help="generate mode: only these assets (comma-separated)")
    parser.add_argument("--from", dest="first", default=None,
                        help="e2e mode: materialize from this business date on, over the days before it "
                             "already published in DATA_DIR (the window's last day in a process of its own)")
    return parser.parse_args(argv)


def _environment(args: argparse.Namespace) -> None:
    """The settings travel as environment variables, read when the code location is imported."""
    os.environ["GROCERY_PRESET"] = args.preset
    os.environ["GROCERY_START_DATE"] = args.start
    os.environ["GROCERY_DATA_DIR"] = str(Path(args.data_dir).resolve())
    os.environ.pop("DAGSTER_HOME", None)  # an ephemeral instance, like `grocery-pipeline generate`
    os.environ.pop("GROCERY_FAULTS", None)


class DayCosts:
    """Seconds and rows per (asset, business date)."""

    def __init__(self) -> None:
        self.seconds: dict[tuple[str, str], float] = defaultdict(float)
        self.rows: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))

    def add(self, asset: str, day: str, seconds: float, rows: dict[str, int]) -> None:
        self.seconds[(asset, day)] += seconds
        for table, count in rows.items():
            self.rows[(asset, day)][table] += count

    def as_json(self) -> list[dict]:
        return [{"asset": a, "date": d, "seconds": round(s, 4), "rows": dict(self.rows[(a, d)])}
                for (a, d), s in sorted(self.seconds.items(), key=lambda kv: (kv[0][1], kv[0][0]))]


def _running_asset() -> str | None:
    import dagster as dg

    try:
        return dg.AssetExecutionContext.get().op_def.name
    except Exception:  # outside a step (the Dagster-free loop)
        return None


def _time_unobserved_assets(costs: DayCosts):
    """Per-day cost of assets that do not run through the factory's loop (price ticks run their
    own): the time from one business date's last publish to the next date's last publish, in the
    running step, by timing `Lake.publish`; a step's first date counts from its first staged file.
    Returns the function that books the last date of each step."""
    from grocery_pipeline.assets import factory
    from grocery_pipeline.storage.lake import Lake

    marks: dict[str, dict] = {}
    original_staging, original_publish = Lake.staging, Lake.publish

    def staging(self, table, business_date, tick=None):
        asset = _running_asset()
        if asset is not None and asset not in factory.GENERATORS and asset not in marks:
            marks[asset] = {"opened": time.perf_counter(), "day": None, "rows": {}}
        return original_staging(self, table, business_date, tick)

    def publish(self, staged):
        path = original_publish(self, staged)
        asset = _running_asset()
        mark = marks.get(asset) if asset is not None else None
        if mark is not None:
            day = staged.business_date.isoformat()
            if mark["day"] is not None and mark["day"] != day:
                costs.add(asset, mark["day"], mark["closed"] - mark["opened"], mark["rows"])
                mark["opened"], mark["rows"] = mark["closed"], {}
            mark["day"], mark["closed"] = day, time.perf_counter()
            mark["rows"][staged.table] = mark["rows"].get(staged.table, 0) + staged.rows
        return path

    def flush():
        for asset, mark in marks.items():
            if mark["day"] is not None:
                costs.add(asset, mark["day"], mark["closed"] - mark["opened"], mark["rows"])
        marks.clear()

    Lake.staging, Lake.publish = staging, publish
    return flush


def _time_steps(step_seconds: dict[str, float]) -> None:
    """Record every step's duration (all assets, whatever their loop) from its success event."""
    import dagster as dg

    original = dg.materialize

    def materialize(*args, **kwargs):
        result = original(*args, **kwargs)
        for event in result.all_events:
            if event.event_type_value == "STEP_SUCCESS":
                step_seconds[event.step_key] = round(event.event_specific_data.duration_ms / 1000, 3)
        return result

    dg.materialize = materialize


def run_e2e(args: argparse.Namespace, start: date, end: date) -> dict:
    from grocery_pipeline import runner
    from grocery_pipeline.assets import factory
    from grocery_pipeline.settings import load_settings

    costs = DayCosts()
    factory.PARTITION_OBSERVERS.append(lambda asset, key, rows, seconds: costs.add(asset, key, seconds, rows))
    flush = _time_unobserved_assets(costs)
    step_seconds: dict[str, float] = {}
    _time_steps(step_seconds)
    started = time.perf_counter()
    outcome = runner.materialize_window(start, end)
    wall = time.perf_counter() - started
    flush()
    settings = load_settings()
    return {
        "wall_seconds": round(wall, 3),
        "success": outcome.success,
        "failures": outcome.failures[:20],
        "checks_passed": outcome.checks_passed,
        "checks_failed": outcome.checks_failed,
        "rows": runner.window_rows(settings, start, end),
        "days": costs.as_json(),
        "step_seconds": step_seconds,
    }


def _toposorted_assets():
    """Materializable assets in dependency order (self-dependencies of state chains ignored)."""
    import dagster as dg

    from grocery_pipeline.definitions import ALL_ASSETS

    assets = [a for a in ALL_ASSETS if isinstance(a, dg.AssetsDefinition) and a.is_materializable
              and not isinstance(a, dg.AssetChecksDefinition)]
    owner = {key: a for a in assets for key in a.keys}
    ordered, done = [], set()

    def visit(a, path=()):
        if id(a) in done:
            return
        if id(a) in path:
            raise RuntimeError(f"dependency cycle through {a.node_def.name}")
        for deps in a.asset_deps.values():
            for key in deps:
                parent = owner.get(key)
                if parent is not None and parent is not a:
                    visit(parent, (*path, id(a)))
        done.add(id(a))
        ordered.append(a)

    for a in assets:
        visit(a)
    return ordered


class TimedLake:
    """Counts the seconds spent writing Parquet (staging; in a thread of its own, beside the audits)."""

    def __init__(self, lake):
        self._lake = lake
        self.write_seconds = 0.0

    def __getattr__(self, name):
        return getattr(self._lake, name)

    def stage(self, *args, **kwargs):
        return self._timed(self._lake.stage, *args, **kwargs)

    def staging(self, *args, **kwargs):
        return TimedStaging(self._lake.staging(*args, **kwargs), self)

    def _timed(self, write, *args, **kwargs):
        started = time.perf_counter()
        try:
            return write(*args, **kwargs)
        finally:
            self.write_seconds += time.perf_counter() - started


class TimedStaging:
    """A partition file written part by part (`Lake.staging`), its writes counted by its TimedLake."""

    def __init__(self, staging, lake: TimedLake):
        self._staging, self._lake = staging, lake

    def __getattr__(self, name):
        return getattr(self._staging, name)

    def append(self, *args, **kwargs):
        return self._lake._timed(self._staging.append, *args, **kwargs)

    def close(self):
        return self._lake._timed(self._staging.close)


class TimedAudits:
    """Counts the seconds spent in the audits (`factory.run_audits`)."""

    def __init__(self, factory):
        self.seconds = 0.0
        original = factory.run_audits

        def run_audits(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - started

        factory.run_audits = run_audits


def _price_tick_day(settings, dictionaries, lake, day: date, carried):
    """The price ticks of one business date, generated the way the price_ticks asset does it."""
    from grocery_pipeline.assets import pricing
    from grocery_pipeline.simulation.pricing import PricingRules

    rules = PricingRules.from_settings(settings)
    parts, state = [], carried
    for tick_at in rules.ticks_of(day):
        frames, state = pricing.tick_frames(rules, settings, lake, dictionaries, tick_at, state)
        parts.append((pricing.lake_tick(tick_at), frames))
    return parts, state


def _publish_unaudited(lake, day: date, parts) -> None:
    from grocery_pipeline.tables import TABLES

    for tick, frames in parts:
        for name, frame in frames.items():
            table = TABLES[name]
            lake.publish(lake.stage(table, table.conform(frame), day,
                                    tick if table.partitioning == "price_tick" else None))


def run_generate(args: argparse.Namespace, start: date, end: date) -> dict:
    """The window without Dagster: per day, each asset's generator, then write-audit-publish."""
    from grocery_pipeline.assets import factory
    from grocery_pipeline.dictionaries import load_dictionaries
    from grocery_pipeline.settings import load_settings
    from grocery_pipeline.simulation.context import Day
    from grocery_pipeline.storage import catalog
    from grocery_pipeline.storage.lake import Lake

    settings = load_settings()
    dictionaries = load_dictionaries(settings.dictionaries_dir)
    lake = TimedLake(Lake(settings.lake_dir))
    audit_timer = TimedAudits(factory)
    assets = _toposorted_assets()
    if args.select:
        wanted = set(args.select.split(","))
        assets = [a for a in assets if a.node_def.name in wanted]
    per_asset: dict[str, dict] = {}
    days = []
    skipped = set()
    rejections: list[str] = []
    tick_state = None
    started = time.perf_counter()
    day = start
    while day <= end:
        for asset in assets:
            name = asset.node_def.name
            gen_started = time.perf_counter()
            if name in factory.GENERATORS:
                parts = [(None, factory.GENERATORS[name].produce(Day(settings, dictionaries, day), lake))]
            elif name == "price_ticks":
                parts, tick_state = _price_tick_day(settings, dictionaries, lake, day, tick_state)
            else:
                skipped.add(name)
                continue
            generated = time.perf_counter()
            write_before, audit_before = lake.write_seconds, audit_timer.seconds
            try:
                factory.write_audit_publish_ticks(settings, lake, day, parts)
            except factory.PartitionRejected as rejected:
                # The pipeline would stop here; the benchmark records it and publishes anyway, so
                # the cost of the rest of the window is still measured.
                rejections.append(str(rejected))
                _publish_unaudited(lake, day, parts)
            done = time.perf_counter()
            write = lake.write_seconds - write_before
            rows: dict[str, int] = defaultdict(int)
            for _, frames in parts:
                for table, frame in frames.items():
                    rows[table] += frame.height
            entry = per_asset.setdefault(name, {"generate_seconds": 0.0, "write_seconds": 0.0,
                                                "audit_seconds": 0.0, "rows": defaultdict(int)})
            entry["generate_seconds"] += generated - gen_started
            entry["write_seconds"] += write
            entry["audit_seconds"] += audit_timer.seconds - audit_before
            for table, count in rows.items():
                entry["rows"][table] += count
            days.append({"asset": name, "date": day.isoformat(), "seconds": round(done - gen_started, 4),
                         "generate_seconds": round(generated - gen_started, 4), "rows": dict(rows),
                         # the process's peak so far: where it jumps is the step that needs the memory
                         "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)})
            print(f"{day} {name}: {done - gen_started:.2f}s, peak RSS {days[-1]['peak_rss_mb']:.0f} MB", flush=True)
        day += timedelta(days=1)
    catalog_started = time.perf_counter()
    catalog.ensure_views(settings.warehouse_path, lake._lake, [t for a in per_asset.values() for t in a["rows"]])
    catalog_seconds = time.perf_counter() - catalog_started
    return {
        "wall_seconds": round(time.perf_counter() - started, 3),
        "catalog_seconds": round(catalog_seconds, 3),
        "assets": {name: {**{k: round(v, 4) for k, v in e.items() if k != "rows"}, "rows": dict(e["rows"])}
                   for name, e in per_asset.items()},
        "skipped_assets": sorted(skipped),
        "success": not rejections,
        "failures": rejections[:20],
        "days": days,
    }


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    _environment(args)
    start = date.fromisoformat(args.start)
    end = start + timedelta(days=args.days - 1)
    first = date.fromisoformat(args.first) if args.first else start
    if args.first and (args.mode != "e2e" or not start <= first <= end):
        raise SystemExit(f"--from {args.first}: an e2e date within the window {start} .. {end} was expected")
    profiler = None
    if args.profile:
        from pyinstrument import Profiler

        profiler = Profiler(interval=0.005)
        profiler.start()
    imported = time.perf_counter()
    import grocery_pipeline.definitions  # noqa: F401  (import cost is reported apart)
    import_seconds = time.perf_counter() - imported
    result = run_e2e(args, first, end) if args.mode == "e2e" else run_generate(args, start, end)
    if profiler is not None:
        profiler.stop()
        Path(args.profile).write_text(profiler.output_html())
        Path(args.profile).with_suffix(".txt").write_text(profiler.output_text(unicode=False, color=False))
        profiler.last_session.save(str(Path(args.profile).with_suffix(".pyisession")))
    result.update({
        "mode": args.mode, "preset": args.preset, "start": args.start, "first": first.isoformat(),
        "days_in_window": (end - first).days + 1,
        "import_seconds": round(import_seconds, 3),
        "self_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "finished_at": datetime.now().isoformat(timespec="seconds"),
    })
    Path(args.out).write_text(json.dumps(result, indent=1))
    return 0 if result.get("success", True) else 1


if __name__ == "__main__":
    sys.exit(main())
