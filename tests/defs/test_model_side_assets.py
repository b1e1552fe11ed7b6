"""Materialise the model side on real (small) inputs with dagster.materialize."""

import re
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
import scipy.sparse as sp

from cluster_assets.defs.resources import ArtifactStoreResource
from cluster_assets.storage.formats import ActivationsFormat, PromptsFormat


def test_materialize_two_partitions(graph, instance):
    sae_result = graph.sae()
    md = graph.metadata(sae_result, "sae")
    assert 0 < md["fvu"].value < 1.5 and md["l0"].value <= 8
    seen = {}
    for dataset, hparams in (("kjv", "base"), ("python_stdlib", "other_seed")):
        result = graph.materialize(["prompts", "activations"], graph.key(dataset, hparams))
        assert result.success
        pmd, amd = graph.metadata(result, "prompts"), graph.metadata(result, "activations")
        assert pmd["dagster/row_count"].value == 12
        stored = ActivationsFormat().load(Path(amd["path"].value))
        assert stored.references == amd["shard_artifacts"].value
        acts = stored.gather()
        frame = PromptsFormat().load(Path(pmd["path"].value))
        assert acts.values.shape == (frame["n_tokens"].sum(), 256) == (amd["tokens"].value, 256)
        assert isinstance(acts.values, sp.csr_array) and acts.values.nnz == amd["nonzeros"].value
        assert np.all(np.diff(acts.values.indptr) <= 8)  # at most k active features per token
        assert acts.tokens["prompt_id"].unique().sort().to_list() == frame["prompt_id"].sort().to_list()
        assert acts.tokens["position"].max() < (16 if hparams == "base" else 12)
        # each prompt's rows together, in position order, whatever order the batches ran in; prompts in draw order
        pid, position = acts.tokens["prompt_id"].to_numpy(), acts.tokens["position"].to_numpy()
        starts = np.flatnonzero(np.diff(pid, prepend=-1))
        assert np.unique(pid[starts]).size == starts.size == frame.height  # one run per prompt
        assert np.array_equal(position, np.arange(pid.size) - np.repeat(starts, np.diff(np.append(starts, pid.size))))
        assert not np.all(np.diff(pid[starts]) > 0)  # draw order, not prompt id order (a 12-of-many shuffle is never sorted here)
        seen[dataset] = amd["artifact"].value
        # the data version is the content hash of the artifact
        record = instance.get_latest_materialization_event(dg.AssetKey("activations"))
        assert record.asset_materialization.tags["dagster/data_version"] == amd["artifact"].value.split("/")[1]
    assert len(set(seen.values())) == 2


def test_rematerialising_reuses_the_artifact(graph):
    key = graph.key("kjv", "base")
    graph.materialize(["prompts", "activations"], key)
    again = graph.materialize(["prompts", "activations"], key)
    assert graph.metadata(again, "prompts")["reused"].value
    assert graph.metadata(again, "activations")["reused"].value


def test_unknown_sweep_point_fails_with_valid_names(graph, project):
    from cluster_assets.config import ConfigFileError

    with pytest.raises(Exception, match=re.escape("Could not find a partition with key `kjv|nope`")):
        graph.materialize(["prompts"], graph.key("kjv", "nope"))
    with pytest.raises(
        ConfigFileError,
        match="unknown sweep point 'nope'; valid: base, base@2, other_seed, alpha_low, fixed_cut, hdbscan_umap, hdbscan_raw",
    ):
        project.point("nope")


def test_activations_without_prompts_fail_clearly(graph, tmp_path):
    from tests.conftest import Graph

    fresh = Graph(graph.project, {**graph.resources, "artifacts": ArtifactStoreResource(root=str(tmp_path))}, graph.instance)
    result = fresh.materialize(["activations"], fresh.key("kjv", "base"), raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "prompts[kjv|base] has not been materialised" in str(failure.event_specific_data.error)
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))  # no temporary left behind
