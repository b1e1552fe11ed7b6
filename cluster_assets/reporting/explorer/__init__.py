"""The cluster explorer: a static site (HTML, CSS, JS and per-page data) built from stored artifacts.

It opens from ``file://`` (no server, no network): pages are the four templates in this folder
rendered once with jinja2, and each page loads only the data it shows, as ``data/...js`` files
that hand a JSON value to ``EXPLORER.receive`` (a browser does not let a ``file://`` page fetch
JSON, but it runs scripts).  Figures are drawn by the plotly.js that ships in the ``plotly``
Python package, copied once into ``assets/``.

Layout of a site::

    index.html  partition.html?p=<dataset>|<partition>  cluster.html?p=...&c=<cluster>
    comparison.html?point=<point>
    assets/{explorer.js, explorer.css, plotly.min.js}
    data/index.js                      every partition, point and report figure
    data/p/<slug>/clusters.js          one row per cluster of a partition (the list page)
    data/p/<slug>/detail_<n>.js        clusters n*CHUNK .. n*CHUNK+CHUNK-1 in full (the cluster page), and
                                       the tokens of their top prompts, each prompt once
    data/c/<point>.js                  a point's stable and dataset-specific clusters
    report/<figure>.png                the research report's figures
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
import numpy as np
import polars as pl

from cluster_assets.core.analysis import token_cluster_activations
from cluster_assets.core.coactivation import CoFiring
from cluster_assets.core.comparison import best_matches
from cluster_assets.core.history import MergeHistory, neighbourhoods
from cluster_assets.core.tokens import CLASSES
from cluster_assets.storage.formats import Clusters, SampleActivations, Site

#: Clusters per detail file: a cluster page loads one file of this many clusters.
CHUNK = 50
#: Members drawn in a cluster's co-firing heatmap (its most frequent), and partners listed per merge.
HEATMAP_MEMBERS, PARTNERS_SHOWN = 40, 20
PAGES = ("index.html", "partition.html", "cluster.html", "comparison.html")
ASSETS = ("explorer.js", "explorer.css")


@dataclass(frozen=True)
class Partition:
    """One (dataset, sweep partition) of the site and its stored clusters (the light part, kept for every partition)."""

    dataset: str
    partition: str  # the hparams key, e.g. base@2
    point: str
    replicate: int  # 0-based
    clusters: Clusters

    @property
    def key(self) -> str:
        return f"{self.dataset}|{self.partition}"

    @property
    def slug(self) -> str:
        return slug(self.key)

    def keys(self) -> dict[str, Any]:
        """What names the partition on a page."""
        return {
            "key": self.key,
            "slug": self.slug,
            "dataset": self.dataset,
            "partition": self.partition,
            "point": self.point,
            "replicate": self.replicate,
            "method": self.clusters.cut.method,
        }


@dataclass(frozen=True)
class PartitionInputs:
    """The heavy inputs of one partition's pages, loaded one partition at a time."""

    activations: SampleActivations
    features: pl.DataFrame  # memberships' per-feature statistics (every SAE feature)
    cofiring: CoFiring  # co-firing counts of the kept features, in the clustering's feature order
    kept_ids: np.ndarray  # (kept,) feature id of each co-firing row
    history: MergeHistory | None  # the merge history (None for fixed labels)
    threshold: float  # active = activation above this (the point's memberships threshold)


def build_site(
    partitions: list[Partition],
    inputs: Callable[[Partition], PartitionInputs],
    comparisons: Mapping[str, Mapping[str, pl.DataFrame]],
    evals: pl.DataFrame | None = None,
    report_figures: Mapping[str, bytes] | None = None,
    neuronpedia: bool = False,
    log: Callable[[str], None] = lambda _: None,
) -> Site:
    """The site of ``partitions``. ``inputs`` loads a partition's heavy inputs (called once per
    partition, one at a time); ``comparisons``: each sweep point's ``dataset_comparison`` tables
    (matches, stable, specific, floors, activity); ``evals``: the SAE's evals table (one row per dataset)."""
    site = Site()
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(_here())), autoescape=True, keep_trailing_newline=True)
    for page in PAGES:
        site.files[page] = env.get_template(page).render(page=page.removesuffix(".html")).encode()
    for name in ASSETS:
        site.files[f"assets/{name}"] = (_here() / name).read_bytes()
    site.files["assets/plotly.min.js"] = _plotly_js()
    figures = dict(report_figures or {})
    for name, png in figures.items():
        site.files[f"report/{name}"] = png

    def add(path: str, value: Any) -> None:
        site.add_data(path, _plain(value))

    for p in partitions:
        compared = comparisons.get(p.point)
        table, matches, replicas = _described(p.clusters), _dataset_matches(p, compared), _replicate_matches(p, partitions)
        add(f"p/{p.slug}/clusters.js", _cluster_list(p, table, matches, replicas))
        pages, prompt_tokens = _cluster_details(p, inputs(p), table, matches, replicas, _activity(p, compared), neuronpedia)
        for n, chunk in enumerate(_chunks(pages, CHUNK, prompt_tokens)):
            add(f"p/{p.slug}/detail_{n}.js", chunk)
        log(f"explorer: {p.key}: {len(pages)} cluster pages")
    for point, tables in comparisons.items():
        add(f"c/{point}.js", _comparison(point, tables, partitions))
    add("index.js", _index(partitions, comparisons, evals, sorted(figures)))
    site.summary = {
        "partitions": len(partitions),
        "clusters": sum(p.clusters.clusters.height for p in partitions),
        "points_compared": len(comparisons),
        "files": len(site.files),
        "size_mb": round(sum(map(len, site.files.values())) / 1e6, 2),
    }
    return site


