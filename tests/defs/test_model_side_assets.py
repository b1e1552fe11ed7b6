"""Materialise the model side on real (small) inputs with dagster.materialize."""

import dagster as dg
import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from cluster_assets.defs.assets.model_side import activations, prompts, sae
from cluster_assets.defs.resources import ArtifactStoreResource
from cluster_assets.sources.activation_files import read_activations


def _key(dataset, hparams):
    return dg.MultiPartitionKey({"dataset": dataset, "hparams": hparams})


def _metadata(result, asset):
    [mat] = [m for m in result.asset_materializations_for_node(asset)]
    return mat.metadata


def test_materialize_two_partitions(instance, resources):
    sae_result = dg.materialize([sae], resources=resources, instance=instance)
    md = _metadata(sae_result, "sae")
    assert 0 < md["fvu"].value < 1.5 and md["l0"].value <= 8
    assert not md["reused"].value

    seen = {}
    for key in (_key("kjv", "base"), _key("python_stdlib", "other_seed")):
        result = dg.materialize([prompts, activations, sae.to_source_asset()], partition_key=key, resources=resources, instance=instance)
        assert result.success
        pmd, amd = _metadata(result, "prompts"), _metadata(result, "activations")
        assert pmd["dagster/row_count"].value == 12
        acts, tokens = read_activations(__import__("pathlib").Path(amd["path"].value))
        frame = pl.read_parquet(__import__("pathlib").Path(pmd["path"].value) / "prompts.parquet")
        assert acts.shape == (frame["n_tokens"].sum(), 256) == (amd["tokens"].value, 256)
        assert isinstance(acts, sp.csr_array) and acts.nnz == amd["nonzeros"].value
        assert np.all(np.diff(acts.indptr) <= 8)  # at most k active features per token
        assert tokens["prompt_id"].unique().sort().to_list() == frame["prompt_id"].sort().to_list()
        assert tokens["position"].max() < (16 if key.keys_by_dimension["hparams"] == "base" else 12)
        seen[key] = amd["artifact"].value
        # the data version is the content hash of the artifact
        record = instance.get_latest_materialization_event(dg.AssetKey("activations"))
        assert record.asset_materialization.tags["dagster/data_version"] == amd["artifact"].value.split("/")[1]
    assert len(set(seen.values())) == 2


def test_rematerialising_reuses_the_artifact(instance, resources):
    key = _key("kjv", "base")
    dg.materialize([prompts, activations, sae.to_source_asset()], partition_key=key, resources=resources, instance=instance)
    again = dg.materialize([prompts, activations, sae.to_source_asset()], partition_key=key, resources=resources, instance=instance)
    assert _metadata(again, "prompts")["reused"].value
    assert _metadata(again, "activations")["reused"].value


def test_unknown_sweep_point_fails_with_valid_names(instance, resources):
    from cluster_assets.sweep import ConfigFileError, get_point

    with pytest.raises(Exception, match="Could not find a partition with key `kjv|nope`"):
        dg.materialize([prompts], partition_key=_key("kjv", "nope"), resources=resources, instance=instance)
    with pytest.raises(ConfigFileError, match="unknown sweep point 'nope'; valid: base, other_seed, alpha_low, fixed_cut, hdbscan_umap, hdbscan_raw"):
        get_point("nope")  # the message lists the fixture points


def test_activations_without_prompts_fail_clearly(instance, resources, tmp_path):
    fresh = {**resources, "artifacts": ArtifactStoreResource(root=str(tmp_path))}
    with pytest.raises(FileNotFoundError, match="materialise it first"):
        dg.materialize([activations, prompts.to_source_asset(), sae.to_source_asset()], partition_key=_key("kjv", "base"), resources=fresh, instance=instance)
    assert not any(p.name.startswith(".") for p in tmp_path.rglob("*"))  # no temporary left behind
