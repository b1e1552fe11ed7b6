"""The stage table is the one declaration of the pipeline: a new stage is one row (its body, its
format, the stages it reads) and nothing else; the Dagster deps are the declared reads; reading an
undeclared stage, or a row that reads a stage the table lacks, is an error."""

import json
from pathlib import Path

import dagster as dg
import numpy as np
import pytest

from cluster_assets.defs.definitions import build_definitions
from cluster_assets.defs.pipeline import STAGES, partition_chain
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
from cluster_assets.defs.stages import Lineage, Output, Stage, StageContext
from cluster_assets.storage import formats as fmt
from cluster_assets.storage.formats import CoactivationFormat, Format
from tests.conftest import Graph, tiny_resources


class TotalsFormat(Format[dict]):
    TOTALS = "totals.json"

    def save(self, folder: Path, value: dict) -> None:
        (folder / self.TOTALS).write_text(json.dumps(value))

    def load(self, folder: Path) -> dict:
        return json.loads((folder / self.TOTALS).read_text())


def totals(ctx: StageContext) -> Output:
    """The toy stage: co-firing pairs and kept features of a partition."""
    counts, members = ctx.read("coactivation", fmt.CoactivationFormat), ctx.read("memberships", fmt.MembershipsFormat).memberships
    value = {"pairs": int(counts.pairs.sum()), "kept": int(members.feature_ids.size)}
    return Output(value, summary=value)


def sneaky(ctx: StageContext) -> Output:
    ctx.read("activations", fmt.ActivationsFormat)  # not among its reads
    return Output({})


def toy_table(body=totals, reads=("coactivation", "memberships")) -> dict[str, Stage]:
    """A copy of the table with one more row, right after coactivation; nothing else edited."""
    rows = list(STAGES.items())
    at = [n for n, _ in rows].index("coactivation") + 1
    row = Stage("toy_totals", TotalsFormat(), body, reads=reads, kinds=frozenset({"python"}))
    return dict([*rows[:at], ("toy_totals", row), *rows[at:]])


def parents(defs: dg.Definitions, name: str) -> set[str]:
    return {key.to_user_string() for key in defs.resolve_asset_graph().get(dg.AssetKey(name)).parent_keys}


def test_every_assets_upstream_deps_are_its_declared_reads(project, tmp_path):
    defs = build_definitions(project, tiny_resources(tmp_path))
    for name, stage in STAGES.items():
        assert parents(defs, name) == set(stage.reads), name
    jobs = {job.name: job for job in defs.resolve_all_job_defs()}
    assert {k.to_user_string() for k in jobs["partition_job"].asset_layer.selected_asset_keys} == set(partition_chain())


def test_a_new_stage_is_one_row(project, tmp_path, embedded_cache):
    table = toy_table()
    chain = partition_chain(table)
    assert chain[chain.index("coactivation") + 1] == "toy_totals"  # in the partition's chain, after what it reads
    with dg.DagsterInstance.ephemeral() as instance:
        toy = Graph(project, tiny_resources(tmp_path), instance, stages=table)
        assert parents(toy.defs, "toy_totals") == {"coactivation", "memberships"}
        jobs = {job.name: job for job in toy.defs.resolve_all_job_defs()}
        assert "toy_totals" in {k.to_user_string() for k in jobs["partition_job"].asset_layer.selected_asset_keys}
        assert toy.sae().success
        result = toy.materialize(list(chain), toy.key("kjv", "base"))
        assert result.success
        md = toy.metadata(result, "toy_totals")
        counts = CoactivationFormat().load(Path(toy.metadata(result, "coactivation")["path"].value))
    value = TotalsFormat().load(Path(md["path"].value))
    assert value["pairs"] == int(np.triu(counts.square(), 1).sum()) > 0 and md["pairs"].value == value["pairs"]


def test_the_address_hashes_exactly_the_declared_reads(project, tmp_path):
    store, source = ArtifactStoreResource(root=str(tmp_path)).store(), ActivationSource()

    def address(table) -> str:
        return Lineage(table, project, store, source, project.dataset("kjv"), project.point("base")).artifact("toy_totals").hash

    assert address(toy_table()) == address(toy_table())
    assert address(toy_table()) != address(toy_table(reads=("coactivation", "memberships", "activations")))


def test_reading_an_undeclared_stage_fails_naming_it(project, tmp_path, embedded_cache):
    with dg.DagsterInstance.ephemeral() as instance:
        graph = Graph(project, tiny_resources(tmp_path), instance, stages=toy_table(body=sneaky))
        assert graph.sae().success
        result = graph.materialize([*partition_chain(), "toy_totals"], graph.key("kjv", "base"), raise_on_error=False)
    assert not result.success
    [failure] = [e for e in result.all_events if e.is_step_failure]
    assert "toy_totals reads 'activations', which its row does not declare" in str(failure.step_failure_data.error)


def test_a_row_reading_an_unknown_stage_fails_when_the_definitions_load(project):
    with pytest.raises(ValueError, match=r"toy_totals.*reads \['nowhere'\]"):
        build_definitions(project, {}, stages=toy_table(reads=("coactivation", "nowhere")))
    with pytest.raises(TypeError):
        Stage("no_body", TotalsFormat())  # type: ignore[call-arg]  -- a row without its body is not a row


def test_a_read_is_typed_by_the_format_its_row_stores(project, tmp_path):
    table = toy_table()
    store, source = ArtifactStoreResource(root=str(tmp_path)).store(), ActivationSource()
    ctx = StageContext(table, table["toy_totals"], project, source, store, None, project.dataset("kjv"), project.point("base"))
    with pytest.raises(TypeError, match="toy_totals reads 'coactivation' as ClustersFormat, but its row stores it as CoactivationFormat"):
        ctx.read("coactivation", fmt.ClustersFormat)
    with pytest.raises(dg.Failure, match=r"coactivation\[kjv\|base\] has not been materialised"):
        ctx.read("coactivation", fmt.CoactivationFormat)  # the right format: on to the artifact, which is missing


def test_the_forward_batching_is_part_of_the_model_steps_addresses(project, tmp_path):
    """Which rows share a padded forward batch moves the last bits of activations, so one address
    never holds the bytes of two batchings; the steps after the model are keyed by what they read."""
    store = ArtifactStoreResource(root=str(tmp_path)).store()

    def addresses(**source) -> dict[str, str]:
        lineage = Lineage(STAGES, project, store, ActivationSource(device="cpu", **source), project.dataset("kjv"), project.point("base"))
        return {name: lineage.artifact(name).hash for name in ("prompts", "sae", "activations")}

    base, rebatched = addresses(batch_size=64), addresses(batch_size=8)
    assert base["prompts"] == rebatched["prompts"]  # tokenisation only
    assert base["sae"] != rebatched["sae"] and base["activations"] != rebatched["activations"]
    assert addresses(batch_tokens=1024)["activations"] != base["activations"]
