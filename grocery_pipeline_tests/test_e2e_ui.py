"""End to end with the real parts: `dagster dev` (webserver and daemon) on 127.0.0.1 with a
temporary instance, a backfill launched through GraphQL exactly as the UI launches one, the
warehouse queried afterwards, the asset graph rendered in headless Chromium, and a second run with
a fault injected that the gates reject.

The screenshot of the asset graph is saved as `test-artifacts/asset-graph.png`.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from grocery_pipeline import checks
from grocery_pipeline.storage.catalog import query_catalog
from grocery_pipeline.tables import TABLES

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
DAYS = ["2025-01-01", "2025-01-02", "2025-01-03"]
LOCATION = "grocery_pipeline"
GROUPS = ("dimensions", "pricing", "sales", "delivery", "supply_chain")
STARTUP_SECONDS = 180
BACKFILL_SECONDS = 420
TERMINAL = {"COMPLETED", "COMPLETED_SUCCESS", "COMPLETED_FAILED", "FAILED", "CANCELED"}

# Keeps the UI free of first-visit dialogs and the runs quick to dequeue.
DAGSTER_YAML = """\
telemetry:
  enabled: false
nux:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class DagsterDev:
    """A running `dagster dev` and the GraphQL endpoint its UI talks to."""

    def __init__(self, url: str, data_dir: Path, process: subprocess.Popen, log: Path):
        self.url, self.data_dir, self.process, self.log = url, data_dir, process, log

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"{self.url}/graphql", data=body,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=60) as response:
            payload = json.loads(response.read())
        assert not payload.get("errors"), payload["errors"]
        return payload["data"]


def _wait_for_code_location(dev: DagsterDev) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    last = None
    while time.monotonic() < deadline:
        assert dev.process.poll() is None, f"dagster dev exited early; see {dev.log}"
        try:
            data = dev.graphql(WORKSPACE_QUERY)
            entries = data["workspaceOrError"]["locationEntries"]
            last = entries
            if entries and all(e["loadStatus"] == "LOADED" for e in entries):
                errors = [e for e in entries if e["locationOrLoadError"]["__typename"] != "RepositoryLocation"]
                assert not errors, errors
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(1)
    raise AssertionError(f"code location did not load in {STARTUP_SECONDS}s: {last}; see {dev.log}")