def slug(key: str) -> str:
    """The folder name of a partition key's data (``kjv|base@2`` -> ``kjv--base-r2``)."""
    dataset, partition = key.split("|", 1)
    return f"{dataset}--{partition.replace('@', '-r')}"


def templates_version(release: str = "4") -> str:
    """The explorer's code version: ``release`` (bump it when the page data change) and a digest of the
    templates, scripts, styles and the plotly.js copied in, so that changing any of them moves the site
    to a new address."""
    import xxhash

    digest = xxhash.xxh64()
    for name in sorted(PAGES + ASSETS + ("layout.html",)):
        digest.update(name.encode() + b"\0" + (_here() / name).read_bytes())
    digest.update(b"plotly.min.js\0" + _plotly_js())
    return f"{release}-{digest.hexdigest()[:8]}"


# -- page data --------------------------------------------------------------------------------


Matches = dict[int, dict[str, tuple[int, float]]]  # cluster -> where (a dataset or a partition key) -> (its best match, Jaccard)


def _cluster_list(p: Partition, table: pl.DataFrame, matches: Matches, replicas: Matches) -> dict:
    best_replicate = {c: max(v[1] for v in per.values()) for c, per in replicas.items() if per}
    rows = []
    for row in table.iter_rows(named=True):
        c = row["cluster"]
        mine = matches.get(c, {})
        rows.append(
            {
                "cluster": c,
                "size": row["size"],
                "active_tokens": row["active_tokens"],
                "firing_rate": row["firing_rate"],
                "kind": row.get("kind"),
                "token_class": _top_class(row),
                "top_tokens": (row.get("top_tokens") or [])[:8],
                "feature_ids": row["feature_ids"],
                "stability": best_replicate.get(c),
                "matched": max((m[1] for m in mine.values()), default=None),
            }
        )
    return {**p.keys(), "chunk": CHUNK, "rows": rows}


