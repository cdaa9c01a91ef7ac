"""`make bench`: how fast the pipeline generates, writes and checks each preset, and how much memory.

For each preset it runs, each in a fresh process (so the peak RSS is that run's own):
  generate  the generators alone, without Dagster (each asset's `produce`, timed apart from the
            Parquet write and the audits that run beside it),
  e2e       the window end to end as `grocery-pipeline generate` runs it: Dagster single-run
            backfills, Parquet written, audits run, DuckDB catalog updated;
  nightly   (xl, tiny) the window's last day again, in a process of its own over the days before
            it: the day's price ticks and daily graph in one run (the nightly schedule runs the
            daily graph, the price-tick sensor the ticks through the day);
then, optionally, `tpchgen-cli` at a comparable row count as a reference. It prints the figures,
the growth curve (per-day cost along a long window, and cost per row from preset to preset), one
summary line per preset, and writes everything to benchmarks/results/.

    .venv/bin/python benchmarks/run.py                       # small, medium, xl; tpchgen if installed
    .venv/bin/python benchmarks/run.py --presets small --days 30 --no-tpch
    .venv/bin/python benchmarks/run.py --presets medium --profile   # pyinstrument profile per run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROJECT = HERE.parent
MEASURE = HERE / "measure.py"
DOC = PROJECT / "docs" / "benchmarks.md"
DOC_START, DOC_END = "<!-- bench:latest:start -->", "<!-- bench:latest:end -->"


@dataclass(frozen=True)
class Plan:
    e2e_days: int       # the end-to-end window (single-run backfill)
    generate_days: int  # the Dagster-free generation window
    nightly: bool = False  # also the window's last day as a run of its own


# small's 90 days are `make demo`'s window and the growth curve; medium's 30 the throughput target;
# xl's 3 end on its first ordinary day: day 1 carries the initial population, and day 2 is the first
# day of price ticks, on which every promotion of the initial population starts (at xl 5.1M of its
# 7.4M price updates; day 3 has 4.0M) while the trucks have barely started (79 shipments; 537 on day 3).
PLANS = {"tiny": Plan(3, 3, nightly=True), "small": Plan(90, 10), "medium": Plan(30, 3), "xl": Plan(3, 3, nightly=True)}
DEFAULT_PRESETS = ("small", "medium", "xl")

# The targets of the issue, checked on every run.
XL_DAY_SECONDS, XL_PEAK_MB = 10.0, 2048.0
MEDIUM_FACT_ROWS_PER_S = 1.5e6
DEMO_SECONDS = 60.0
FLATNESS = 0.20

DEFAULT_MAX_RSS_MB = 5 * XL_PEAK_MB

DIMENSION_GROUP = "dimensions"
TPCH_ROWS_PER_SF = 8_661_245  # all eight tables at scale factor 1


def _args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default=",".join(DEFAULT_PRESETS),
                        help=f"comma-separated presets (default {','.join(DEFAULT_PRESETS)}; tiny for a smoke run)")
    parser.add_argument("--days", type=int, default=None, help="end-to-end window in days (default per preset)")
    parser.add_argument("--generate-days", type=int, default=None,
                        help="generation-only window in days (default per preset; 0 skips it)")
    parser.add_argument("--start", default="2025-01-01", help="first business date")
    parser.add_argument("--no-tpch", action="store_true", help="skip the tpchgen-cli reference")
    parser.add_argument("--profile", action="store_true", help="profile each run with pyinstrument")
    parser.add_argument("--results-dir", default=str(HERE / "results"))
    parser.add_argument("--work-dir", default=None, help="where the generated data goes (default: a temp dir)")
    parser.add_argument("--keep-data", action="store_true", help="keep the generated data")
    parser.add_argument("--max-rss-mb", type=float, default=DEFAULT_MAX_RSS_MB,
                        help=f"stop a measurement whose memory passes this, 0 for no bound "
                             f"(default {DEFAULT_MAX_RSS_MB:.0f}: five times the xl target, on a shared machine)")
    parser.add_argument("--write-docs", action="store_true",
                        help="replace the latest-figures table in docs/benchmarks.md with this run's")
    return parser.parse_args(argv)


# -- machine ----------------------------------------------------------------------------------

def machine() -> dict:
    def first(path: str, prefix: str) -> str:
        try:
            for line in Path(path).read_text().splitlines():
                if line.startswith(prefix):
                    return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    mem_kb = first("/proc/meminfo", "MemTotal").split()[0]
    versions = {}
    for module in ("polars", "duckdb", "numpy", "dagster"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = "missing"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": first("/proc/cpuinfo", "model name"),
        "ram_gb": round(int(mem_kb) / 1024 / 1024, 1) if mem_kb.isdigit() else None,
        "python": platform.python_version(),
        "load_average": list(os.getloadavg()),
        **versions,
    }


# -- running one measurement ------------------------------------------------------------------

def _rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def data_dir_of(work: Path, preset: str, mode: str) -> Path:
    """Where a measurement writes its lake (the nightly one reads and extends the e2e one's)."""
    return work / f"{preset}-{mode}"


def measure(mode: str, preset: str, days: int, start: str, work: Path, results: Path, profile: bool,
            max_rss_mb: float | None = None, nightly_from: str | None = None) -> dict:
    """Run measure.py in a fresh process; adds its peak RSS and CPU seconds from the kernel.
    `nightly_from`: an e2e run of the window's days from that date on, over the lake the e2e
    measurement of the whole window left (named `nightly`)."""
    name = "nightly" if nightly_from else mode
    data_dir = data_dir_of(work, preset, mode)
    if not nightly_from:
        shutil.rmtree(data_dir, ignore_errors=True)
    out = results / f"{preset}-{name}.json"
    command = [sys.executable, str(MEASURE), mode, "--preset", preset, "--days", str(days),
               "--start", start, "--data-dir", str(data_dir), "--out", str(out)]
    if nightly_from:
        command += ["--from", nightly_from]
    if profile:
        command += ["--profile", str(results / f"{preset}-{name}-profile.html")]
    print(f"  {name:8s} {preset}: " + (f"{days} day(s)" if not nightly_from else "the last day") + " ...",
          end="", flush=True)
    started = time.perf_counter()
    log = results / f"{preset}-{name}.log"
    killed_at_mb = None
    with log.open("w") as stream:
        process = subprocess.Popen(command, cwd=PROJECT, stdout=stream, stderr=subprocess.STDOUT)
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            rss = _rss_mb(process.pid)
            if max_rss_mb and rss > max_rss_mb:  # 0 or None: no bound
                killed_at_mb = rss
                process.kill()  # this measurement's own process, by pid
            time.sleep(0.25)
        process.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - started
    if killed_at_mb is not None:
        print(f" stopped: RSS {killed_at_mb:.0f} MB passed --max-rss-mb {max_rss_mb}")
        return {"mode": mode, "preset": preset, "killed_at_rss_mb": killed_at_mb, "process_seconds": round(elapsed, 1)}
    if not out.is_file():
        print(" failed")
        raise SystemExit(f"benchmark run failed ({mode} {preset}); see {log}:\n" + log.read_text()[-3000:])
    result = json.loads(out.read_text())
    result["process_seconds"] = round(elapsed, 2)
    result["cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 2)
    result["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)
    result["data_mb"] = round(sum(f.stat().st_size for f in data_dir.rglob("*") if f.is_file()) / 2**20, 1)
    out.write_text(json.dumps(result, indent=1))
    print(f" {result['wall_seconds']:.1f}s, peak {result['peak_rss_mb']:.0f} MB")
    if process.returncode != 0 or not result.get("success", True):
        print(f"  WARNING: {mode} {preset} did not succeed: {result.get('failures')}")
    return result


def tpch_reference(rows: int, work: Path) -> dict | None:
    """tpchgen-cli writing Parquet at the scale factor whose row count is nearest `rows`."""
    exe = shutil.which("tpchgen-cli") or str(Path(sys.executable).with_name("tpchgen-cli"))
    if not Path(exe).is_file() and shutil.which(exe) is None:
        print("  tpchgen-cli not installed (pip install tpchgen-cli): reference skipped")
        return None
    scale = max(round(rows / TPCH_ROWS_PER_SF, 3), 0.01)
    out = work / "tpch"
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    started = time.perf_counter()
    subprocess.run([exe, "parquet", "-s", str(scale), "-o", str(out)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - started
    import polars as pl

    written = sum(pl.scan_parquet(f).select(pl.len()).collect().item() for f in out.rglob("*.parquet"))
    shutil.rmtree(out, ignore_errors=True)
    return {"scale_factor": scale, "rows": written, "seconds": round(seconds, 3),
            "rows_per_s": round(written / seconds)}


# -- figures ----------------------------------------------------------------------------------

def table_groups() -> dict[str, str]:
    sys.path.insert(0, str(PROJECT))
    from grocery_pipeline.tables import TABLES

    return {name: t.group for name, t in TABLES.items()}


def day_series(result: dict) -> list[tuple[str, float, int]]:
    """(date, seconds, rows) per business date, summed over assets."""
    seconds: dict[str, float] = {}
    rows: dict[str, int] = {}
    for entry in result["days"]:
        seconds[entry["date"]] = seconds.get(entry["date"], 0.0) + entry["seconds"]
        rows[entry["date"]] = rows.get(entry["date"], 0) + sum(entry["rows"].values())
    return [(d, seconds[d], rows[d]) for d in sorted(seconds)]


def around(series: list, day_number: int, width: int = 3) -> list:
    """Up to `width` consecutive days ending at `day_number` (1-based), clipped to the window, but
    never reaching back to day 1 (the initial population) for a later day."""
    end = min(day_number, len(series))
    begin = max(end - width, 1 if day_number > 1 else 0)
    return series[begin:end] or series[end - 1:end]


def growth_curve(result: dict) -> dict:
    """Per-day cost at days 1, 2, 30 and 90 of the window (medians of 3 days from day 2 on, so one
    noisy day does not decide it), in seconds and in microseconds per row."""
    series = day_series(result)
    points = {}
    for day_number in (1, 2, 30, 90):
        if day_number > len(series):
            continue
        if day_number == 2:
            chunk = series[1:4]
        elif day_number == 1:
            chunk = series[:1]
        else:
            chunk = around(series, day_number)
        points[day_number] = {
            "days": [d for d, _, _ in chunk],
            "seconds": round(statistics.median(s for _, s, _ in chunk), 3),
            "rows": int(statistics.median(r for _, _, r in chunk)),
            "us_per_row": round(statistics.median(s / r * 1e6 for _, s, r in chunk if r), 3),
        }
    return points


def summarize(preset: str, e2e: dict | None, generate: dict | None, groups: dict[str, str],
              tpch: dict | None, nightly: dict | None = None) -> dict:
    out: dict = {"preset": preset}
    if nightly:
        out["nightly"] = {"day": nightly["first"], "success": nightly["success"],
                          "wall_seconds": nightly["wall_seconds"], "cpu_seconds": nightly["cpu_seconds"],
                          "peak_rss_mb": nightly["peak_rss_mb"], "rows": sum(nightly["rows"].values()),
                          # the day's ticks, which the sensor makes through the day (the nightly
                          # schedule's daily graph runs without them)
                          "ticks_seconds": nightly.get("step_seconds", {}).get("price_ticks")}
    if generate:
        gen_rows = sum(sum(a["rows"].values()) for a in generate["assets"].values())
        gen_seconds = sum(a["generate_seconds"] for a in generate["assets"].values())
        out["generate"] = {
            "days": generate["days_in_window"], "rows": gen_rows, "seconds": round(gen_seconds, 3),
            "rows_per_s": round(gen_rows / gen_seconds) if gen_seconds else None,
            "write_seconds": round(sum(a["write_seconds"] for a in generate["assets"].values()), 3),
            "audit_seconds": round(sum(a["audit_seconds"] for a in generate["assets"].values()), 3),
            "loop_seconds": generate["wall_seconds"], "peak_rss_mb": generate["peak_rss_mb"],
            "assets": {name: {"rows": sum(a["rows"].values()), "seconds": a["generate_seconds"],
                              "rows_per_s": round(sum(a["rows"].values()) / a["generate_seconds"])
                              if a["generate_seconds"] else None,
                              "write_seconds": a["write_seconds"], "audit_seconds": a["audit_seconds"],
                              "tables": a["rows"]}
                       for name, a in generate["assets"].items()},
        }
    if e2e:
        rows = e2e["rows"]
        total = sum(rows.values())
        facts = sum(n for t, n in rows.items() if groups.get(t) != DIMENSION_GROUP)
        wall = e2e["wall_seconds"]
        series = day_series(e2e)
        out["e2e"] = {
            "days": e2e["days_in_window"], "success": e2e["success"], "failure": _stopping_failure(e2e["failures"]),
            "wall_seconds": wall,
            "cpu_seconds": e2e["cpu_seconds"], "import_seconds": e2e["import_seconds"],
            "peak_rss_mb": e2e["peak_rss_mb"], "data_mb": e2e["data_mb"],
            "rows": total, "fact_rows": facts,
            "rows_per_s": round(total / wall), "fact_rows_per_s": round(facts / wall),
            "seconds_per_day": round(wall / e2e["days_in_window"], 3),
            "checks_passed": e2e["checks_passed"], "checks_failed": e2e["checks_failed"],
            "first_day_seconds": round(series[0][1], 3) if series else None,
            "last_day_seconds": round(series[-1][1], 3) if series else None,
            "growth": growth_curve(e2e), "tables": rows,
        }
        # whole steps (catalog update and Dagster's own work included) when recorded
        out["e2e"]["asset_seconds"] = e2e.get("step_seconds") or _asset_seconds(e2e)
    if tpch:
        out["tpch"] = tpch
        if e2e:
            out["tpch"]["e2e_ratio"] = round(out["e2e"]["rows_per_s"] / tpch["rows_per_s"], 3)
        if generate and out["generate"]["rows_per_s"]:
            out["tpch"]["generate_ratio"] = round(out["generate"]["rows_per_s"] / tpch["rows_per_s"], 3)
    out["targets"] = targets(preset, out)
    return out


def _stopping_failure(failures: list[str]) -> str | None:
    """The step failure that stopped the run (its checks' failures are listed before it)."""
    steps = [f for f in failures if f.startswith("step ")]
    return (steps or failures or [None])[0]


def _asset_seconds(e2e: dict) -> dict[str, float]:
    out: dict[str, float] = {}
    for entry in e2e["days"]:
        out[entry["asset"]] = round(out.get(entry["asset"], 0.0) + entry["seconds"], 3)
    return out


def targets(preset: str, s: dict) -> dict[str, dict]:
    """The issue's targets that this preset's figures can decide."""
    out = {}
    e2e = s.get("e2e")
    if not e2e or not e2e["success"]:  # a run stopped by a failed check has partial figures
        return out
    if preset == "xl":
        day = e2e["last_day_seconds"] if e2e["days"] > 1 else e2e["first_day_seconds"]
        out["xl_day_seconds"] = {"value": day, "limit": f"<= {XL_DAY_SECONDS}", "pass": day <= XL_DAY_SECONDS}
        out["xl_peak_rss_mb"] = {"value": e2e["peak_rss_mb"], "limit": f"<= {XL_PEAK_MB:.0f}",
                                 "pass": e2e["peak_rss_mb"] <= XL_PEAK_MB}
        nightly = s.get("nightly")
        if nightly and nightly["success"]:  # the last day as a run of its own (its ticks and daily graph)
            out["xl_nightly_day_seconds"] = {"value": nightly["wall_seconds"], "limit": f"<= {XL_DAY_SECONDS}",
                                             "pass": nightly["wall_seconds"] <= XL_DAY_SECONDS}
            out["xl_nightly_peak_rss_mb"] = {"value": nightly["peak_rss_mb"], "limit": f"<= {XL_PEAK_MB:.0f}",
                                             "pass": nightly["peak_rss_mb"] <= XL_PEAK_MB}
    if preset == "medium" and e2e["days"] >= 30:
        out["medium_fact_rows_per_s"] = {"value": e2e["fact_rows_per_s"], "limit": f">= {MEDIUM_FACT_ROWS_PER_S:.0f}",
                                         "pass": e2e["fact_rows_per_s"] >= MEDIUM_FACT_ROWS_PER_S}
    if preset == "small" and e2e["days"] >= 90:
        # `make demo` runs the CLI: the window plus the process start and imports
        seconds = e2e["wall_seconds"] + e2e["import_seconds"]
        out["demo_seconds"] = {"value": round(seconds, 1), "limit": f"<= {DEMO_SECONDS:.0f}",
                               "pass": seconds <= DEMO_SECONDS}
    growth = e2e["growth"]
    last = max((d for d in growth if d > 2), default=None)
    if last and 2 in growth:
        ratio = growth[last]["us_per_row"] / growth[2]["us_per_row"]
        out[f"day{last}_vs_day2_cost_per_row"] = {"value": round(ratio, 3), "limit": f"<= {1 + FLATNESS}",
                                                  "pass": ratio <= 1 + FLATNESS}
    return out


# -- printing ---------------------------------------------------------------------------------

def fmt_rate(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value / 1e6:.2f}M" if value >= 1e6 else f"{value / 1e3:.0f}k"


def print_preset(s: dict, groups: dict[str, str]) -> None:
    preset = s["preset"]
    print(f"\n== {preset} ==")
    if "generate" in s:
        g = s["generate"]
        print(f"generation alone ({g['days']} day(s), no Dagster): {g['rows']:,} rows in {g['seconds']:.2f}s "
              f"= {fmt_rate(g['rows_per_s'])} rows/s; Parquet write {g['write_seconds']:.2f}s, "
              f"audits {g['audit_seconds']:.2f}s, loop {g['loop_seconds']:.2f}s, peak RSS {g['peak_rss_mb']:.0f} MB")
        print(f"  {'asset':22s} {'rows':>12s} {'gen s':>8s} {'rows/s':>8s} {'write s':>8s} {'audit s':>8s}")
        for name, a in sorted(g["assets"].items(), key=lambda kv: -kv[1]["seconds"]):
            print(f"  {name:22s} {a['rows']:>12,} {a['seconds']:>8.2f} {fmt_rate(a['rows_per_s']):>8s} "
                  f"{a['write_seconds']:>8.2f} {a['audit_seconds']:>8.2f}")
    if "e2e" in s:
        e = s["e2e"]
        gen_assets = s.get("generate", {}).get("assets", {})
        rate_of = {t: a["rows_per_s"] for a in gen_assets.values() for t in a["tables"]}
        if not e["success"]:
            print(f"END-TO-END RUN FAILED (a blocking check stopped it; the figures below are partial): "
                  f"{e['failure']}")
        print(f"end to end ({e['days']} day(s), Dagster single-run backfill, Parquet, checks, catalog): "
              f"{e['rows']:,} rows ({e['fact_rows']:,} fact) in {e['wall_seconds']:.1f}s "
              f"(+{e['import_seconds']:.1f}s imports; CPU {e['cpu_seconds']:.1f}s) = {fmt_rate(e['rows_per_s'])} rows/s, "
              f"{fmt_rate(e['fact_rows_per_s'])} fact rows/s; {e['seconds_per_day']:.2f} s/day; "
              f"peak RSS {e['peak_rss_mb']:.0f} MB; {e['data_mb']:.0f} MB on disk; "
              f"checks {e['checks_passed']} passed, {e['checks_failed']} failed")
        per_day_rows = {t: n / e["days"] for t, n in e["tables"].items()}
        window = e["wall_seconds"]
        print(f"  {'table':22s} {'group':12s} {'rows':>12s} {'rows/day':>10s} {'e2e rows/s':>10s} {'gen rows/s':>10s}")
        for table, n in e["tables"].items():
            print(f"  {table:22s} {groups.get(table, '?'):12s} {n:>12,} {per_day_rows[table]:>10,.0f} "
                  f"{fmt_rate(n / window):>10s} {fmt_rate(rate_of.get(table)):>10s}")
        print("  seconds per Dagster step: "
              + ", ".join(f"{a}={v:.1f}" for a, v in sorted(e["asset_seconds"].items(), key=lambda kv: -kv[1])))
        growth = e["growth"]
        if growth:
            print("  per-day cost: " + "; ".join(
                f"day {d} {p['seconds']:.2f}s ({p['rows']:,} rows, {p['us_per_row']:.2f} us/row)"
                for d, p in growth.items()))
    if "nightly" in s:
        n = s["nightly"]
        ticks = f", of which its price ticks {n['ticks_seconds']:.1f}s" if n.get("ticks_seconds") is not None else ""
        print(f"the last day again as a run of its own ({n['day']}, over the published days before it): "
              f"{n['rows']:,} rows in {n['wall_seconds']:.1f}s{ticks} (CPU {n['cpu_seconds']:.1f}s), "
              f"peak RSS {n['peak_rss_mb']:.0f} MB{'' if n['success'] else ', RUN FAILED'}")
    if "tpch" in s:
        t = s["tpch"]
        print(f"tpchgen-cli parquet -s {t['scale_factor']}: {t['rows']:,} rows in {t['seconds']:.2f}s = "
              f"{fmt_rate(t['rows_per_s'])} rows/s; ratio e2e/tpchgen {t.get('e2e_ratio', '-')}, "
              f"generation/tpchgen {t.get('generate_ratio', '-')}")


def scaling(summaries: list[dict]) -> list[str]:
    """Cost per row of an ordinary day from preset to preset: flat means cost grows linearly."""
    lines = []
    for s in summaries:
        growth = s.get("e2e", {}).get("growth", {})
        point = growth.get(2) or growth.get(1)
        if point:
            lines.append(f"  {s['preset']:7s} {point['rows']:>12,} rows/day  {point['seconds']:>7.2f} s/day  "
                         f"{point['us_per_row']:>6.2f} us/row")
    return lines


def summary_line(s: dict) -> str:
    parts = [f"SUMMARY {s['preset']}:"]
    for mode, mb in s.get("stopped_for_memory", {}).items():
        parts.append(f"{mode} stopped at {mb:.0f} MB RSS (--max-rss-mb)")
    e = s.get("e2e")
    if e:
        parts.append(f"e2e {e['days']}d {e['wall_seconds']:.1f}s ({e['seconds_per_day']:.2f} s/day), "
                     f"{e['rows'] / 1e6:.2f}M rows, {fmt_rate(e['rows_per_s'])} rows/s, "
                     f"{fmt_rate(e['fact_rows_per_s'])} fact rows/s, peak {e['peak_rss_mb']:.0f} MB")
    g = s.get("generate")
    if g:
        parts.append(f"generation {fmt_rate(g['rows_per_s'])} rows/s")
    t = s.get("tpch")
    if t and "e2e_ratio" in t:
        parts.append(f"x{t['e2e_ratio']:.2f} tpchgen")
    for name, target in s["targets"].items():
        parts.append(f"{name}={target['value']} ({target['limit']}: {'PASS' if target['pass'] else 'FAIL'})")
    if e and not e["success"]:
        parts.append(f"RUN FAILED, figures partial, targets not judged: {e['failure']}")
    return " | ".join([parts[0] + " " + parts[1]] + parts[2:]) if len(parts) > 1 else parts[0]


def markdown_table(summaries: list[dict], info: dict, stamp: str) -> str:
    lines = [
        f"Taken {datetime.strptime(stamp, '%Y%m%d-%H%M%S'):%Y-%m-%d %H:%M} on {info['cpus']} CPUs ({info['cpu_model']}), {info['ram_gb']} GB RAM, "
        f"load average at start {info['load_average'][0]:.1f}; Python {info['python']}, polars {info['polars']}, "
        f"duckdb {info['duckdb']}, dagster {info['dagster']}.",
        "",
        "| preset | e2e window | e2e wall | s/day | rows | rows/s e2e | fact rows/s e2e | generation rows/s | "
        "peak RSS | day 2 → last, µs/row | tpchgen ratio |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for s in summaries:
        e, g, t = s.get("e2e", {}), s.get("generate", {}), s.get("tpch", {})
        if not e:
            why = ", ".join(f"{mode} stopped at {mb:.0f} MB RSS" for mode, mb in s.get("stopped_for_memory", {}).items())
            lines.append(f"| {s['preset']} | not measured end to end{': ' + why if why else ''} |"
                         f" | | | | | {fmt_rate(g.get('rows_per_s'))} | | | |")
            continue
        growth = {int(d): p for d, p in e.get("growth", {}).items()}  # JSON keys are strings
        last = max((d for d in growth if d > 2), default=None)
        curve = (f"{growth[2]['us_per_row']:.2f} → {growth[last]['us_per_row']:.2f}"
                 if last and 2 in growth else "-")
        lines.append(
            f"| {s['preset']} | {e['days']} d{'' if e['success'] else ' (run failed: partial)'} | "
            f"{e.get('wall_seconds', 0):.1f} s | "
            f"{e.get('seconds_per_day', 0):.2f} | {e.get('rows', 0) / 1e6:.2f}M | {fmt_rate(e.get('rows_per_s'))} | "
            f"{fmt_rate(e.get('fact_rows_per_s'))} | {fmt_rate(g.get('rows_per_s'))} | "
            f"{e.get('peak_rss_mb', 0):.0f} MB | {curve} | {t.get('e2e_ratio', '-')} |")
    lines.append("")
    for s in summaries:
        lines.append(f"- `{summary_line(s)}`")
    return "\n".join(lines)


def write_docs(table: str) -> None:
    text = DOC.read_text()
    start, end = text.index(DOC_START) + len(DOC_START), text.index(DOC_END)
    DOC.write_text(text[:start] + "\n" + table + "\n" + text[end:])


def main(argv: list[str] | None = None) -> int:
    args = _args(argv)
    presets = [p.strip() for p in args.presets.split(",") if p.strip()]
    unknown = [p for p in presets if p not in PLANS]
    if unknown:
        raise SystemExit(f"unknown preset(s) {', '.join(unknown)}; expected some of {', '.join(PLANS)}")
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    results = Path(args.results_dir) / stamp
    results.mkdir(parents=True, exist_ok=True)
    work = Path(args.work_dir) if args.work_dir else Path(tempfile.mkdtemp(prefix="grocery-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    info = machine()
    groups = table_groups()
    print(f"machine: {info['cpus']} CPUs ({info['cpu_model']}), {info['ram_gb']} GB RAM, "
          f"load average {info['load_average'][0]:.1f}; results in {results}")
    summaries = []
    try:
        for preset in presets:
            plan = PLANS[preset]
            e2e_days = args.days if args.days is not None else plan.e2e_days
            gen_days = args.generate_days if args.generate_days is not None else plan.generate_days
            generate = measure("generate", preset, gen_days, args.start, work, results, args.profile,
                               args.max_rss_mb) if gen_days > 0 else None
            # a preset whose generation alone outgrew the memory bound is not run end to end
            over = generate is not None and "killed_at_rss_mb" in generate
            e2e = measure("e2e", preset, e2e_days, args.start, work, results, args.profile,
                          args.max_rss_mb) if e2e_days > 0 and not over else None
            # the last day again, its ticks and daily graph: one day in a process of its own
            last = (date.fromisoformat(args.start) + timedelta(days=e2e_days - 1)).isoformat()
            nightly = measure("e2e", preset, e2e_days, args.start, work, results, args.profile, args.max_rss_mb,
                              nightly_from=last) \
                if plan.nightly and e2e and e2e.get("success") and e2e_days > 1 else None
            stopped = [m for m in (generate, e2e, nightly) if m and "killed_at_rss_mb" in m]
            generate, e2e, nightly = [None if m in stopped else m for m in (generate, e2e, nightly)]
            tpch = None if args.no_tpch or not e2e else tpch_reference(sum(e2e["rows"].values()), work)
            summary = summarize(preset, e2e, generate, groups, tpch, nightly)
            if stopped:
                summary["stopped_for_memory"] = {m["mode"]: m["killed_at_rss_mb"] for m in stopped}
            summaries.append(summary)
            print_preset(summary, groups)
    finally:
        # Deleted at the end, not after each preset: on this kind of disk (ext4 without a journal) a
        # new file or folder skips the inodes deleted in the last minutes one by one, so a preset
        # written just after another was deleted paid for it (a folder 0.36 ms against 0.03 ms).
        if not args.keep_data:
            if args.work_dir:
                for preset in presets:
                    for mode in ("generate", "e2e"):
                        shutil.rmtree(data_dir_of(work, preset, mode), ignore_errors=True)
            else:
                shutil.rmtree(work, ignore_errors=True)
    info["load_average_end"] = list(os.getloadavg())
    if len(summaries) > 1:
        print("\nscaling (an ordinary day, cost per row should stay flat from preset to preset):")
        print("\n".join(scaling(summaries)))
    table = markdown_table(summaries, info, stamp)
    (results / "summary.json").write_text(json.dumps({"machine": info, "presets": summaries}, indent=1))
    (results / "latest.md").write_text(table + "\n")
    if args.write_docs:
        write_docs(table)
    print()
    for s in summaries:
        print(summary_line(s))
    # A missed target is a finding, not an error; a run that failed its checks is an error.
    return 1 if any(not s.get("e2e", {}).get("success", True) for s in summaries) else 0


if __name__ == "__main__":
    sys.exit(main())
