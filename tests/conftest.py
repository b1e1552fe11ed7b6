"""Test settings: offline, small fixture registry and sweep, shared model cache.

The environment is set before any cluster_assets.defs import, because the partitions
are read from the sweep and registry files when the code location loads.
"""

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["CLUSTER_ASSETS_SWEEP"] = str(ROOT / "tests" / "fixtures" / "sweep.yaml")
os.environ["CLUSTER_ASSETS_DATASETS"] = str(ROOT / "tests" / "fixtures" / "datasets.yaml")
os.environ.setdefault("CLUSTER_ASSETS_CACHE", str(ROOT / ".cache"))


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


def tiny_resources(artifact_root) -> dict:
    """Resources for materialising on tiny real inputs: the real embedded model, a small SAE."""
    from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource

    return {
        "source": ActivationSource(device="cpu", batch_size=8, sae_d_sae=256, sae_k=8, sae_training_tokens=6144, sae_tokens_per_dataset=3000),
        "artifacts": ArtifactStoreResource(root=str(artifact_root)),
    }


@pytest.fixture(scope="module")
def instance():
    import dagster as dg

    with dg.DagsterInstance.ephemeral() as inst:
        yield inst


@pytest.fixture(scope="module")
def resources(tmp_path_factory, embedded_cache) -> dict:
    return tiny_resources(tmp_path_factory.mktemp("artifacts"))
