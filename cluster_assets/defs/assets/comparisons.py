"""Comparisons across datasets (one per sweep point) and across sweep points (one per dataset).

They read whatever ``clusters`` partitions exist when they run and list the missing ones;
with fewer than two available they say so plainly instead of failing.
"""

import json

import dagster as dg
import numpy as np
import polars as pl

from cluster_assets.core.comparison import adjusted_rand_index, common_labels, compare_clusterings, normalized_mutual_info
from cluster_assets.defs import lineage, plots
from cluster_assets.defs.assets.clustering import clusters
from cluster_assets.defs.metadata import result, table_preview
from cluster_assets.defs.partitions import REGISTRY, SWEEP, dataset_partitions, hparams_partitions
from cluster_assets.defs.resources import ActivationSource, ArtifactStoreResource

GROUP = "comparisons"
SUMMARY = "summary.json"


def load_partition(store, source, entry, point) -> dict | None:
    """Everything a comparison needs from one (dataset, point) partition, or None if it has no clusters yet."""
    art = lineage.clusters_artifact(store, source, entry, point, REGISTRY)
    if not art.exists:
        return None
    labels = pl.read_parquet(art.path / "labels.parquet")
    manifest = art.manifest()
    members = lineage.memberships_artifact(store, source, entry, point, REGISTRY)
    return {
        "artifact": art,
        "ids": labels["feature_id"].to_numpy(),
        "labels": labels["cluster"].to_numpy(),
        "clusters": pl.read_parquet(art.path / "clusters.parquet"),
        "top_prompts": pl.read_parquet(art.path / "top_prompts.parquet"),
        "k": manifest["k"],
        "method": manifest.get("method", "mdl_merge"),
        "noise": manifest.get("noise", 0),
        "mdl_at_cut": manifest.get("mdl_at_cut"),
        "kept": members.manifest()["kept"],
        "memberships": members.hash,
    }


def _top_prompt(part: dict, cluster: int) -> str:
    rows = part["top_prompts"].filter(pl.col("cluster") == cluster)
    return " ".join(rows["marked_text"][0].split())[:160] if rows.height else ""


def partitions_for(store, source, stage: str, key: str) -> dict[str, dict | None]:
    """The clusters partitions a comparison reads: every dataset of a sweep point, or every point of a dataset."""
    if stage == "dataset_comparison":
        return {name: load_partition(store, source, entry, SWEEP[key]) for name, entry in REGISTRY.items()}
    return {name: load_partition(store, source, REGISTRY[key], point) for name, point in SWEEP.items()}


def split_available(parts: dict[str, dict | None]) -> tuple[dict[str, dict], list[str]]:
    """The partitions that have clusters, and the names of those that do not yet."""
    return {n: p for n, p in parts.items() if p is not None}, [n for n, p in parts.items() if p is None]


def _input_hashes(parts: dict[str, dict | None]) -> list[str]:
    return sorted(p["artifact"].hash for p in parts.values() if p is not None)


def comparison_artifact(store, stage: str, key: str, parts: dict[str, dict | None]):
    """Content address of a comparison: its key and the clusters artifacts it compared."""
    return store.artifact(stage, key, _input_hashes(parts))


def _write(store, stage: str, key: str, parts: dict, tables: dict[str, pl.DataFrame], summary: dict):
    artifact = comparison_artifact(store, stage, key, parts)
    reused = artifact.exists
    if not reused:
        with store.write(artifact, {"key": key, "inputs": _input_hashes(parts)}) as folder:
            for name, frame in tables.items():
                frame.write_parquet(folder / f"{name}.parquet")
            (folder / SUMMARY).write_text(json.dumps(summary, indent=2, default=str))
    return artifact, reused