@pytest.fixture(scope="module")
def dagster_dev(tmp_path_factory):
    home = tmp_path_factory.mktemp("dagster_home")
    (home / "dagster.yaml").write_text(DAGSTER_YAML)
    data_dir = tmp_path_factory.mktemp("e2e") / "data"
    ARTIFACTS.mkdir(exist_ok=True)
    log = ARTIFACTS / "dagster-dev.log"
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GROCERY_")}
    env.update(DAGSTER_HOME=str(home), GROCERY_PRESET="tiny", GROCERY_DATA_DIR=str(data_dir),
               GROCERY_START_DATE=DAYS[0], GROCERY_END_DATE=DAYS[-1])
    dagster = Path(sys.executable).parent / "dagster"
    with open(log, "w") as out:
        process = subprocess.Popen(
            [str(dagster), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    dev = DagsterDev(f"http://127.0.0.1:{port}", data_dir, process, log)
    try:
        _wait_for_code_location(dev)
        yield dev
    finally:
        _stop(process)


def _stop(process: subprocess.Popen) -> None:
    """Stop dagster dev and everything it started (webserver, daemon, code servers, runs)."""
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass  # dagster dev can take longer than that to wind down; nothing it holds needs a clean exit
    except ProcessLookupError:
        return
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


# -- GraphQL, as the UI sends it ------------------------------------------------------------------

WORKSPACE_QUERY = """
query Workspace { workspaceOrError { __typename ... on Workspace {
  locationEntries { name loadStatus locationOrLoadError { __typename ... on PythonError { message } } } } } }
"""

ASSET_NODES_QUERY = """
query AssetNodes { assetNodes { assetKey { path } isMaterializable isPartitioned groupName
  repository { location { name } }
  partitionStats { numMaterialized numPartitions numFailed numMaterializing } } }
"""

LAUNCH_BACKFILL_MUTATION = """
mutation LaunchPartitionBackfill($backfillParams: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $backfillParams) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message stack }
    ... on PartitionSetNotFoundError { message }
    ... on UnauthorizedError { message }
    ... on InvalidSubsetError { message }
  }
}
"""

BACKFILL_QUERY = """
query Backfill($backfillId: String!) { partitionBackfillOrError(backfillId: $backfillId) {
  __typename ... on PartitionBackfill { id status isAssetBackfill numPartitions }
  ... on PythonError { message } } }
"""

RUNS_QUERY = """
query BackfillRuns($filter: RunsFilter) { runsOrError(filter: $filter) { __typename
  ... on Runs { results { runId status tags { key value } } } } }
"""

CHECKS_QUERY = """
query Checks { assetNodes { assetKey { path } isMaterializable repository { location { name } }
  assetChecksOrError { __typename ... on AssetChecks { checks { name blocking
    executionForLatestMaterialization { runId status evaluation { success severity
      metadataEntries { label ... on IntMetadataEntry { intValue } } } } } } } } }
"""

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($assetKey: AssetKeyInput!, $checkName: String!) {
  assetCheckExecutions(assetKey: $assetKey, checkName: $checkName, limit: 25) {
    runId status partition evaluation { success severity
      metadataEntries { label ... on IntMetadataEntry { intValue } ... on JsonMetadataEntry { jsonString } } } } }
"""

PARTITION_STATUS_QUERY = """
query PartitionStatus($assetKeys: [AssetKeyInput!]) { assetNodes(assetKeys: $assetKeys) {
  assetKey { path } partitionStats { numMaterialized numFailed numPartitions }
  assetPartitionStatuses { __typename ... on TimePartitionStatuses { ranges { status startKey endKey } } } } }
"""

MATERIALIZATIONS_QUERY = """
query Materializations($assetKey: AssetKeyInput!, $partitions: [String!]) { assetOrError(assetKey: $assetKey) {
  __typename ... on Asset { assetMaterializations(partitions: $partitions) { runId partition } } } }
"""


LAUNCH_RUN_MUTATION = """
mutation LaunchPipelineExecution($executionParams: ExecutionParams!) {
  launchPipelineExecution(executionParams: $executionParams) {
    __typename
    ... on LaunchRunSuccess { run { runId status } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""

RUN_QUERY = """
query Run($runId: ID!) { runOrError(runId: $runId) { __typename ... on Run { status } } }
"""


def _wait_for_run(dev: DagsterDev, run_id: str) -> str:
    deadline = time.monotonic() + BACKFILL_SECONDS
    while time.monotonic() < deadline:
        status = dev.graphql(RUN_QUERY, {"runId": run_id})["runOrError"]["status"]
        if status in ("SUCCESS", "FAILURE", "CANCELED"):
            return status
        time.sleep(2)
    raise AssertionError(f"run {run_id} still running after {BACKFILL_SECONDS}s")


def _launch_backfill(dev: DagsterDev, params: dict) -> str:
    result = dev.graphql(LAUNCH_BACKFILL_MUTATION, {"backfillParams": params})["launchPartitionBackfill"]
    assert result["__typename"] == "LaunchBackfillSuccess", result
    return result["backfillId"]


def _wait_for_backfill(dev: DagsterDev, backfill_id: str) -> dict:
    deadline = time.monotonic() + BACKFILL_SECONDS
    while time.monotonic() < deadline:
        backfill = dev.graphql(BACKFILL_QUERY, {"backfillId": backfill_id})["partitionBackfillOrError"]
        assert backfill["__typename"] == "PartitionBackfill", backfill
        if backfill["status"] in TERMINAL:
            return backfill
        time.sleep(2)
    raise AssertionError(f"backfill {backfill_id} still running after {BACKFILL_SECONDS}s; see the daemon log")


def _backfill_runs(dev: DagsterDev, backfill_id: str) -> list[dict]:
    data = dev.graphql(RUNS_QUERY, {"filter": {"tags": [{"key": "dagster/backfill", "value": backfill_id}]}})
    return data["runsOrError"]["results"]


def _ours(node: dict) -> bool:
    """An asset of this project's code location (the workspace may hold others, e.g. dbt)."""
    return node["repository"]["location"]["name"] == LOCATION and node["assetKey"]["path"][0] == "grocery"


def _materializable(dev: DagsterDev) -> list[dict]:
    return [n for n in dev.graphql(ASSET_NODES_QUERY)["assetNodes"] if n["isMaterializable"] and _ours(n)]


def _lake_state(data_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(data_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(data_dir.rglob("*")) if p.is_file()}


# -- the tests, in the order a user would go --------------------------------------------------------

@pytest.fixture(scope="module")
def backfilled(dagster_dev):
    """'Materialize all' over the first three days, exactly as the UI launches it for assets with
    different partitions definitions (daily tables and finer price ticks): every materializable
    asset, all partitions (the code location is bounded to three days by GROCERY_END_DATE)."""
    dev = dagster_dev
    assets = _materializable(dev)
    started = time.monotonic()
    backfill_id = _launch_backfill(dev, {
        "assetSelection": [{"path": n["assetKey"]["path"]} for n in assets],
        "allPartitions": True, "tags": [], "title": "first three days",
    })
    backfill = _wait_for_backfill(dev, backfill_id)
    print(f"backfill {backfill_id}: {backfill['status']} in {time.monotonic() - started:.0f}s")
    return backfill_id, backfill, assets


def test_backfill_materializes_every_partition_of_every_asset(dagster_dev, backfilled):
    backfill_id, backfill, assets = backfilled
    runs = _backfill_runs(dagster_dev, backfill_id)
    assert backfill["status"] in ("COMPLETED_SUCCESS", "COMPLETED"), (backfill, runs)
    assert runs and all(r["status"] == "SUCCESS" for r in runs), runs
    assert {tuple(n["assetKey"]["path"]) for n in assets} >= {("grocery", t) for t in TABLES}
    for node in _materializable(dagster_dev):
        stats = node["partitionStats"]
        assert stats["numPartitions"] > 0, node
        assert stats["numMaterialized"] == stats["numPartitions"] and stats["numFailed"] == 0, node
        if TABLES[node["assetKey"]["path"][1]].partitioning == "daily":
            assert stats["numPartitions"] == len(DAYS), node


def test_every_check_passed_on_the_backfilled_partitions(dagster_dev, backfilled):
    backfill_id, _, _ = backfilled
    run_ids = {r["runId"] for r in _backfill_runs(dagster_dev, backfill_id)}
    expected = {(a.table, a.name) for a in checks.all_audits()}
    seen = set()
    for node in dagster_dev.graphql(CHECKS_QUERY)["assetNodes"]:
        if not (node["isMaterializable"] and _ours(node)):
            continue
        table = node["assetKey"]["path"][1]
        assert node["assetChecksOrError"]["__typename"] == "AssetChecks", node
        for check in node["assetChecksOrError"]["checks"]:
            if (table, check["name"]) not in expected:
                continue  # e.g. dbt source tests shown on the same asset by another code location
            execution = check["executionForLatestMaterialization"]
            name = f"{table}:{check['name']}"
            assert execution is not None, f"{name} never ran"
            assert execution["runId"] in run_ids, name
            assert execution["status"] == "SUCCEEDED" and execution["evaluation"]["success"], (name, execution)
            labels = {m["label"] for m in execution["evaluation"]["metadataEntries"]}
            assert {"offending_rows", "sample_keys"} <= labels, name
            if TABLES[table].group != "pricing":  # the pricing assets file their checks their own way
                _assert_filed_under_each_day(dagster_dev, node["assetKey"], check["name"], run_ids)
            seen.add((table, check["name"]))
    assert seen == expected, sorted(expected - seen)


def _assert_filed_under_each_day(dev: DagsterDev, asset: dict, check_name: str, run_ids: set[str]) -> None:
    """The backfill ran the days as one range, and still each day's result sits under that day."""
    executions = dev.graphql(CHECK_EXECUTIONS_QUERY, {"assetKey": {"path": asset["path"]},
                                                      "checkName": check_name})["assetCheckExecutions"]
    by_day = {e["partition"]: e["status"] for e in executions if e["runId"] in run_ids and e["partition"]}
    assert by_day == {day: "SUCCEEDED" for day in DAYS}, (asset["path"], check_name, by_day)


def test_warehouse_answers_queries_after_the_backfill(dagster_dev, backfilled):
    warehouse = dagster_dev.data_dir / "warehouse.duckdb"
    for table in TABLES.values():
        dates = query_catalog(warehouse, f"select distinct business_date::varchar as d from grocery.{table.name}")
        assert set(dates["d"].to_list()) <= set(DAYS), table.name
    days = query_catalog(warehouse, """
        with sales as (select r.business_date::varchar as day, count(distinct r.receipt_id) as receipts,
                              sum(l.line_total) as lines_total
                       from grocery.receipts r join grocery.receipt_lines l using (receipt_id) group by 1),
             subtotals as (select business_date::varchar as day, sum(subtotal) as subtotal
                           from grocery.receipts group by 1),
             deliveries as (select business_date::varchar as day, count(*) as orders from grocery.orders group by 1)
        select * from sales join subtotals using (day) join deliveries using (day) order by day""")
    assert days["day"].to_list() == DAYS
    assert (days["receipts"] > 0).all() and (days["orders"] > 0).all()
    assert ((days["lines_total"] - days["subtotal"]).abs() < 0.01).all()
    assert query_catalog(warehouse, "select count(*) as n from grocery.calendar")["n"][0] == len(DAYS)


def _chromium(tmp_path: Path, url: str, *action: str, window: str = "1600,1000") -> subprocess.CompletedProcess:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    assert browser, "chromium is not installed (.ci/run installs it with apt)"
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-dev-shm-usage",
         f"--user-data-dir={tmp_path / 'chromium'}", f"--window-size={window}", "--virtual-time-budget=15000",
         *action, url], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def _group_page(dev: DagsterDev, group: str) -> str:
    return f"{dev.url}/locations/__repository__@{LOCATION}/asset-groups/{group}/lineage"


def test_asset_graph_renders_in_headless_chromium(dagster_dev, backfilled, tmp_path):
    """Every table's node renders on its group's asset graph; screenshots of the global lineage
    and of the dimensions graph are kept in test-artifacts/."""
    rendered = set()
    for group in GROUPS:
        expected = {t.name for t in TABLES.values() if t.group == group}
        for _ in range(3):  # on a busy machine the page may not have drawn its graph within the time budget
            # the graph draws only the nodes in view: a tall window puts a whole group in view
            dom = _chromium(tmp_path, _group_page(dagster_dev, group), "--dump-dom", window="1600,9000").stdout
            found = {name for name in expected if f">{name}<" in dom}
            if found == expected:
                break
        rendered |= found
    assert rendered == set(TABLES), sorted(set(TABLES) - rendered)
    for name, url in (("asset-graph.png", f"{dagster_dev.url}/asset-groups"),
                      ("asset-graph-dimensions.png", _group_page(dagster_dev, "dimensions"))):
        shot = ARTIFACTS / name
        shot.unlink(missing_ok=True)
        _chromium(tmp_path, url, f"--screenshot={shot}")
        assert shot.is_file() and shot.stat().st_size > 20_000, name


def test_a_fault_is_rejected_by_its_check_and_leaves_the_partition_unpublished(dagster_dev, backfilled):
    """Re-materialize one published partition with a fault injected through the launchpad's run
    config (resource `grocery`, field `faults`), as the UI launches a single partition: the check
    fails, the run fails, the partition shows as failed, and the lake is untouched."""
    dev = dagster_dev
    customers = {"path": ["grocery", "customers"]}
    names = [a.name for a in checks.audits_for("customers")]
    before = _lake_state(dev.data_dir)
    launched = dev.graphql(LAUNCH_RUN_MUTATION, {"executionParams": {
        "selector": {"repositoryLocationName": LOCATION, "repositoryName": "__repository__",
                     "pipelineName": "__ASSET_JOB", "assetSelection": [customers],
                     "assetCheckSelection": [{"assetKey": customers, "name": n} for n in names]},
        "runConfigData": {"resources": {"grocery": {"config": {"faults": "duplicate_key"}}}},
        "mode": "default",
        "executionMetadata": {"tags": [{"key": "dagster/partition", "value": DAYS[0]}]},
    }})["launchPipelineExecution"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]
    assert _wait_for_run(dev, run_id) == "FAILURE"

    executions = dev.graphql(CHECK_EXECUTIONS_QUERY, {"assetKey": customers, "checkName": "customers_keys_unique"})
    evaluated = [e for e in executions["assetCheckExecutions"] if e["runId"] == run_id and e["evaluation"]]
    assert evaluated, executions
    for execution in evaluated:
        assert execution["status"] == "FAILED" and not execution["evaluation"]["success"], execution
        assert execution["partition"] == DAYS[0]  # a one-partition run files the result under its partition
        assert execution["evaluation"]["severity"] == "ERROR"
        metadata = {m["label"]: m for m in execution["evaluation"]["metadataEntries"]}
        assert metadata["offending_rows"]["intValue"] == 2  # the customer and its duplicate
        assert json.loads(metadata["sample_keys"]["jsonString"])

    status = dev.graphql(PARTITION_STATUS_QUERY, {"assetKeys": [customers]})["assetNodes"][0]
    failed = [r for r in status["assetPartitionStatuses"]["ranges"] if r["status"] == "FAILED"]
    assert [(r["startKey"], r["endKey"]) for r in failed] == [(DAYS[0], DAYS[0])], status
    materializations = dev.graphql(MATERIALIZATIONS_QUERY, {"assetKey": customers, "partitions": [DAYS[0]]})
    assert run_id not in {m["runId"] for m in materializations["assetOrError"]["assetMaterializations"]}
    assert _lake_state(dev.data_dir) == before
