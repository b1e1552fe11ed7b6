"""The top-level instance and workspace files are the ones Dagster uses: `dagster-webserver -w
workspace.yaml` loads the code location on a free loopback port, and the installed dagster.yaml
is the top-level one, with storage under $DAGSTER_HOME whatever the working directory."""

import os
import subprocess
import sys
import textwrap

import yaml

from cluster_assets.cli.instance import INSTANCE_FILE
from tests.conftest import FIXTURES, ROOT
from tests.defs.test_webserver import DagsterDev
from tests.engines import wait_for


def test_workspace_yaml_loads_the_code_location(tmp_path):
    home = tmp_path / "home"
    subprocess.run([sys.executable, "-m", "cluster_assets.cli.instance", "--home", str(home)], check=True, cwd=tmp_path, timeout=60)
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "CLUSTER_ASSETS_SWEEP": str(FIXTURES / "sweep.yaml"),
        "CLUSTER_ASSETS_DATASETS": str(FIXTURES / "datasets.yaml"),
    }
    server = DagsterDev(env, tmp_path / "webserver.log", command=("dagster-webserver", "-w", "workspace.yaml"))
    try:
        wait_for(server.ready, 180, "dagster-webserver -w workspace.yaml to load the code location", interval=1)
        data = server.graphql(
            """{ workspaceOrError { ... on Workspace { locationEntries { name locationOrLoadError {
            ... on RepositoryLocation { repositories { assetNodes { assetKey { path } } } } } } } } }"""
        )
    finally:
        server.stop()
    [entry] = data["workspaceOrError"]["locationEntries"]
    assert entry["name"] == "cluster_assets"
    [repository] = entry["locationOrLoadError"]["repositories"]
    assets = {"/".join(node["assetKey"]["path"]) for node in repository["assetNodes"]}
    assert {"prompts", "sae", "activations", "clusters", "research_report"} <= assets, assets


CHECK_INSTANCE = textwrap.dedent("""
    import json, os
    import dagster as dg

    @dg.asset
    def probe() -> None:
        pass

    with dg.DagsterInstance.get() as instance:
        assert dg.materialize([probe], instance=instance).success
        print(json.dumps({
            "max_concurrent_runs": instance.get_concurrency_config().run_queue_config.max_concurrent_runs,
            "pool_limit": instance.get_concurrency_config().pool_config.default_pool_limit,
            "telemetry": instance.telemetry_enabled,
            "monitoring": instance.run_monitoring_enabled,
            "storage": instance.storage_directory(),
            "runs": len(instance.get_runs()),
        }))
""")


def test_the_top_level_dagster_yaml_is_the_instance(tmp_path):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "CLUSTER_ASSETS_POSTGRES_URL"} | {"DAGSTER_HOME": str(home)}
    subprocess.run([sys.executable, "-m", "cluster_assets.cli.instance"], check=True, cwd=elsewhere, env=env, timeout=60)
    top = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert INSTANCE_FILE == ROOT / "dagster.yaml"
    assert yaml.safe_load((home / "dagster.yaml").read_text()) == top  # installed as it is (sqlite: no storage key)

    done = subprocess.run([sys.executable, "-c", CHECK_INSTANCE], cwd=elsewhere, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    seen = yaml.safe_load(done.stdout.strip().splitlines()[-1])
    assert seen["max_concurrent_runs"] == top["concurrency"]["runs"]["max_concurrent_runs"]
    assert seen["pool_limit"] == top["concurrency"]["pools"]["default_limit"]
    assert seen["telemetry"] is top["telemetry"]["enabled"] and seen["monitoring"] is top["run_monitoring"]["enabled"]
    assert seen["storage"] == str(home / "storage") and seen["runs"] == 1
    assert (home / "storage" / "runs.db").exists() or any((home / "storage").iterdir())
    assert list(elsewhere.iterdir()) == []  # nothing written in the working directory


def test_postgres_switch_adds_storage_to_the_installed_copy(tmp_path):
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "CLUSTER_ASSETS_POSTGRES_URL": "postgresql+psycopg2://u@127.0.0.1:1/db"}
    subprocess.run([sys.executable, "-m", "cluster_assets.cli.instance"], check=True, cwd=tmp_path, env=env, timeout=60)
    installed = yaml.safe_load((tmp_path / "dagster.yaml").read_text())
    top = yaml.safe_load((ROOT / "dagster.yaml").read_text())
    assert installed == top | {"storage": {"postgres": {"postgres_url": {"env": "CLUSTER_ASSETS_POSTGRES_URL"}}}}
