"""Test settings: offline, a small fixture registry and sweep, the shared model cache.

Tests build their own code location with ``build_definitions(Project.load(...))`` from the
fixture files, so nothing depends on environment variables set before an import.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "tests" / "fixtures"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
# Idle OpenMP threads sleep instead of spinning: with two test workers (and their children) sharing
# the cores, spinning threads took ~40% more CPU time for the same suite.  Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("CLUSTER_ASSETS_CACHE", str(ROOT / ".cache"))

from cluster_assets.defs.pipeline import partition_chain  # noqa: E402 -- after the offline flags

#: The longest modules, longest first: `make test` runs the suite on every core (pytest-xdist, a module
#: per worker at a time), and a long module started last would run on alone at the end.
LONGEST_FIRST = (
    "tests/defs/test_webserver.py",
    "tests/defs/test_cluster.py",
    "tests/sources/test_numerics.py",
    "tests/defs/test_comparisons.py",
    "tests/test_golden.py",
    "tests/defs/test_faults.py",
    "tests/sources/test_model.py",
    "tests/sources/test_hub.py",
    "tests/defs/test_shards.py",
)


def pytest_collection_modifyitems(items):
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest keep their order


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    return Path(os.environ["CLUSTER_ASSETS_CACHE"])


@pytest.fixture(scope="session")
def embedded_cache(cache_dir) -> Path:
    """The dequantised embedded model (built once, ~30 s, then reused)."""
    from cluster_assets.sources.model import ensure_embedded_cache

    return ensure_embedded_cache(cache_dir / "models" / "smollm2")


@pytest.fixture(scope="session")
def embedded_model(embedded_cache):
    from cluster_assets.sources.model import load_embedded_model

    return load_embedded_model(embedded_cache, "cpu")


def fixture_project(**kwargs):
    from cluster_assets.defs.project import Project

    return Project.load(
        sweep=kwargs.pop("sweep", FIXTURES / "sweep.yaml"), datasets=kwargs.pop("datasets", FIXTURES / "datasets.yaml"), **kwargs
    )


@pytest.fixture(scope="session")
def project():
    return fixture_project()


def tiny_resources(artifact_root, **source) -> dict:
    """Resources for materialising on tiny real inputs: the real embedded model, a small SAE
    (``source`` overrides fields of the ActivationSource)."""
    from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource, SAETraining

    settings = {
        "device": "cpu",
        "batch_size": 8,
        "batch_window": 4,  # a 12-prompt sample lies in two or three shards
        "shard_prompts": 8,
        "sae_training": SAETraining(
            d_sae=256, k=8, training_tokens=6144, tokens_per_dataset=3000, batch_size=512, buffer_batches=4, dead_feature_window=4
        ),
    }
    return {"source": ActivationSource(**(settings | source)), "artifacts": ArtifactStoreResource(root=str(artifact_root))}


def write_tiny_resources(path: Path, artifact_root: Path | None = None) -> Path:
    """The tiny resources as a ``CLUSTER_ASSETS_RESOURCES`` file (with the artifact root, if given),
    for processes that build the code location themselves (dagster CLI, workers, the webserver)."""
    import yaml

    source = tiny_resources(artifact_root or path.parent)["source"]
    fields = ("device", "batch_size", "batch_window", "shard_prompts")
    settings: dict = {"source": {f: getattr(source, f) for f in fields} | {"sae_training": source.sae_training.model_dump()}}
    if artifact_root is not None:
        settings["artifacts"] = {"root": str(artifact_root)}
    path.write_text(yaml.safe_dump(settings))
    return path


class Graph:
    """The fixture code location's assets and checks, and helpers to materialise them."""

    CHAIN = partition_chain()  # the stages of one partition, from the stage table

    def __init__(self, project, resources, instance, stages=None):
        import dagster as dg

        from cluster_assets.defs.definitions import build_definitions

        self.dg, self.project, self.resources, self.instance = dg, project, resources, instance
        self.defs = build_definitions(project, resources, **({"stages": stages} if stages is not None else {}))
        self.assets = {a.key.to_user_string(): a for a in self.defs.assets}
        self.checks = list(self.defs.asset_checks)

    def key(self, dataset: str, hparams: str):
        return self.dg.MultiPartitionKey({"dataset": dataset, "hparams": hparams})

    def materialize(self, names, partition_key=None, checks=False, **kwargs):
        """Materialise the named assets (their upstream stages as source assets), and with
        ``checks`` the asset checks of those assets."""
        selected = [self.assets[n] for n in names]
        sources = [a.to_source_asset() for n, a in self.assets.items() if n not in names]
        own_checks = [c for c in self.checks if any(k.asset_key.to_user_string() in names for k in c.check_keys)]
        return self.dg.materialize(
            [*selected, *sources, *(own_checks if checks else [])],
            partition_key=partition_key,
            resources=self.resources,
            instance=self.instance,
            **kwargs,
        )

    def partition(self, dataset: str, hparams: str, **kwargs):
        return self.materialize(self.CHAIN, self.key(dataset, hparams), checks=True, **kwargs)

    @staticmethod
    def metadata(result, asset: str):
        [mat] = result.asset_materializations_for_node(asset)
        return mat.metadata

    def sae(self):
        return self.materialize(["sae"])


@pytest.fixture(scope="module")
def instance():
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="module")
def resources(tmp_path_factory, embedded_cache) -> dict:
    return tiny_resources(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="module")
def graph(project, resources, instance) -> Graph:
    return Graph(project, resources, instance)
