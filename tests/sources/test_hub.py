"""The hub path, proven offline: the real HookedSAETransformer.from_pretrained and SAE.from_pretrained
read a pre-populated cache (HF_HUB_OFFLINE=1) and produce activations and clusters for one partition.

It runs in a fresh process: huggingface_hub reads HF_HUB_CACHE when it is first imported."""

import json
import math
import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import ROOT
from tests.hub_cache import D_SAE, WIDE_D_SAE, build_hub_cache

SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import dagster as dg
    from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
    from cluster_assets.storage.formats import ClustersFormat
    from tests.conftest import Graph, fixture_project

    resources = {"source": ActivationSource(mode="hub", device="cpu", batch_size=8), "artifacts": ArtifactStoreResource(root=sys.argv[1])}
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(fixture_project(mode="hub"), resources, instance)
        sae = graph.sae()
        evals = graph.materialize(["sae_evals"], checks=True)
        result = graph.partition("kjv", "base")
        clusters = ClustersFormat().load(Path(graph.metadata(result, "clusters")["path"].value)).clusters
        print("RESULT " + json.dumps({
            "sae_mode": graph.metadata(sae, "sae")["mode"].value,
            "success": result.success and all(c.passed for c in result.get_asset_check_evaluations()),
            "d_sae": graph.metadata(result, "activations")["d_sae"].value,
            "tokens": graph.metadata(result, "activations")["tokens"].value,
            "first": clusters.row(0, named=True),
            "links": int(clusters["feature_links"].list.len().sum()), "size": int(clusters["size"].sum()),
            "top_clusters": graph.metadata(result, "clusters")["top_clusters"].value,
            "evals": {k: graph.metadata(evals, "sae_evals")[k].value for k in ("datasets", "loss_recovered", "explained_variance", "l0", "dead_fraction", "kl_div_with_sae")},
            "checked": [c.check_name for c in evals.get_asset_check_evaluations()],
        }))
""")


def _run_offline(script: str, hub: Path, artifacts: Path) -> dict:
    """Run ``script`` in a fresh process with the hub switched off and ``hub`` as its cache; its RESULT line."""
    env = {**os.environ, "HF_HOME": str(hub.parent), "HF_HUB_CACHE": str(hub), "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", script, str(artifacts)], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-4000:]
    return json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[len("RESULT ") :])


def test_hub_mode_end_to_end_from_a_prepopulated_cache(tmp_path, embedded_cache):
    out = _run_offline(SCRIPT, build_hub_cache(tmp_path / "hf" / "hub", embedded_cache), tmp_path / "artifacts")
    assert out["sae_mode"] == "hub" and out["success"]
    # the hub SAE is measured with the same evals as the embedded one, on every offline dataset
    evals = out["evals"]
    assert evals["datasets"] == ["kjv", "python_stdlib", "json_docstrings", "kjv_again"] and out["checked"] == ["sae_quality"]
    for metric in ("loss_recovered", "explained_variance", "l0", "dead_fraction", "kl_div_with_sae"):
        assert set(evals[metric]) == set(evals["datasets"]) and all(math.isfinite(v) for v in evals[metric].values()), metric
    assert all(0 < v <= D_SAE for v in evals["l0"].values())
    assert out["d_sae"] == D_SAE and out["tokens"] > 0
    # every feature links to its Neuronpedia dashboard (sae-lens' registry names the SAE's Neuronpedia id)
    first = out["first"]
    assert first["feature_links"] == [f"https://www.neuronpedia.org/pythia-70m-deduped/3-mlp-sm/{f}" for f in first["feature_ids"]]
    assert out["links"] == out["size"]
    assert "](https://www.neuronpedia.org/pythia-70m-deduped/3-mlp-sm/" in out["top_clusters"]


WIDE_SCRIPT = textwrap.dedent("""
    import json, sys
    from pathlib import Path
    import dagster as dg
    from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
    from cluster_assets.storage.formats import ClusteringFormat, CoactivationFormat
    from tests.conftest import Graph, fixture_project

    resources = {"source": ActivationSource(mode="hub", device="cpu", batch_size=8), "artifacts": ArtifactStoreResource(root=sys.argv[1])}
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(fixture_project(mode="hub"), resources, instance)
        graph.sae()
        result = graph.partition("kjv", "base")
        md = lambda asset: graph.metadata(result, asset)
        counts = CoactivationFormat().load(Path(md("coactivation")["path"].value))
        clustering = ClusteringFormat().load(Path(md("merge_history")["path"].value))
        print("RESULT " + json.dumps({
            "success": result.success and all(c.passed for c in result.get_asset_check_evaluations()),
            "d_sae": md("activations")["d_sae"].value,
            "kept": int(counts.n_features), "nbytes": counts.nbytes, "nonzero": counts.nonzero_pairs(),
            "feature_ids": clustering.feature_ids.tolist(), "merges": clustering.history.n_merges,
        }))
""")


def test_hub_mode_with_an_sae_of_the_registrys_width(tmp_path, embedded_cache):
    """pythia-70m-deduped-mlp-sm's real width (32,768 features, random weights): prompts -> clusters,
    its thousands of kept features' co-firing stored as the pairs that co-fire."""
    out = _run_offline(WIDE_SCRIPT, build_hub_cache(tmp_path / "hf" / "hub", embedded_cache, d_sae=WIDE_D_SAE), tmp_path / "artifacts")
    assert out["success"] and out["d_sae"] == WIDE_D_SAE
    kept = out["kept"]
    assert 1_000 < kept < WIDE_D_SAE and 0 < out["nonzero"] <= kept * (kept - 1) // 2
    # the stored pairs (index and count, 4 bytes each) and the firing counts, nothing of F x F
    assert out["nbytes"] <= out["nonzero"] * 8 + (kept + 1) * 8 + kept * 8
    assert len(out["feature_ids"]) == kept and max(out["feature_ids"]) > 16_384 and out["merges"] == kept - 3
