"""The production instance holds under parallel runs: PostgreSQL storage, the queued run coordinator
and pools from deploy/dagster.yaml, the real daemon and webserver, one run per partition with
several at once, and partitions identical to a sequential reference generation.

How parallel runs stay correct: a dimension's self-dependency keeps ids continuous, but its
generator never reads its own earlier partitions (ids come from (seed, date)); it reads its
upstream tables as of the day. So the runs go layer by layer through the asset graph: every
partition of a layer runs as its own run, at once, once the layers above are published. A chain
that does read its own yesterday (outside the dimensions) runs oldest first in a single run.
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
import urllib.request
from datetime import date, datetime, time as clock, timedelta
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from grocery_pipeline.runner import RANGE_END, RANGE_START
from grocery_pipeline.settings import PROJECT_ROOT
from grocery_pipeline.tables import TABLES
from grocery_pipeline_tests.test_deploy_support import (
    BIN, assert_same_partitions, child_env, free_port, generate_reference, start_process, stop_process)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

START = date(2025, 1, 1)
DAYS = 6
END = START + timedelta(days=DAYS - 1)
LOCATION = "grocery_pipeline"
IN_PROCESS = {"execution": {"config": {"in_process": {}}}}
STORAGE_OR_LOCK_ERROR = re.compile(
    r"database is locked|could not set lock|conflicting lock|deadlock detected|could not serialize|"
    r"OperationalError|IntegrityError|UniqueViolation|sqlalchemy\.exc|psycopg2\.errors|IOException",
    re.IGNORECASE)
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


# -- PostgreSQL ----------------------------------------------------------------------------------
def _pg_bin(name: str) -> str:
    for directory in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (directory / name).is_file():
            return str(directory / name)
    found = shutil.which(name)
    if not found:
        pytest.fail(f"PostgreSQL's {name} is not installed (.ci/run installs the postgresql package)")
    return found


def _as_postgres_user(args: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: run it as the `postgres` system user when we are root."""
    return ["runuser", "-u", "postgres", "--", *args] if os.geteuid() == 0 else args


