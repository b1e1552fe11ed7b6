"""End to end through the deployed stack: `dg dev` (webserver + daemon, the `make ui` command) on a
temporary instance and a free port; a backfill of two partitions launched through GraphQL; automation
bringing the comparisons and the report up to date; sensor ticks.  Everything started is stopped."""

import json
import os
import signal
import subprocess
import urllib.request

import pytest

from cluster_assets.cli.instance import write_instance_config
from cluster_assets.defs.pipeline import partition_chain
from tests.conftest import FIXTURES, ROOT, Graph, fixture_project, tiny_resources, write_tiny_resources
from tests.engines import free_port, wait_for

CHAIN = list(partition_chain())
PARTITIONS = ["kjv|base", "python_stdlib|base"]
LOCATION = {"repositoryLocationName": "cluster_assets", "repositoryName": "__repository__"}


class DagsterDev:
    """`dg dev --host 127.0.0.1 --port <free>` (or another of the venv's commands serving the UI, e.g.
    ``("dagster-webserver", "-w", "workspace.yaml")``) in the repository, its own process group."""

    def __init__(self, env: dict, log_path, command: tuple[str, ...] = ("dg", "dev")):
        self.port = free_port()
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [str(ROOT / ".venv" / "bin" / command[0]), *command[1:], "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def graphql(self, query: str, variables: dict | None = None) -> dict:
        body = json.dumps({"query": query, "variables": variables or {}}).encode()
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}/graphql", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            out = json.loads(response.read())
        assert "errors" not in out, out["errors"]
        return out["data"]

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            pytest.fail(f"{self.proc.args[0]} exited with {self.proc.returncode}")
        try:
            data = self.graphql("{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError { __typename } } } } }")
        except OSError:
            return False
        entries = data["workspaceOrError"]["locationEntries"]
        return bool(entries) and entries[0]["locationOrLoadError"]["__typename"] == "RepositoryLocation"

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=30)
        finally:
            self.log.close()


def _materializations(dev: DagsterDev, asset: str) -> dict:
    data = dev.graphql(
        """query($path: [String!]!) { assetOrError(assetKey: {path: $path}) { __typename
        ... on Asset { assetMaterializations(limit: 50) { partition metadataEntries { label __typename
            ... on IntMetadataEntry { intValue } ... on TextMetadataEntry { text } ... on BoolMetadataEntry { boolValue } } } } } }""",
        {"path": [asset]},
    )["assetOrError"]
    if data["__typename"] != "Asset":
        return {}
    return {
        m["partition"]: {e["label"]: e.get("intValue", e.get("text", e.get("boolValue"))) for e in m["metadataEntries"]}
        for m in data["assetMaterializations"]
    }


def test_backfill_automation_and_sensors_through_the_webserver(tmp_path, embedded_cache):
    home, artifacts = tmp_path / "home", tmp_path / "artifacts"
    write_instance_config(home, postgres=False)
    # the code location's resources: the tiny SAE, the test's artifact root
    settings = write_tiny_resources(tmp_path / "resources.yaml", artifacts)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CLUSTER_ASSETS_SWEEP": str(FIXTURES / "sweep.yaml"),
        "CLUSTER_ASSETS_DATASETS": str(FIXTURES / "datasets.yaml"),
        "CLUSTER_ASSETS_RESOURCES": str(settings),
        "VIRTUAL_ENV": str(ROOT / ".venv"),
        "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
    }
    from tests.defs.test_faults import open_instance

    with open_instance(home) as instance:  # the shared SAE first, on the same instance and artifact root
        assert Graph(fixture_project(), tiny_resources(artifacts), instance).sae().success
    dev = DagsterDev(env, tmp_path / "dg-dev.log")
    try:
        wait_for(dev.ready, 180, "the webserver to load the code location", interval=1)
        launched = dev.graphql(
            """mutation($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
            __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }""",
            {"params": {"partitionNames": PARTITIONS, "assetSelection": [{"path": [a]} for a in CHAIN], "fromFailure": False}},
        )
        result = launched["launchPartitionBackfill"]
        assert result["__typename"] == "LaunchBackfillSuccess", result

        def backfill_done():
            status = dev.graphql(
                "query($id: String!) { partitionBackfillOrError(backfillId: $id) { ... on PartitionBackfill { status } } }",
                {"id": result["backfillId"]},
            )["partitionBackfillOrError"]["status"]
            assert status not in ("FAILED", "CANCELED", "COMPLETED_FAILED"), f"backfill {status}; see {tmp_path / 'dg-dev.log'}"
            return status in ("COMPLETED", "COMPLETED_SUCCESS")

        wait_for(backfill_done, 420, "the backfill of two partitions", interval=2)
        clusters = _materializations(dev, "clusters")
        assert set(PARTITIONS) <= set(clusters)
        for partition in PARTITIONS:
            assert clusters[partition]["k"] > 0 and clusters[partition]["artifact"].startswith("clusters/")

        # automation: comparisons reading the new clusters, then the report, with no run requested by hand
        def answers_current():
            return _materializations(dev, "research_report") and {"kjv", "python_stdlib"} <= set(_materializations(dev, "sweep_comparison"))

        wait_for(answers_current, 300, "automation to bring the comparisons and the report up to date", interval=3)
        assert "base" in _materializations(dev, "dataset_comparison")
        report = next(iter(_materializations(dev, "research_report").values()))
        assert report["artifact"].startswith("research_report/")

        for sensor in ("sweep_files_sensor", "dead_run_sensor"):  # running, ticking, and no tick failed
            state = dev.graphql(
                """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
                ... on Sensor { sensorState { status ticks(limit: 20) { status error { message } } } } } }""",
                {"selector": {**LOCATION, "sensorName": sensor}},
            )["sensorOrError"]["sensorState"]
            assert state["status"] == "RUNNING" and state["ticks"], (sensor, state)
            assert all(t["status"] in ("SUCCESS", "SKIPPED") for t in state["ticks"]), (sensor, state["ticks"])
        runs = dev.graphql("{ runsOrError { ... on Runs { results { status tags { key value } } } } }")["runsOrError"]["results"]
        automated = [
            r for r in runs if any(t["key"] == "dagster/automation_condition" or t["key"] == "dagster/sensor_name" for t in r["tags"])
        ]
        # automation may already be refreshing an answer again (a later partition's clusters landed): such a
        # run is still going, not failed; every finished one succeeded
        finished = [r["status"] for r in automated if r["status"] not in ("QUEUED", "NOT_STARTED", "STARTING", "STARTED")]
        assert finished and set(finished) == {"SUCCESS"}, [r["status"] for r in automated]
    finally:
        dev.stop()
    assert dev.proc.poll() is not None
