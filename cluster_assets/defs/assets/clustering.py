"""The clustering side of the graph: memberships -> coactivation -> merge_history -> clusters.

Each asset finds its artifact by content hash; when it exists already (another sweep
point with the same upstream parameters made it) the asset reuses it and says so.
"""

import time
from contextlib import contextmanager

import dagster as dg
import numpy as np
import polars as pl

from cluster_assets.core import Memberships, MergeHistory, coactivation as count_coactivation, run_merge
from cluster_assets.core.analysis import analyse_clusters, cut_labels, quadrants
from cluster_assets.core.baseline import activation_profiles, umap_hdbscan
from cluster_assets.core.selection import ParameterError, build_memberships
from cluster_assets.defs import lineage, plots
from cluster_assets.defs.assets.model_side import activations
from cluster_assets.defs.metadata import progress_logger, result, summary, table_preview
from cluster_assets.defs.partitions import REGISTRY, SWEEP, partition_names, partitions_def
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource
from cluster_assets.sources.activation_files import read_activations
from cluster_assets.sweep import get_dataset, get_point

GROUP = "clustering"


def _stage(context, source, artifacts, stage: str):
    """(dataset, point, store, this stage's artifact) for the partition being materialised."""
    dataset, hparams = partition_names(context)
    entry, point = get_dataset(dataset, REGISTRY), get_point(hparams, SWEEP)
    store = artifacts.store()
    return entry, point, store, lineage.STAGES[stage](store, source, entry, point, REGISTRY)


def _upstream(stage: str, store, source, entry, point):
    return lineage.require(lineage.STAGES[stage](store, source, entry, point, REGISTRY), f"{stage}[{entry.name}|{point.name}]")


@contextmanager
def _sweep_field(point, section: str):
    """Turn a parameter problem into a failure that names the sweep point and the field."""
    try:
        yield
    except ParameterError as err:
        raise dg.Failure(description=f"sweep point {point.name!r}, field {section}.{err.field}: {err}") from err
    except ValueError as err:
        raise dg.Failure(description=f"sweep point {point.name!r}, section {section}: {err}") from err


@dg.asset(partitions_def=partitions_def, deps=[activations], group_name=GROUP, kinds={"numpy", "polars"},
          description="Compressed memberships of the kept features and the per-feature statistics table.")