@pytest.fixture(scope="module")
def postgres_url():
    import psycopg2

    root = Path(tempfile.mkdtemp(prefix="grocery-pg-"))
    if os.geteuid() == 0:
        user = pwd.getpwnam("postgres")
        os.chown(root, user.pw_uid, user.pw_gid)
    data, port = root / "data", free_port()
    subprocess.run(_as_postgres_user([_pg_bin("initdb"), "-D", str(data), "-U", "dagster", "-A", "trust",
                                      "-E", "UTF8", "--no-locale", "--no-sync"]),
                   check=True, capture_output=True)
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(root / "server.log"),
                                      "-w", "-t", "60", "-o", options, "start"]), check=True, capture_output=True)
    try:
        conn = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", dbname="postgres")
        conn.autocommit = True
        conn.cursor().execute("CREATE DATABASE dagster")
        conn.close()
        yield f"postgresql+psycopg2://dagster@127.0.0.1:{port}/dagster", root / "server.log"
    finally:
        subprocess.run(_as_postgres_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


# -- the daemon and webserver on the production instance -----------------------------------------
def _graphql(port: int, query: str) -> dict:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", data=json.dumps({"query": query}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def _wait_for_code_location(port: int, web: subprocess.Popen, timeout: float = 180) -> None:
    query = ("{ workspaceOrError { ... on Workspace { locationEntries { name loadStatus "
             "locationOrLoadError { __typename ... on PythonError { message } } } } } }")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert web.poll() is None, "the webserver exited; see its log"
        try:
            entries = _graphql(port, query)["data"]["workspaceOrError"].get("locationEntries") or []
        except OSError:
            entries = []
        for entry in entries:
            if entry["name"] == LOCATION and entry["loadStatus"] == "LOADED":
                error = entry["locationOrLoadError"] or {}
                assert error.get("__typename") != "PythonError", f"code location failed to load: {error}"
                return
        time.sleep(1)
    pytest.fail(f"code location {LOCATION} did not load within {timeout:.0f}s")


@pytest.fixture(scope="module")
def production(postgres_url, tmp_path_factory):
    """deploy/dagster.yaml as shipped, with the daemon and webserver running against it."""
    url, pg_log = postgres_url
    base = tmp_path_factory.mktemp("deploy")
    home, data, logs = base / "dagster_home", base / "data", base / "logs"
    home.mkdir(), logs.mkdir()
    shutil.copy(PROJECT_ROOT / "deploy" / "dagster.yaml", home / "dagster.yaml")
    env = child_env(DAGSTER_HOME=str(home), DAGSTER_PG_URL=url, GROCERY_PRESET="tiny",
                    GROCERY_DATA_DIR=str(data), GROCERY_START_DATE=START.isoformat(),
                    GROCERY_END_DATE=END.isoformat())
    # only the pipeline's code location: the dbt location is not what is under test here
    workspace = base / "workspace.yaml"
    workspace.write_text(f"load_from:\n  - python_module:\n      module_name: grocery_pipeline.definitions\n"
                         f"      location_name: {LOCATION}\n      working_directory: {PROJECT_ROOT}\n")
    port = free_port()
    daemon = start_process([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, logs / "daemon.log")
    web = start_process([str(BIN / "dagster-webserver"), "-w", str(workspace), "-h", "127.0.0.1",
                         "-p", str(port)], env, logs / "webserver.log")
    mp = pytest.MonkeyPatch()
    mp.setenv("DAGSTER_PG_URL", url)
    try:
        _wait_for_code_location(port, web)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            # As a deployment does once (docs/deployment.md): create every pool with its limit up
            # front. Dagster creates a default-limit pool lazily on its first claim, and two runs
            # claiming a brand-new pool in the same instant can both get a slot.
            for pool in sorted({pool for a in _materializable() for pool in a.node_def.pools}):
                instance.event_log_storage.set_concurrency_slots(pool, 1)
            yield {"port": port, "instance": instance, "data": data, "home": home,
                   "logs": [logs / "daemon.log", logs / "webserver.log", pg_log]}
    finally:
        for proc in (web, daemon):
            stop_process(proc)
        mp.undo()


# -- the plan: layers of the asset graph, one run per partition ----------------------------------
def _materializable():
    from grocery_pipeline.definitions import ALL_ASSETS

    return [a for a in ALL_ASSETS if isinstance(a, dg.AssetsDefinition) and a.is_materializable and a.keys]


def _reads_own_history(asset: dg.AssetsDefinition) -> bool:
    """A self-dependent asset outside the dimensions is taken to read its own yesterday."""
    own = set(asset.keys)
    self_dependent = any(d.asset_key in own for spec in asset.specs for d in spec.deps)
    return self_dependent and any(spec.group_name != "dimensions" for spec in asset.specs)


def launch_layers() -> list[list[tuple[list[dg.AssetKey], list[str] | tuple[str, str]]]]:
    """Per layer, the runs to launch: (asset keys, single partitions or a (first, last) range).

    Daily assets that do not read their own history can run one partition at a time, in any order;
    those of them that others read as of the day (the feeders) run first, oldest first, in one run.
    The rest run as a layer per dependency level: one run per partition for the daily assets that
    may run out of order, one run over the whole window for each chain and finer-grained asset.
    """
    from grocery_pipeline.partitions import DAILY

    assets = {a.node_def.name: a for a in _materializable()}
    owner = {key: name for name, a in assets.items() for key in a.keys}
    parents = {name: {owner[d.asset_key] for spec in a.specs for d in spec.deps if d.asset_key in owner} - {name}
               for name, a in assets.items()}
    out_of_order = {n for n, a in assets.items() if a.partitions_def == DAILY and not _reads_own_history(a)}
    feeders = {n for n in out_of_order if any(n in parents[child] for child in out_of_order)}
    window = dg.TimeWindow(datetime.combine(START, clock()), datetime.combine(END + timedelta(days=1), clock()))

    def keys_of(names):
        return [k for n in sorted(names) for k in assets[n].keys]

    layers = [[(keys_of(feeders), (START.isoformat(), END.isoformat()))]] if feeders else []
    done = set(feeders)
    while len(done) < len(assets):
        ready = sorted(n for n in assets if n not in done and parents[n] <= done)
        assert ready, f"the asset graph has a cycle among {sorted(set(assets) - done)}"
        runs = []  # the long range runs first, so the queue starts them first
        for name in ready:
            if name not in out_of_order:
                keys = assets[name].partitions_def.get_partition_keys_in_time_window(window)
                runs.append((keys_of([name]), (keys[0], keys[-1])))
        if parallel := [n for n in ready if n in out_of_order]:
            runs.append((keys_of(parallel), DAILY.get_partition_keys_in_time_window(window)))
        layers.append(runs)
        done |= set(ready)
    return layers


def _submit(port: int, keys: list[dg.AssetKey], tags: dict[str, str]) -> str:
    from dagster_graphql import DagsterGraphQLClient

    client = DagsterGraphQLClient("127.0.0.1", port_number=port)
    return client.submit_job_execution("__ASSET_JOB", repository_location_name=LOCATION,
                                       repository_name="__repository__", run_config=IN_PROCESS,
                                       tags=tags, asset_selection=keys)


def _wait_for_runs(instance: dg.DagsterInstance, run_ids: list[str], timeout: float = 300) -> list[dg.RunRecord]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        records = instance.get_run_records(dg.RunsFilter(run_ids=run_ids))
        if len(records) == len(run_ids) and all(r.dagster_run.status in FINISHED for r in records):
            return records
        time.sleep(1)
    states = {r.dagster_run.run_id[:8]: r.dagster_run.status.value
              for r in instance.get_run_records(dg.RunsFilter(run_ids=run_ids))}
    pytest.fail(f"runs did not finish within {timeout:.0f}s: {states}")


def _most_at_once(records: list[dg.RunRecord]) -> int:
    edges = sorted([(r.start_time, 1) for r in records] + [(r.end_time, -1) for r in records],
                   key=lambda e: (e[0], e[1]))
    running = best = 0
    for _, step in edges:
        running += step
        best = max(best, running)
    return best


def _step_intervals(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    started, ended = {}, {}
    for entry in instance.all_logs(run_id, of_type={dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_SUCCESS,
                                                    dg.DagsterEventType.STEP_FAILURE}):
        event = entry.dagster_event
        (started if event.event_type == dg.DagsterEventType.STEP_START else ended)[event.step_key] = entry.timestamp
    return {step: (started[step], ended[step]) for step in started if step in ended}


def _failures(instance: dg.DagsterInstance, run_id: str) -> list[str]:
    out = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        text = " ".join(filter(None, [entry.user_message, event.message if event else None,
                                      str(event.event_specific_data) if event and event.is_failure else None]))
        if (event is not None and event.is_failure) or STORAGE_OR_LOCK_ERROR.search(text):
            out.append(f"{run_id[:8]} {event.event_type_value if event else 'log'}: {text[:1500]}")
    return out


# -- the test ------------------------------------------------------------------------------------
def test_parallel_partition_runs_on_the_production_instance_match_a_sequential_generation(
        production, tmp_path, monkeypatch):
    instance, port = production["instance"], production["port"]
    reference = tmp_path / "reference"
    monkeypatch.setenv("GROCERY_PRESET", "tiny")
    monkeypatch.delenv("GROCERY_FAULTS", raising=False)
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    generate_reference(reference, START, END, monkeypatch)
    assert instance.get_concurrency_config().pool_config.default_pool_limit == 1
    assert instance.run_coordinator.__class__.__name__ == "QueuedRunCoordinator"

    records: list[dg.RunRecord] = []
    per_partition_layers = 0
    for runs in launch_layers():
        run_ids = []
        for keys, partitions in runs:
            if isinstance(partitions, tuple):
                run_ids.append(_submit(port, keys, {RANGE_START: partitions[0], RANGE_END: partitions[1]}))
            else:
                per_partition_layers += 1
                run_ids += [_submit(port, keys, {"dagster/partition": p}) for p in partitions]
        layer = _wait_for_runs(instance, run_ids)
        failed = [r.dagster_run.run_id for r in layer if r.dagster_run.status != dg.DagsterRunStatus.SUCCESS]
        assert not failed, [f for run_id in failed for f in _failures(instance, run_id)][:10]
        records += layer

    assert per_partition_layers >= 1
    one_partition_runs = [r for r in records if "dagster/partition" in r.dagster_run.tags]
    assert len({r.dagster_run.tags["dagster/partition"] for r in one_partition_runs}) >= DAYS
    assert _most_at_once(records) >= 2, "the queued coordinator never ran two runs at once"

    # pools: no two runs ever worked the same state chain at the same moment
    pooled = {a.node_def.name for a in _materializable() if a.node_def.pools}
    assert pooled, "no asset is in a pool"
    spans: dict[str, list[tuple[float, float]]] = {}
    for record in records:
        for step, span in _step_intervals(instance, record.dagster_run.run_id).items():
            if step in pooled:
                spans.setdefault(step, []).append(span)
    for step, intervals in spans.items():
        intervals.sort()
        overlaps = [(a, b) for a, b in zip(intervals, intervals[1:]) if b[0] < a[1]]
        assert not overlaps, f"two runs executed pooled step {step} at once"

    problems = [f for r in records for f in _failures(instance, r.dagster_run.run_id)]
    for log in production["logs"]:
        problems += [f"{log.name}: {line[:300]}" for line in log.read_text(errors="replace").splitlines()
                     if STORAGE_OR_LOCK_ERROR.search(line)]
    assert not problems, problems[:10]

    compared = assert_same_partitions(production["data"] / "lake", reference / "lake")
    daily_tables = [t for t in TABLES.values() if t.partitioning == "daily"
                    and (reference / "lake" / t.name).is_dir()]
    assert compared >= DAYS * len(daily_tables) > 0

    with duckdb.connect(str(production["data"] / "warehouse.duckdb"), read_only=True) as parallel, \
            duckdb.connect(str(reference / "warehouse.duckdb"), read_only=True) as sequential:
        views = sorted(r[0] for r in sequential.execute(
            "select view_name from duckdb_views() where schema_name = 'grocery'").fetchall())
        assert views
        for view in views:
            count = f'select count(*) from grocery."{view}"'
            assert parallel.execute(count).fetchone() == sequential.execute(count).fetchone(), view
