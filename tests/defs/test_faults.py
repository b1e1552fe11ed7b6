"""Faults lose nothing and lie about nothing: real processes, a real killed run, a real PostgreSQL."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pytest

from cluster_assets.cli.instance import POSTGRES_ENV, write_instance_config
from cluster_assets.defs.instance import PROCESS_TAG
from tests.conftest import FIXTURES, ROOT, Graph, fixture_project, tiny_resources
from tests.engines import PostgresServer, wait_for

MATERIALIZE = textwrap.dedent("""
    import sys
    import dagster as dg
    from tests.conftest import Graph, fixture_project, tiny_resources
    graph = Graph(fixture_project(), tiny_resources(sys.argv[1]), dg.DagsterInstance.get())
    result = graph.materialize(sys.argv[2].split(","), graph.key(sys.argv[3], sys.argv[4]))
    print("run", result.run_id, result.success, flush=True)
""")


def open_instance(home: Path) -> dg.DagsterInstance:
    """The persistent instance whose dagster.yaml is in ``home`` (as a process with DAGSTER_HOME=home opens it)."""
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _env(home: Path, **extra) -> dict:
    return {**os.environ, "DAGSTER_HOME": str(home), "PYTHONPATH": str(ROOT), **extra}


def _materialize(home, root, assets, dataset="kjv", hparams="base", timeout=300, cwd=ROOT, **env):
    return subprocess.run(
        [sys.executable, "-c", MATERIALIZE, str(root), ",".join(assets), dataset, hparams],
        cwd=cwd,
        env=_env(home, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def trained_root(tmp_path_factory, embedded_cache, project):
    """An artifact root holding the tiny SAE, shared by the subprocesses."""
    root = tmp_path_factory.mktemp("shared_artifacts")
    with dg.DagsterInstance.ephemeral() as instance:
        assert Graph(project, tiny_resources(root), instance).sae().success
    return root


def test_runs_land_under_dagster_home_from_another_directory(tmp_path, trained_root):
    home, elsewhere = tmp_path / "home", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_instance_config(home, postgres=False)
    done = _materialize(home, trained_root, ["prompts"], cwd=elsewhere)
    assert done.returncode == 0 and " True" in done.stdout, done.stderr[-2000:]
    assert (home / "history" / "runs.db").exists() and not (elsewhere / "storage").exists()
    assert list(elsewhere.iterdir()) == []
    with open_instance(home) as instance:
        assert instance.get_runs_count() == 1


def test_a_killed_run_releases_the_model_pool(tmp_path, trained_root, project):
    home = tmp_path / "home"
    write_instance_config(home, postgres=False)
    proc = subprocess.Popen(
        [sys.executable, "-c", MATERIALIZE, str(trained_root), "prompts,activations", "kjv", "base"],
        cwd=ROOT,
        env=_env(home),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        with open_instance(home) as instance:

            def activations_started():
                for run in instance.get_runs():
                    starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                    if any(e.step_key == "activations" for e in starts):
                        return run
                return None

            killed = wait_for(activations_started, 240, "the activations step to start")
            assert instance.event_log_storage.get_concurrency_info("model").active_slot_count == 1  # it holds the slot
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.STARTED  # dead, but nothing said so
            assert PROCESS_TAG in instance.get_run_by_id(killed.run_id).tags

            again = _materialize(home, trained_root, ["prompts", "activations"], timeout=300)
            assert again.returncode == 0 and " True" in again.stdout, again.stderr[-3000:]
            assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE
            assert "lost its process" in again.stderr
            assert instance.event_log_storage.get_concurrency_info("model").active_slot_count == 0
    finally:
        proc.kill()
        proc.wait(timeout=30)
    # the same data as an uninterrupted run (in another artifact root, the same SAE)
    reference_root = tmp_path / "reference"
    shutil.copytree(trained_root / "sae", reference_root / "sae")
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(project, tiny_resources(reference_root), instance)
        result = graph.materialize(["prompts", "activations"], graph.key("kjv", "base"))
    address = graph.metadata(result, "activations")["artifact"].value
    recovered = (trained_root / address / "manifest.json").read_text()
    reference = (reference_root / address / "manifest.json").read_text()
    assert json.loads(recovered)["files"] == json.loads(reference)["files"]
    assert not list((trained_root / "activations").glob(".*"))  # nothing half-written left behind


@pytest.fixture(scope="module")
def graph_with_partition(graph):
    assert graph.sae().success
    assert graph.partition("kjv", "base").success
    return graph


def _run_logs(graph, result) -> str:
    return "\n".join(e.user_message for e in graph.instance.all_logs(result.run_id))


@pytest.mark.parametrize(
    "file, damage, words",
    [
        # firing counts of the last kept features (never 0) zeroed in place
        ("counts.npy", lambda p: p.write_bytes(p.read_bytes()[:-64] + bytes(64)), "counts.npy: content changed"),
        ("pairs.npz", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "pairs.npz: "),  # truncated
    ],
)
def test_a_damaged_artifact_is_named_and_recomputed(graph_with_partition, file, damage, words):
    graph = graph_with_partition
    first = graph.partition("kjv", "base")
    folder = Path(graph.metadata(first, "coactivation")["path"].value)
    original = (folder / "manifest.json").read_text()
    damage(folder / file)
    again = graph.partition("kjv", "base")
    md = graph.metadata(again, "coactivation")
    assert again.success and md["reused"].value is False
    assert words in md["recomputed_because"].value
    assert words in _run_logs(graph, again) and "recomputing" in _run_logs(graph, again)
    assert json.loads((folder / "manifest.json").read_text())["files"] == json.loads(original)["files"]  # recomputed, same data
    # downstream reads the recomputed artifact and its checks pass
    assert all(c.passed for c in again.get_asset_check_evaluations())


def test_a_damaged_input_fails_the_reader_naming_the_file(graph_with_partition):
    """A stage never reads an input that fails verification: it fails, naming the input and the file."""
    graph = graph_with_partition
    key = graph.key("python_stdlib", "base")
    first = graph.materialize(["prompts", "activations", "memberships"], key)
    folder = Path(graph.metadata(first, "memberships")["path"].value)
    data = (folder / "memberships.npz").read_bytes()
    (folder / "memberships.npz").write_bytes(data[:100] + bytes(8) + data[108:])
    result = graph.materialize(["coactivation"], key, raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "input memberships[python_stdlib|base]" in message and "memberships.npz: content changed" in message
    again = graph.materialize(["memberships", "coactivation"], key)  # re-materialising the input recomputes it
    assert again.success and graph.metadata(again, "memberships")["reused"].value is False


def test_a_runtime_parameter_error_names_the_point_and_field(tmp_path, graph, cache_dir):
    registry = tmp_path / "datasets.yaml"
    registry.write_text(
        (FIXTURES / "datasets.yaml").read_text()
        + "  tiny_docs:\n    loader: library_docstrings\n    offline: true\n    licence: PSF\n    params: {packages: [json], min_chars: 900}\n"
    )
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text("points:\n  many:\n    prompts: {n_prompts: 60, max_tokens: 16}\n")  # enough for the cached corpora
    for cached in (cache_dir / "corpora").glob("tiny_docs-*"):
        cached.unlink()  # not cached yet: the corpus size is only known when the prompts stage reads it
    other = Graph(fixture_project(sweep=sweep, datasets=registry), graph.resources, graph.instance)
    result = other.materialize(["prompts"], other.key("tiny_docs", "many"), raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert "sweep point 'many', field prompts.n_prompts: 60 prompts is more than the" in message
    assert "usable texts of dataset 'tiny_docs'" in message and "np." not in message
    # now the cache knows the corpus size: the same sweep fails when the code location loads
    from cluster_assets.config import ConfigFileError

    with pytest.raises(
        ConfigFileError,
        match=r"sweep point 'many', field prompts\.n_prompts: 60 prompts is more than the \d+ usable texts of dataset 'tiny_docs'",
    ):
        fixture_project(sweep=sweep, datasets=registry)


def test_offline_automation_requests_no_hub_partition():
    from cluster_assets.defs.definitions import build_definitions
    from cluster_assets.defs.project import Project

    def requested(online: bool) -> set[str]:
        project = Project.load(sweep=FIXTURES / "sweep.yaml", datasets="cluster_assets/config/datasets.yaml", online=online)
        defs = build_definitions(project)
        datasets = set()
        with dg.DagsterInstance.ephemeral() as instance:
            cursor = None
            for hour in (1, 3):  # across the nightly 02:00 tick
                when = datetime(2026, 11, 23, hour, tzinfo=timezone.utc)
                result = dg.evaluate_automation_conditions(
                    defs,
                    instance,
                    asset_selection=dg.AssetSelection.groups("model_side", "clustering"),
                    evaluation_time=when,
                    cursor=cursor,
                )
                cursor = result.cursor
                for name in ("prompts", "clusters"):
                    datasets |= {str(k).split("|")[0] for k in result.get_requested_partitions(dg.AssetKey(name))}
        return datasets

    offline, online = requested(False), requested(True)
    hub = {"pile10k", "tinystories", "wikitext"}
    assert offline and not offline & hub
    assert hub <= online  # the same evaluation online does request them


def test_postgres_instance(tmp_path, monkeypatch, trained_root, project):
    """One documented switch: CLUSTER_ASSETS_POSTGRES_URL; a real server, two partitions, read back."""
    with PostgresServer() as server:
        monkeypatch.setenv(POSTGRES_ENV, server.url)
        home = tmp_path / "home"
        write_instance_config(home)  # the variable is set: the config points at PostgreSQL
        assert "postgres_url" in (home / "dagster.yaml").read_text() and server.url not in (home / "dagster.yaml").read_text()
        with open_instance(home) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            graph = Graph(project, tiny_resources(trained_root), instance)
            for dataset in ("kjv", "python_stdlib"):
                assert graph.materialize(["prompts", "activations"], graph.key(dataset, "base")).success
        with open_instance(home) as fresh:
            records = fresh.fetch_materializations(dg.AssetKey("activations"), limit=10).records
            assert sorted(r.asset_materialization.partition for r in records) == ["kjv|base", "python_stdlib|base"]
            assert all(r.asset_materialization.metadata["tokens"].value > 0 for r in records)
        assert not (home / "history").exists()  # nothing went to sqlite


def test_a_damaged_activation_shard_fails_every_reader_and_is_extracted_again(graph_with_partition):
    """A sample's activations are rows of shards it does not copy: a shard altered after it was written
    fails the sample's verification (naming the shard and its file), and materialising the sample
    again extracts that shard alone, to the same bytes."""
    graph = graph_with_partition
    key = graph.key("kjv", "other_seed")  # a partition whose memberships are not stored yet, so they read the shards
    first = graph.materialize(["prompts", "activations"], key)
    amd = graph.metadata(first, "activations")
    shard = Path(amd["path"].value).parents[1] / amd["shard_artifacts"].value[-1]
    original = json.loads((shard / "manifest.json").read_text())["files"]
    data = (shard / "activations.npz").read_bytes()
    (shard / "activations.npz").write_bytes(data[:-16] + bytes(16))
    result = graph.materialize(["memberships"], key, raise_on_error=False)
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error)
    assert (
        "input activations[kjv|other_seed]" in message
        and f"{amd['shard_artifacts'].value[-1]} (referenced): activations.npz: content changed" in message
    )
    again = graph.materialize(["activations", "memberships"], key)
    md = graph.metadata(again, "activations")
    assert again.success and md["reused"].value is False and "(referenced)" in md["recomputed_because"].value
    assert (md["shards"].value, md["shards_extracted"].value) == (amd["shards"].value, 1)  # only the damaged one
    assert json.loads((shard / "manifest.json").read_text())["files"] == original  # the same bytes again