def _cluster_details(
    p: Partition,
    inputs: PartitionInputs,
    table: pl.DataFrame,
    matches: Matches,
    replicas: Matches,
    activity: dict[int, dict[str, float]],
    neuronpedia: bool,
) -> tuple[list[dict], dict[int, list[str]]]:
    """Each cluster's page (a top prompt's ``acts``: ``[position, activation]`` of its tokens where the
    cluster is active, a sparse row) and the tokens of every top prompt, by prompt id."""
    record, acts = p.clusters, inputs.activations
    labels_frame = record.labels
    feature_ids, labels = labels_frame["feature_id"].to_numpy(), labels_frame["cluster"].to_numpy()
    k = table.height
    # the tokens of every top prompt, and each cluster's activation on them
    top = record.top_prompts.sort(["cluster", "rank"])
    tokens = acts.tokens.with_row_index("row").filter(pl.col("prompt_id").is_in(top["prompt_id"].unique().to_list()))
    tokens = tokens.sort(["prompt_id", "position"])
    rows = tokens["row"].to_numpy().astype(np.int64)
    by_cluster = token_cluster_activations(acts.rows(rows), feature_ids, labels, np.arange(rows.size), inputs.threshold).tocsc()
    spans = {pid: (int(s), int(e)) for pid, s, e in _prompt_spans(tokens["prompt_id"].to_numpy())}
    texts = tokens["token"].to_list()
    stats = inputs.features.filter(pl.col("feature_id").is_in(feature_ids.tolist()))
    stats = {r["feature_id"]: r for r in stats.iter_rows(named=True)}
    kept_position = {int(f): i for i, f in enumerate(inputs.kept_ids.tolist())}
    tree = neighbourhoods(inputs.history, k) if inputs.history is not None else None
    links = {int(c): ls for c, ls in zip(table["cluster"], table["feature_links"])} if "feature_links" in table.columns else {}
    out = []
    for row in table.sort("cluster").iter_rows(named=True):
        c = row["cluster"]
        members = sorted(row["feature_ids"], key=lambda f: (-stats.get(f, {}).get("firing_count", 0), f))
        column = by_cluster[:, [c]].toarray().ravel() if k else np.zeros(0)
        prompts = []
        for prompt in top.filter(pl.col("cluster") == c).iter_rows(named=True):
            start, end = spans.get(prompt["prompt_id"], (0, 0))
            at = np.flatnonzero(column[start:end])
            prompts.append(
                {
                    "prompt_id": prompt["prompt_id"],
                    "active_tokens": prompt["active_tokens"],
                    "acts": [[int(i), round(float(column[start + i]), 4)] for i in at],
                }
            )
        shown = members[:HEATMAP_MEMBERS]
        at = [kept_position[f] for f in shown if f in kept_position]
        heat = np.log1p(inputs.cofiring.square(at).astype(np.float64)) if at else np.zeros((0, 0))
        feature_links = dict(zip(row["feature_ids"], links.get(c) or [])) if neuronpedia else {}
        nb = tree[c] if tree is not None else None
        out.append(
            {
                "cluster": c,
                "size": row["size"],
                "active_tokens": row["active_tokens"],
                "firing_rate": row["firing_rate"],
                "mean_activation": row["mean_activation"],
                "max_activation": row["max_activation"],
                "prompts_active": row["prompts_active"],
                "kind": row.get("kind"),
                "top_tokens": list(zip(row.get("top_tokens") or [], row.get("top_counts") or [])),
                "classes": {name: row.get(f"share_{name}") for name in CLASSES if row.get(f"share_{name}") is not None},
                "members": [_member(f, stats.get(f), feature_links.get(f)) for f in members],
                "prompts": prompts,
                "heatmap": {"features": [f for f in shown if f in kept_position], "z": np.round(heat, 2).tolist()},
                "tree": None
                if nb is None
                else {
                    "formed_from": nb.formed_from,
                    "merged_into": nb.merged_into,
                    "partners": list(nb.partners[:PARTNERS_SHOWN]),
                    "partners_total": len(nb.partners),
                },
                "activity": activity.get(c, {p.dataset: row["firing_rate"]}),
                "matches": {
                    other: {"partition": f"{other}|{p.point}", "cluster": b, "jaccard": j} for other, (b, j) in matches.get(c, {}).items()
                },
                "replicates": {key: {"partition": key, "cluster": b, "jaccard": j} for key, (b, j) in replicas.get(c, {}).items()},
            }
        )
    return out, {pid: texts[start:end] for pid, (start, end) in spans.items()}


def _comparison(point: str, tables: Mapping[str, pl.DataFrame], partitions: list[Partition]) -> dict:
    stable, specific = tables.get("stable"), tables.get("specific")
    return {
        "point": point,
        "partitions": sorted(p.key for p in partitions if p.point == point and p.replicate == 0),
        "stable": [] if stable is None else stable.to_dicts(),
        "specific": [] if specific is None else specific.to_dicts(),
    }


def _index(
    partitions: list[Partition], comparisons: Mapping[str, Mapping[str, pl.DataFrame]], evals: pl.DataFrame | None, figures: list[str]
) -> dict:
    quality = {r["dataset"]: r for r in evals.iter_rows(named=True)} if evals is not None and "dataset" in evals.columns else {}
    floors: dict[tuple[str, str], float] = {}
    for point, tables in comparisons.items():
        floor = tables.get("floors")
        if floor is not None and not floor.is_empty():
            for r in floor.filter(pl.col("metric") == "ari").iter_rows(named=True):
                floors[(point, r["condition"])] = r["value"]
    rows = []
    for p in partitions:
        cut, q = p.clusters.cut, quality.get(p.dataset, {})
        rows.append(
            {
                **p.keys(),
                "tokens": cut.tokens,
                "kept_features": p.clusters.labels.height,
                "clusters": cut.k,
                "noise_features": cut.noise,
                "loss_recovered": q.get("loss_recovered"),
                "explained_variance": q.get("explained_variance"),
                "floor_ari": floors.get((p.point, p.dataset)),
            }
        )
    return {"partitions": rows, "points": sorted(comparisons), "figures": figures}


# -- helpers ----------------------------------------------------------------------------------