@dg.asset(
    partitions_def=hparams_partitions,
    deps=[dg.AssetDep(clusters, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="hparams"))],
    group_name=GROUP, kinds={"polars"},
    description="How the clusterings of one sweep point differ across datasets: alive features, ARI/NMI on common "
    "features, best-matching clusters (Jaccard), stable and dataset-specific clusters with their top prompts.",
)
def dataset_comparison(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    point = SWEEP[context.partition_key]
    store = artifacts.store()
    parts = partitions_for(store, source, "dataset_comparison", point.name)
    available, missing = split_available(parts)
    if missing:
        context.log.info(f"no clusters yet for {missing} at sweep point {point.name!r}; comparing {list(available)}")
    out = compare_clusterings({n: (p["ids"], p["labels"]) for n, p in available.items()}) if len(available) >= 2 else None
    tables, summary = {}, {"point": point.name, "available": list(available), "missing": missing}
    if out is None:
        summary["note"] = f"fewer than two datasets have clusters for {point.name!r}: nothing to compare yet"
    else:
        tables["pairs"] = pl.DataFrame(out["pairs"])
        tables["matches"] = pl.DataFrame(out["matches"])
        stable_rows = []
        for c, matched in zip(out["stable"]["cluster"], out["stable"]["matched"]):
            ref = out["stable"]["reference"][0]
            row = {"reference": ref, "cluster": c, f"top_prompt[{ref}]": _top_prompt(available[ref], c)}
            for name, m in matched.items():
                row[f"cluster[{name}]"], row[f"jaccard[{name}]"] = m["cluster"], m["jaccard"]
                row[f"top_prompt[{name}]"] = _top_prompt(available[name], m["cluster"])
            stable_rows.append(row)
        tables["stable"] = pl.DataFrame(stable_rows) if stable_rows else pl.DataFrame({"reference": [], "cluster": []}, schema={"reference": pl.String, "cluster": pl.Int64})
        specific = pl.DataFrame(out["specific"], schema={"name": pl.String, "cluster": pl.Int64, "size": pl.Int64, "best_jaccard": pl.Float64})
        tables["specific"] = specific.with_columns(
            top_prompt=pl.Series([_top_prompt(available[n], c) for n, c in zip(specific["name"], specific["cluster"])], dtype=pl.String))
        summary.update(stable=len(stable_rows), specific={n: int((specific["name"] == n).sum()) for n in available},
                       mean_ari=float(np.nanmean(out["pairs"]["ari"])), mean_nmi=float(np.nanmean(out["pairs"]["nmi"])),
                       kept={n: int(p["kept"]) for n, p in available.items()})
    artifact, reused = _write(store, "dataset_comparison", point.name, parts, tables, summary)
    metadata = {"available": dg.MetadataValue.json(list(available)), "missing": dg.MetadataValue.json(missing),
                "summary": dg.MetadataValue.json(summary)}
    if out is not None:
        pairs = tables["pairs"]
        names = list(available)
        matrix = np.eye(len(names))
        for a, b, v in zip(pairs["a"], pairs["b"], pairs["ari"]):
            matrix[names.index(a), names.index(b)] = matrix[names.index(b), names.index(a)] = v
        metadata.update(pairs=table_preview(pairs, n=20), stable_clusters=dg.MetadataValue.int(summary["stable"]),
                        mean_ari=dg.MetadataValue.float(summary["mean_ari"]),
                        ari_heatmap=plots.heatmap(matrix, "ARI between datasets: " + ", ".join(names)))
    return result(artifact, reused, **metadata)


def _flat_params(point) -> dict[str, object]:
    """section.field -> value of everything a point sets (baseline only when it is used)."""
    out = {}
    sections = ["prompts", "activations", "memberships", "merge", "clusters"] + (["baseline"] if point.merge.method == "umap_hdbscan" else [])
    for section in sections:
        for field, value in getattr(point, section).digest().items():
            out[f"{section}.{field}"] = value
    return out


@dg.asset(
    partitions_def=dataset_partitions,
    deps=[dg.AssetDep(clusters, partition_mapping=dg.MultiToSingleDimensionPartitionMapping(partition_dimension_name="dataset"))],
    group_name=GROUP, kinds={"polars"},
    description="How one dataset's clustering changes across sweep points: per point kept features, clusters, MDL "
    "at the cut, agreement (ARI/NMI) with the reference point; n_prompts/length curves; MDL vs baseline methods.",
)
def sweep_comparison(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    entry = REGISTRY[context.partition_key]
    store = artifacts.store()
    reference = next(iter(SWEEP))
    parts = partitions_for(store, source, "sweep_comparison", entry.name)
    available, missing = split_available(parts)
    ref_params = _flat_params(SWEEP[reference])
    rows = []
    for name, part in available.items():
        params = _flat_params(SWEEP[name])
        changes = {k: v for k, v in params.items() if ref_params.get(k) != v}
        row = {"point": name, "changes": json.dumps(changes, default=str), "method": part["method"], "kept": part["kept"],
               "k": part["k"], "noise_fraction": part["noise"] / max(len(part["labels"]), 1), "mdl_at_cut": part["mdl_at_cut"],
               "size_median": float(np.median(part["clusters"]["size"])) if part["clusters"].height else 0.0,
               "size_max": int(part["clusters"]["size"].max() or 0) if part["clusters"].height else 0,
               "n_prompts": params["prompts.n_prompts"], "max_tokens": params["prompts.max_tokens"],
               "ari_vs_reference": None, "nmi_vs_reference": None}
        if reference in available:
            _, a, b = common_labels(available[reference]["ids"], available[reference]["labels"], part["ids"], part["labels"])
            if a.size:
                row["ari_vs_reference"], row["nmi_vs_reference"] = adjusted_rand_index(a, b), normalized_mutual_info(a, b)
        rows.append(row)
    table = pl.DataFrame(rows, schema_overrides={"mdl_at_cut": pl.Float64, "ari_vs_reference": pl.Float64, "nmi_vs_reference": pl.Float64}) if rows else pl.DataFrame()
    # the two methods on the same memberships
    method_rows = []
    names = list(available)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            pa, pb = available[a], available[b]
            if pa["memberships"] == pb["memberships"] and pa["method"] != pb["method"]:
                _, la, lb = common_labels(pa["ids"], pa["labels"], pb["ids"], pb["labels"])
                method_rows.append({"point_a": a, "method_a": pa["method"], "point_b": b, "method_b": pb["method"],
                                    "ari": adjusted_rand_index(la, lb), "k_a": pa["k"], "k_b": pb["k"],
                                    "noise_a": pa["noise"] / max(len(pa["labels"]), 1), "noise_b": pb["noise"] / max(len(pb["labels"]), 1),
                                    "sizes_a": sorted(pa["clusters"]["size"].to_list(), reverse=True)[:10],
                                    "sizes_b": sorted(pb["clusters"]["size"].to_list(), reverse=True)[:10]})
    tables = {"points": table}
    if method_rows:
        tables["methods"] = pl.DataFrame(method_rows)
    summary = {"dataset": entry.name, "reference": reference, "available": names, "missing": missing}
    if len(available) < 2:
        summary["note"] = f"fewer than two sweep points have clusters for {entry.name!r}: nothing to compare yet"
    artifact, reused = _write(store, "sweep_comparison", entry.name, parts, tables, summary)
    metadata = {"available": dg.MetadataValue.json(names), "missing": dg.MetadataValue.json(missing), "reference": dg.MetadataValue.text(reference)}
    if rows:
        metadata["points"] = table_preview(table.select("point", "changes", "method", "kept", "k", "noise_fraction", "ari_vs_reference"), n=30, width=60)
        curve = table.filter(pl.col("method") == "mdl_merge").sort("n_prompts")
        if curve.height >= 2:
            metadata["k_vs_prompts"] = plots.thumbnail(
                lambda ax: (ax.scatter(curve["n_prompts"] * curve["max_tokens"], curve["k"]),
                            ax.set_xlabel("n_prompts x max_tokens", fontsize=8), ax.set_ylabel("clusters at the cut", fontsize=8)),
                "clusters vs token budget")
    if method_rows:
        metadata["methods"] = table_preview(tables["methods"].drop("sizes_a", "sizes_b"), n=20)
    return result(artifact, reused, **metadata)


@dg.asset(
    deps=[dataset_comparison, sweep_comparison],
    group_name=GROUP, kinds={"markdown"},
    description="The research report: a markdown document with PNG figures, one section per research question, "
    "from the comparison partitions materialised so far.",
)
def research_report(context: dg.AssetExecutionContext, source: ActivationSource, artifacts: ArtifactStoreResource) -> dg.MaterializeResult:
    from cluster_assets.report import build_report

    store = artifacts.store()
    points_by_dataset, pairs_by_point, summaries, missing, inputs = {}, {}, {}, [], []
    for stage, keys in (("sweep_comparison", list(REGISTRY)), ("dataset_comparison", list(SWEEP))):
        for key in keys:
            parts = partitions_for(store, source, stage, key)
            missing += [f"clusters[{key}|{n}]" if stage == "sweep_comparison" else f"clusters[{n}|{key}]" for n, p in parts.items() if p is None]
            art = comparison_artifact(store, stage, key, parts)
            if not any(parts.values()):
                continue
            if not art.exists:
                missing.append(f"{stage}[{key}] (not materialised for the current partitions)")
                continue
            inputs.append(art.hash)
            if stage == "sweep_comparison":
                points_by_dataset[key] = pl.read_parquet(art.path / "points.parquet")
            else:
                summaries[key] = json.loads((art.path / SUMMARY).read_text())
                pairs_by_point[key] = pl.read_parquet(art.path / "pairs.parquet") if (art.path / "pairs.parquet").exists() else pl.DataFrame()
    missing = sorted(set(missing))
    report = build_report(points_by_dataset, pairs_by_point, summaries, SWEEP, missing)
    artifact = store.artifact("research_report", sorted(inputs))
    reused = artifact.exists
    if not reused:
        with store.write(artifact, {"inputs": sorted(inputs), "missing": missing}) as folder:
            (folder / "figures").mkdir()
            for name, png in report.figures.items():
                (folder / "figures" / name).write_bytes(png)
            (folder / "report.md").write_text(report.markdown)
    context.log.info(f"report written to {artifact.path / 'report.md'}")
    inline = report.markdown
    for name, png in report.figures.items():
        import base64

        inline = inline.replace(f"(figures/{name})", f"(data:image/png;base64,{base64.b64encode(png).decode()})")
    return result(artifact, reused, report_path=dg.MetadataValue.path(str(artifact.path / "report.md")),
                  missing=dg.MetadataValue.json(missing), report=dg.MetadataValue.md(inline))
