"""The sweep file and the registry: every error names the file (and line), the point or dataset, and the field."""

import re

import pytest

from cluster_assets.config import ConfigFileError, load_registry, load_sweep
from cluster_assets.storage.hashing import content_hash
from tests.conftest import FIXTURES, fixture_project

REGISTRY_HEAD = (
    "sae_training: [kjv]\ndatasets:\n  kjv: {loader: kjv_passages, offline: true, licence: PD, params: {verses_per_passage: 2}}\n"
)


def _write(tmp_path, text, name="f.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_repo_sweep_has_points_and_validates():
    points = load_sweep("cluster_assets/config/sweep.yaml")
    assert len(points) >= 2
    assert points["short_prompts"].prompts.max_tokens < points["base"].prompts.max_tokens
    assert points["short_prompts"].prompts.n_prompts == points["base"].prompts.n_prompts  # defaults merged


@pytest.mark.parametrize(
    "text, expected",
    [
        ("points: {a: {prompts: {n_prompt: 3}}}", r"f\.yaml, line 1: sweep point 'a', field prompts\.n_prompt: is not a known field"),
        (
            "points:\n  a:\n    prompts: {n_prompts: 0}\n",
            r"line 3: sweep point 'a', field prompts\.n_prompts: input should be greater than 0 \(got 0\)",
        ),
        ("points: {a: {merge_everything: {}}}", r"sweep point 'a', field merge_everything: is not a known field"),
        (
            "points:\n  a:\n    clustering: {threshold: 1.5}\n",
            r"line 3: sweep point 'a', field clustering\.threshold: must be a finite number >= 0\.0 and <= 1\.0, got 1\.5$",
        ),
        (
            "points:\n  a:\n    memberships: {dead_stat: median}\n",
            r"sweep point 'a', field memberships\.dead_stat: input should be 'max' or 'mean' \(got 'median'\)$",
        ),
        (
            "points:\n  a:\n    memberships: {min_entropy: 3, max_entropy: 1}\n",
            r"sweep point 'a', field memberships\.min_entropy: 3\.0 is above max_entropy = 1\.0$",
        ),
        (
            "points:\n  a:\n    clustering: {method: umap_hdbscan, n_neighbors: 1}\n",
            r"line 3: sweep point 'a', field clustering\.n_neighbors: must be a finite number >= 2",
        ),
        ("points:\n  a:\n    clustering: {method: umap_hdbscan, alpha: 1.0}\n", r"field clustering\.alpha: is not a known field"),
        ("points:\n  a:\n    clustering: {method: kmeans}\n", r"field clustering: .*'mdl_merge', 'umap_hdbscan'"),
        ("points: {}", "no sweep points"),
        ("pionts: {a: {}}", r"line 1: unknown top-level key 'pionts'"),
        ("points:\n  a: {prompts: {n_prompts: 3}\n  b: {}\n", r"f\.yaml, line 3, column \d+: not valid YAML"),
    ],
)
def test_bad_sweep_files_name_the_file_point_and_field(tmp_path, text, expected):
    with pytest.raises(ConfigFileError) as err:
        load_sweep(_write(tmp_path, text))
    message = str(err.value)
    assert re.search(expected, message), message
    assert str(tmp_path) in message and "np." not in message


@pytest.mark.parametrize(
    "text, expected",
    [
        ("datasets: {x: {loader: hub, offline: false}}", r"dataset 'x', field licence: is required"),
        (
            "datasets:\n  x:\n    loader: hub\n    offline: maybe\n    licence: MIT\n",
            r"line 4: dataset 'x', field offline: input should be a valid boolean",
        ),
        (
            "sae_training: [y]\ndatasets: {x: {loader: hub, offline: false, licence: MIT}}",
            r"sae_training names 'y', which is not a dataset",
        ),
        ("datasets: {x: {loader: hub, offline: false, licence: MIT}\n", r"line \d+, column \d+: not valid YAML"),
    ],
)
def test_bad_registry_entries(tmp_path, text, expected):
    with pytest.raises(ConfigFileError) as err:
        load_registry(_write(tmp_path, text))
    assert re.search(expected, str(err.value)), str(err.value)
    assert str(tmp_path) in str(err.value)


def test_unknown_loader_and_bad_params_fail_when_the_code_location_loads(tmp_path):
    registry = _write(tmp_path, REGISTRY_HEAD + "  code: {loader: python_sources, offline: true, licence: PSF}\n", "datasets.yaml")
    with pytest.raises(
        ConfigFileError, match=r"datasets\.yaml, line 4: dataset 'code', field loader: unknown loader 'python_sources'; valid: kjv_passages"
    ):
        fixture_project(datasets=registry)
    registry = _write(
        tmp_path, REGISTRY_HEAD + "  code: {loader: python_stdlib, offline: true, licence: PSF, params: {lines: 3}}\n", "datasets.yaml"
    )
    with pytest.raises(ConfigFileError, match=r"dataset 'code', field params: got an unexpected keyword argument 'lines'"):
        fixture_project(datasets=registry)


def test_replicates_that_cannot_be_disjoint_fail_at_load(tmp_path, cache_dir):
    from cluster_assets.sources.corpora import load_texts

    registry = load_registry(FIXTURES / "datasets.yaml")
    load_texts(registry["json_docstrings"], cache_dir / "corpora")  # the corpus cache records how many texts are usable
    sweep = _write(tmp_path, "points:\n  big:\n    prompts: {n_prompts: 100, replicates: 3}\n", "sweep.yaml")
    with pytest.raises(
        ConfigFileError,
        match=r"sweep\.yaml, line 3: sweep point 'big', field prompts\.n_prompts: 100 prompts x 3 disjoint "
        r"replicates = 300 is more than the \d+ usable texts of dataset 'json_docstrings'",
    ):
        fixture_project(sweep=sweep)


def test_replicates_expand_into_partitions_with_their_own_seeds(tmp_path):
    sweep = _write(
        tmp_path,
        "points:\n  a: {prompts: {replicates: 3}}\n  m: {clustering: {sampler: mcmc}, prompts: {replicates: 2}}\n  g: {prompts: {replicates: 2}}\n",
    )
    points = load_sweep(sweep)
    assert list(points) == ["a", "a@2", "a@3", "m", "m@2", "g", "g@2"]
    assert [p.replicate for p in points.values()] == [0, 1, 2, 0, 1, 0, 1]
    assert points["m@2"].clustering.seed == points["m"].clustering.seed + 1  # stochastic sampler: another merge seed
    assert points["g@2"].clustering.seed == points["g"].clustering.seed  # greedy: the prompts differ, the merge is deterministic
    with pytest.raises(ConfigFileError, match="may not be empty or contain '@'"):
        load_sweep(_write(tmp_path, "points: {'a@2': {}}", "bad.yaml"))


def test_adding_a_dataset_leaves_the_sae_and_existing_partitions_as_they_are(tmp_path, project):
    from cluster_assets.defs.pipeline import STAGES
    from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
    from cluster_assets.defs.stages import Lineage

    registry = _write(
        tmp_path,
        (FIXTURES / "datasets.yaml").read_text()
        + "  more_code:\n    loader: python_stdlib\n    offline: true\n    licence: PSF\n    params: {lines_per_chunk: 40}\n",
        "datasets.yaml",
    )
    grown = fixture_project(datasets=registry)
    assert "more_code" in [e.name for e in grown.datasets]
    store, source = ArtifactStoreResource(root=str(tmp_path)).store(), ActivationSource()
    for stage in ("sae", "prompts", "activations", "clusters"):
        before = Lineage(STAGES, project, store, source, project.dataset("kjv"), project.point("base")).artifact(stage)
        after = Lineage(STAGES, grown, store, source, grown.dataset("kjv"), grown.point("base")).artifact(stage)
        assert before.hash == after.hash, stage


def test_a_code_version_moves_its_stage_and_what_chains_from_it(tmp_path, project):
    import dataclasses

    from cluster_assets.defs.pipeline import STAGES
    from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
    from cluster_assets.defs.stages import Lineage

    store, source = ArtifactStoreResource(root=str(tmp_path)).store(), ActivationSource()

    def hashes(table) -> dict[str, str]:
        lineage = Lineage(table, project, store, source, project.dataset("kjv"), project.point("base"))
        return {name: lineage.artifact(name).hash for name in ("activations", "memberships", "coactivation", "clusters")}

    before = hashes(STAGES)
    after = hashes({**STAGES, "memberships": dataclasses.replace(STAGES["memberships"], code_version="2")})
    assert after["activations"] == before["activations"]
    assert all(after[n] != before[n] for n in ("memberships", "coactivation", "clusters"))


def test_content_hash_is_stable_and_order_independent():
    assert content_hash({"a": 1, "b": 2}) == content_hash({"b": 2, "a": 1})
    assert content_hash({"a": 1}) != content_hash({"a": 2})


def test_a_sample_is_sized_by_prompts_or_by_tokens(tmp_path):
    points = load_sweep(_write(tmp_path, "defaults: {prompts: {n_prompts: 50}}\npoints:\n  p: {}\n  t: {prompts: {n_tokens: 9000}}\n"))
    assert (points["p"].prompts.n_prompts, points["p"].prompts.n_tokens) == (50, None)
    assert (points["t"].prompts.n_prompts, points["t"].prompts.n_tokens) == (None, 9000)
    with pytest.raises(ConfigFileError, match="set n_prompts or n_tokens, not both"):
        load_sweep(_write(tmp_path, "points:\n  b: {prompts: {n_prompts: 5, n_tokens: 9000}}\n", "both.yaml"))


def test_a_point_that_picks_another_clustering_method_starts_from_its_defaults(tmp_path):
    sweep = _write(
        tmp_path,
        "defaults:\n  clustering: {alpha: 0.5, seed: 4}\npoints:\n  m: {}\n  u: {clustering: {method: umap_hdbscan, n_neighbors: 7}}\n"
        "  a: {clustering: {threshold: 0.2}}\n",
    )
    points = load_sweep(sweep)
    assert (points["m"].clustering.alpha, points["m"].clustering.seed) == (0.5, 4)
    assert (points["a"].clustering.alpha, points["a"].clustering.threshold) == (0.5, 0.2)  # same method: the defaults merge in
    assert points["u"].density_baseline is not None and points["u"].density_baseline.n_neighbors == 7
    assert points["u"].density_baseline.seed == 0 and points["m"].density_baseline is None
    assert points["u"].changes_from(points["m"]) == {"clustering.method": "umap_hdbscan", "clustering.n_neighbors": 7}


def test_the_research_resources_file_names_a_wider_sae_trained_longer(monkeypatch):
    """`make research` points CLUSTER_ASSETS_RESOURCES at this file: it must load as the resources do."""
    from cluster_assets.defs.definitions import RESOURCES_ENV, resources_from_environment
    from cluster_assets.defs.resources import SAETraining
    from tests.conftest import fixture_project

    monkeypatch.setenv(RESOURCES_ENV, "cluster_assets/config/resources_research.yaml")
    research = resources_from_environment(fixture_project())["source"].sae_training
    assert "resources_research.yaml" in open("Makefile").read()
    assert research.d_sae >= 8192 and research.training_tokens > SAETraining().training_tokens


def test_a_point_may_name_the_datasets_it_runs_on_and_only_known_ones(tmp_path, cache_dir):
    sweep = _write(
        tmp_path,
        "points:\n  base: {prompts: {n_prompts: 12, replicates: 2}}\n  big:\n    prompts: {n_prompts: 24}\n    datasets: [kjv]\n",
        "sweep.yaml",
    )
    project = fixture_project(sweep=sweep)
    datasets = [e.name for e in project.datasets]
    assert project.runs() == [(d, "base") for d in datasets] + [(d, "base@2") for d in datasets] + [("kjv", "big")]
    assert project.runs(hparams=["big"]) == [("kjv", "big")] and project.runs(datasets=["python_stdlib"], hparams=["big"]) == []
    assert not project.point("big").changes_from(project.point("base")).get("datasets")  # not a parameter: no address moves
    bad = _write(tmp_path, "points:\n  base: {}\n  big:\n    datasets: [kjv, kvj]\n", "bad.yaml")
    with pytest.raises(
        ConfigFileError, match=r"bad\.yaml, line 4: sweep point 'big', field datasets: 'kvj' not in the registry; valid: kjv"
    ):
        fixture_project(sweep=bad)


def test_a_point_that_changes_only_the_sample_size_is_on_the_references_learning_curve():
    points = load_sweep("cluster_assets/config/sweep_research.yaml")
    base = points["base"]
    assert points["tokens_125k"].resizes(base) and points["tokens_1m"].datasets == ("python_stdlib",)
    assert points["tokens_62k"].resizes(base) and not points["short_prompts"].resizes(base)
    assert not base.resizes(base) and not points["entropy_filtered"].resizes(base)