def _described(record: Clusters) -> pl.DataFrame:
    described = record.extra.get("descriptions")
    return record.clusters.join(described, on="cluster", how="left") if described is not None else record.clusters


def _top_class(row: Mapping[str, Any]) -> str | None:
    shares = {name: row.get(f"share_{name}") for name in CLASSES}
    shares = {n: s for n, s in shares.items() if s is not None}
    return max(shares, key=lambda n: shares[n]) if shares and max(shares.values()) > 0 else None


def _dataset_matches(p: Partition, compared: Mapping[str, pl.DataFrame] | None) -> Matches:
    """Each cluster's best match on every other dataset (first replicates only: what the comparison matched)."""
    matches = compared.get("matches") if compared is not None and p.replicate == 0 else None
    if matches is None or matches.is_empty():
        return {}
    out: Matches = {}
    for c, other, best, jac in matches.filter(pl.col("name") == p.dataset).select("cluster", "other", "best", "jaccard").iter_rows():
        if best >= 0:  # a negative best: none of its members is clustered there, nothing to link to
            out.setdefault(int(c), {})[other] = (int(best), float(jac))
    return out


def _replicate_matches(p: Partition, partitions: Iterable[Partition]) -> Matches:
    """Each cluster's best match in every other replicate of its point on its dataset."""
    out: Matches = {}
    mine = p.clusters.labels
    for q in partitions:
        if q.dataset != p.dataset or q.point != p.point or q.partition == p.partition:
            continue
        theirs = q.clusters.labels
        m = best_matches(
            mine["feature_id"].to_numpy(), mine["cluster"].to_numpy(), theirs["feature_id"].to_numpy(), theirs["cluster"].to_numpy()
        )
        for c, best, jac in zip(m.cluster.tolist(), m.best.tolist(), m.jaccard.tolist()):
            if best >= 0:
                out.setdefault(int(c), {})[q.key] = (int(best), float(jac))
    return out


def _activity(p: Partition, compared: Mapping[str, pl.DataFrame] | None) -> dict[int, dict[str, float]]:
    """Each cluster's firing rate on every dataset (the comparison measured first replicates on every dataset)."""
    activity = compared.get("activity") if compared is not None and p.replicate == 0 else None
    if activity is None or activity.is_empty():
        return {}
    out: dict[int, dict[str, float]] = {}
    for c, on, rate in activity.filter(pl.col("clustered_on") == p.dataset).select("cluster", "measured_on", "firing_rate").iter_rows():
        out.setdefault(int(c), {})[on] = float(rate)
    return out


def _member(feature: int, stats: Mapping[str, Any] | None, link: str | None) -> dict:
    stats = stats or {}
    return {
        "feature": feature,
        "firing_rate": stats.get("firing_rate"),
        "max": stats.get("max"),
        "mean": stats.get("mean"),
        "entropy": stats.get("entropy"),
        **({"link": link} if link else {}),
    }


def _prompt_spans(prompt_ids: np.ndarray) -> list[tuple[int, int, int]]:
    """(prompt_id, start, end) of each run of equal ids in a sorted array."""
    if prompt_ids.size == 0:
        return []
    cuts = np.flatnonzero(np.diff(prompt_ids)) + 1
    starts, ends = np.r_[0, cuts], np.r_[cuts, prompt_ids.size]
    return [(int(prompt_ids[s]), int(s), int(e)) for s, e in zip(starts, ends)]


def _chunks(items: list[dict], size: int, prompt_tokens: Mapping[int, list[str]]) -> list[dict[str, dict]]:
    """``items`` (cluster pages) grouped ``size`` at a time by cluster id // size: ``{"clusters": {id: page},
    "tokens": {prompt id: its tokens}}``, each top prompt of the group's clusters once."""
    chunks: dict[int, dict[str, dict]] = {}
    for item in items:
        chunk = chunks.setdefault(item["cluster"] // size, {"clusters": {}, "tokens": {}})
        chunk["clusters"][str(item["cluster"])] = item
        for prompt in item["prompts"]:
            chunk["tokens"][str(prompt["prompt_id"])] = prompt_tokens.get(prompt["prompt_id"], [])
    return [chunks.get(n, {"clusters": {}, "tokens": {}}) for n in range(max(chunks, default=-1) + 1)]


def _plain(value: Any) -> Any:
    """JSON-ready: numpy scalars and arrays as Python values, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _here() -> Path:
    return Path(__file__).parent


def _plotly_js() -> bytes:
    """plotly.js as the plotly Python package ships it (no CDN)."""
    return resources.files("plotly").joinpath("package_data", "plotly.min.js").read_bytes()