def memberships(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    entry, point, store, artifact = _stage(context, source, artifacts, "memberships")
    params = point.memberships
    reused = artifact.exists
    if not reused:
        acts_art = _upstream("activations", store, source, entry, point)
        acts, tokens = read_activations(acts_art.path)
        t0 = time.perf_counter()
        with _sweep_field(point, "memberships"):
            res = build_memberships(acts, tokens["prompt_id"].to_numpy(), params.threshold, params.filter_config(), params.unit, params.prompt_reduce)
        seconds = time.perf_counter() - t0
        table = pl.DataFrame(res.stats.columns()).with_columns(
            kept=pl.Series(res.kept), reason=pl.Series(res.reason),
            quadrant=pl.Series(np.where(res.kept, quadrants(np.where(res.kept, res.stats.entropy, np.nan), np.where(res.kept, res.stats.varentropy, np.nan)), "")),
        )
        manifest = {"activations": acts_art.hash, "params": params.digest(), "samples": res.memberships.n_samples,
                    "kept": int(res.kept.sum()), "d_sae": int(res.kept.size), "seconds": seconds}
        with store.write(artifact, manifest) as folder:
            res.memberships.save(folder / "memberships.npz")
            table.write_parquet(folder / "features.parquet")
            np.save(folder / "sample_prompt.npy", res.sample_prompt)
    table = pl.read_parquet(artifact.path / "features.parquet")
    m = artifact.manifest()
    kept = table["kept"].to_numpy()
    rate, entropy, varentropy = (table[c].to_numpy() for c in ("firing_rate", "entropy", "varentropy"))
    dropped = table.filter(~pl.col("kept")).group_by("reason").len().sort("reason")
    return result(
        artifact, reused,
        samples=dg.MetadataValue.int(m["samples"]),
        unit=dg.MetadataValue.text(params.unit),
        kept_features=dg.MetadataValue.int(m["kept"]),
        dropped=dg.MetadataValue.json({r: int(n) for r, n in dropped.iter_rows()}),
        quadrants=dg.MetadataValue.json({q: int(n) for q, n in table.filter(pl.col("kept"))["quadrant"].value_counts().iter_rows()}),
        seconds=dg.MetadataValue.float(m["seconds"]),
        entropy_vs_rate=plots.entropy_vs_rate(rate, entropy, kept),
        rate_histogram=plots.rate_histogram(rate),
        quadrant_plot=plots.quadrant_plot(entropy[kept], varentropy[kept], table["quadrant"].to_numpy()[kept]),
    )


@dg.asset(partitions_def=partitions_def, deps=[memberships], group_name=GROUP, kinds={"numpy", "numba"},
          description="Exact integer co-firing counts between kept features (diagonal: firing counts).")
def coactivation(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    entry, point, store, artifact = _stage(context, source, artifacts, "coactivation")
    reused = artifact.exists
    if not reused:
        mem_art = _upstream("memberships", store, source, entry, point)
        members = Memberships.load(mem_art.path / "memberships.npz")
        t0 = time.perf_counter()
        counts = count_coactivation(members.activity)
        seconds = time.perf_counter() - t0
        manifest = {"memberships": mem_art.hash, "features": members.n_features, "samples": members.n_samples,
                    "cofiring_pairs": int((np.count_nonzero(counts) - np.count_nonzero(np.diag(counts))) // 2), "seconds": seconds}
        with store.write(artifact, manifest) as folder:
            np.save(folder / "coactivation.npy", counts)
    m = artifact.manifest()
    return result(
        artifact, reused,
        features=dg.MetadataValue.int(m["features"]),
        samples=dg.MetadataValue.int(m["samples"]),
        cofiring_pairs=dg.MetadataValue.int(m["cofiring_pairs"]),
        seconds=dg.MetadataValue.float(m["seconds"]),
    )


BASELINE_LABELS = "baseline_labels.npz"


def load_clustering(artifact) -> tuple[str, MergeHistory | None, np.ndarray, np.ndarray]:
    """(method, history or None, feature ids, baseline labels or empty) of a merge_history artifact."""
    if (artifact.path / BASELINE_LABELS).exists():
        with np.load(artifact.path / BASELINE_LABELS) as z:
            return "umap_hdbscan", None, z["feature_ids"], z["labels"]
    history = MergeHistory.load(artifact.path / "merge_history.npz")
    return "mdl_merge", history, history.feature_ids, np.zeros(0, np.int64)


@dg.asset(partitions_def=partitions_def, deps=[coactivation], group_name=GROUP, kinds={"numba", "scipy"},
          description="The clustering method's output: the MDL greedy merge sequence (pairs, costs, MDL per step, "
          "scipy linkage), or the UMAP+HDBSCAN baseline labels when the sweep point selects method umap_hdbscan.")
def merge_history(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    entry, point, store, artifact = _stage(context, source, artifacts, "merge_history")
    method = point.merge.method
    reused = artifact.exists
    if not reused:
        co_art = _upstream("coactivation", store, source, entry, point)
        mem_art = _upstream("memberships", store, source, entry, point)
        members = Memberships.load(mem_art.path / "memberships.npz")
        t0 = time.perf_counter()
        if method == "mdl_merge":
            cofiring = np.load(co_art.path / "coactivation.npy")
            with _sweep_field(point, "merge"):
                history = run_merge(members.activity, point.merge.merge_config(), cofiring=cofiring, overwrite_cofiring=True,
                                    feature_ids=members.feature_ids, progress=progress_logger(context, "merges"))
            summary_ = {"merges": history.n_merges, "best_k": history.best_k(), "min_mdl": float(history.mdl.min())}
        else:
            acts, tokens = read_activations(_upstream("activations", store, source, entry, point).path)
            profiles = activation_profiles(acts, tokens["prompt_id"].to_numpy(), members.feature_ids)
            with _sweep_field(point, "baseline"):
                labels = umap_hdbscan(profiles, point.baseline.baseline_config())
            summary_ = {"clusters": int(labels.max(initial=-1) + 1), "noise_fraction": float((labels < 0).mean())}
        seconds = time.perf_counter() - t0
        manifest = {"coactivation": co_art.hash, "params": point.method_digest(), "method": method,
                    "features": members.n_features, "seconds": seconds, **summary_}
        with store.write(artifact, manifest) as folder:
            if method == "mdl_merge":
                history.save(folder / "merge_history.npz")
            else:
                np.savez(folder / BASELINE_LABELS, feature_ids=members.feature_ids, labels=labels)
    m = artifact.manifest()
    common = dict(method=dg.MetadataValue.text(m["method"]), features=dg.MetadataValue.int(m["features"]),
                  seconds=dg.MetadataValue.float(m["seconds"]))
    if m["method"] != "mdl_merge":
        return result(artifact, reused, **common, clusters=dg.MetadataValue.int(m["clusters"]),
                      noise_fraction=dg.MetadataValue.float(m["noise_fraction"]))
    history = MergeHistory.load(artifact.path / "merge_history.npz")
    return result(
        artifact, reused, **common,
        merges=dg.MetadataValue.int(m["merges"]),
        best_k=dg.MetadataValue.int(m["best_k"]),
        min_mdl=dg.MetadataValue.float(m["min_mdl"]),
        initial_mdl=dg.MetadataValue.float(float(history.mdl[0])),
        seconds_per_merge=dg.MetadataValue.float(m["seconds"] / max(m["merges"], 1)),
        mdl_curve=plots.mdl_curve(history.ks, history.mdl, m["best_k"]),
    )


@dg.asset(partitions_def=partitions_def, deps=[merge_history], group_name=GROUP, kinds={"polars", "parquet"},
          description="Clusters at the chosen cut: members, stats, top prompts, cluster-cluster correlation.")
def clusters(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    entry, point, store, artifact = _stage(context, source, artifacts, "clusters")
    reused = artifact.exists
    if not reused:
        hist_art = _upstream("merge_history", store, source, entry, point)
        co_art = _upstream("coactivation", store, source, entry, point)
        acts_art = _upstream("activations", store, source, entry, point)
        method, history, feature_ids, labels = load_clustering(hist_art)
        acts, tokens = read_activations(acts_art.path)
        t0 = time.perf_counter()
        mdl_at_cut = None
        if history is not None:
            with _sweep_field(point, "clusters"):
                k, labels = cut_labels(history, point.clusters.cut)
            mdl_at_cut = float(history.mdl[history.n_features - k])
        else:
            k = int(labels.max(initial=-1) + 1)
        clustered = labels >= 0  # the baseline's noise (-1) is kept in labels.parquet, not analysed as a cluster
        analysis = analyse_clusters(labels[clustered], feature_ids[clustered], acts, tokens["prompt_id"].to_numpy(), tokens["token"].to_list(),
                                    point.memberships.threshold, point.clusters.top_prompts)
        seconds = time.perf_counter() - t0
        table = pl.DataFrame(analysis.clusters).sort("active_tokens", descending=True)
        cofiring = np.load(co_art.path / "coactivation.npy")
        largest = table.head(8)["cluster"].to_list()
        members_of = [np.flatnonzero(labels == c) for c in largest]  # positions in the kept-feature order of coactivation
        order = np.concatenate(members_of) if members_of else np.zeros(0, int)
        manifest = {"merge_history": hist_art.hash, "params": point.clusters.digest(), "method": method, "k": k,
                    "features": int(labels.size), "noise": int((~clustered).sum()), "mdl_at_cut": mdl_at_cut, "seconds": seconds}
        with store.write(artifact, manifest) as folder:
            table.write_parquet(folder / "clusters.parquet")
            pl.DataFrame(analysis.top_prompts, schema={"cluster": pl.Int64, "rank": pl.Int64, "prompt_id": pl.Int64, "active_tokens": pl.Int64,
                                                       "activation_mass": pl.Float64, "marked_text": pl.String}).write_parquet(folder / "top_prompts.parquet")
            pl.DataFrame({"feature_id": feature_ids, "cluster": labels}).write_parquet(folder / "labels.parquet")
            np.save(folder / "correlation.npy", analysis.correlation)
            np.save(folder / "heatmap.npy", cofiring[np.ix_(order[:200], order[:200])])
    m = artifact.manifest()
    table = pl.read_parquet(artifact.path / "clusters.parquet")
    top = pl.read_parquet(artifact.path / "top_prompts.parquet")
    preview = table.head(5).join(top.filter(pl.col("rank") == 0).select("cluster", "marked_text"), on="cluster", how="left")
    sizes = table["size"].to_numpy()
    return result(
        artifact, reused,
        k=dg.MetadataValue.int(m["k"]),
        method=dg.MetadataValue.text(m["method"]),
        noise_features=dg.MetadataValue.int(m["noise"]),
        cut=dg.MetadataValue.text(str(point.clusters.cut)),
        features=dg.MetadataValue.int(m["features"]),
        size_summary=dg.MetadataValue.json({k_: round(float(v), 2) for k_, v in summary(sizes).items()}),
        singletons=dg.MetadataValue.int(int((sizes == 1).sum())),
        seconds=dg.MetadataValue.float(m["seconds"]),
        top_clusters=table_preview(preview.select("cluster", "size", "active_tokens", "feature_ids", "marked_text"), width=120),
        size_distribution=plots.size_distribution(sizes),
        coactivation_heatmap=plots.heatmap(np.log1p(np.load(artifact.path / "heatmap.npy")), "log co-firing, largest clusters"),
    )
