"""The pipeline: every stage as one row of :data:`STAGES`, in order.

A row names the stage's body, its format, every stage it reads and the sweep sections it
depends on (:class:`~cluster_assets.defs.stages.Stage`); the assets, their Dagster deps, the
content addresses, the jobs and the partition chain are all derived from it.
"""

from __future__ import annotations

from collections.abc import Mapping

from cluster_assets.defs.assets import clustering, comparisons, explorer, model
from cluster_assets.defs.stages import MODEL_POOL, Stage
from cluster_assets.reporting.explorer import templates_version
from cluster_assets.storage import formats as fmt

STAGES: dict[str, Stage] = {
    s.name: s
    for s in [
        Stage(
            "prompts",
            fmt.PromptsFormat(),
            model.prompts,
            sections=("prompts",),
            group="model_side",
            kinds=frozenset({"polars"}),
            description="Sampled prompts of one dataset: prompt_id, text, n_tokens, truncated, token_ids.",
        ),
        Stage(
            "sae",
            fmt.SAEFormat(),
            model.sae,
            partitioning="none",
            group="model_side",
            kinds=frozenset({"pytorch"}),
            pool=MODEL_POOL,
            numerics=True,
            # 4: the model runs in the stream's first pass only; later passes read those activations back
            # 3: activations streamed through sae-lens' mixing buffer, long texts cut into pieces, AuxK window
            # 2: MKL strict CNR, fixed training threads (same bytes at any thread count)
            code_version="4",
            description="The SAE that serves every dataset (one feature identity), in sae-lens' format: trained on the "
            "registry's sae_training datasets (embedded mode) or the pretrained hub SAE.",
        ),
        Stage(
            "sae_evals",
            fmt.TablesFormat(),
            model.sae_evals,
            reads=("sae",),
            sections=("datasets", "sae_evaluation"),  # the datasets in use, and how much of their held-out text
            partitioning="none",
            group="model_side",
            kinds=frozenset({"pytorch", "polars"}),
            pool=MODEL_POOL,
            numerics=True,
            description="The SAE measured as the field measures SAEs, on held-out text of every dataset (sae-lens' "
            "evals): CE loss recovered vs zero-ablation, KL divergence, explained variance, L0, dead and dense features.",
        ),
        Stage(
            "activations",
            fmt.ActivationsFormat(),
            model.activations,
            reads=("prompts", "sae"),
            sections=("activations",),
            group="model_side",
            kinds=frozenset({"pytorch", "scipy"}),
            pool=MODEL_POOL,
            numerics=True,
            # 4: the sample's rows of its shards (prompts in draw order), not a gathered copy
            # 3: gathered from activation shards, prompts batched within windows of draws (sources.shards)
            # 2: MKL strict CNR, fixed training threads (same bytes at any thread count)
            code_version="4",
            description="Per-token SAE feature activations (sparse CSR, zeros dropped) as rows of activation shards (fixed "
            "blocks of the dataset's draws that samples of other sizes and replicates share), and the sample's token table; "
            "later stages read them one shard at a time.",
        ),
        Stage(
            "memberships",
            fmt.MembershipsFormat(),
            clustering.memberships,
            reads=("activations",),
            sections=("memberships",),
            kinds=frozenset({"numba", "polars"}),
            description="Per-feature statistics of every SAE feature, the filters, and the memberships of the kept features.",
        ),
        Stage(
            "coactivation",
            fmt.CoactivationFormat(),
            clustering.coactivation,
            reads=("memberships",),
            kinds=frozenset({"numba"}),
            description="Exact integer co-firing counts between kept features (diagonal: firing counts).",
        ),
        Stage(
            "merge_history",
            fmt.ClusteringFormat(),
            clustering.merge_history,
            reads=("memberships", "coactivation", "activations"),  # activations: the density baseline's profiles
            sections=("clustering",),
            kinds=frozenset({"numba", "scipy"}),
            code_version="2",  # 2: the baseline's HDBSCAN on raw profiles from all pairwise distances
            description="The clustering method's output: the MDL merge's history (pairs, costs, MDL per step, scipy "
            "linkage), or the fixed labels of the UMAP+HDBSCAN baseline.",
        ),
        Stage(
            "clusters",
            fmt.ClustersFormat(),
            clustering.clusters,
            reads=("merge_history", "activations", "coactivation"),
            sections=("clusters",),
            kinds=frozenset({"polars"}),
            description="Clusters at the cut: members, statistics, what they fire on, top prompts, cluster correlation.",
        ),
        Stage(
            "dataset_comparison",
            fmt.TablesFormat(),
            comparisons.dataset_comparison,
            reads=("clusters", "activations", "prompts"),
            partitioning="hparams",
            group="comparisons",
            kinds=frozenset({"polars"}),
            description="How the clusterings of one sweep point differ across datasets, "
            "against the replicate noise floor: ARI, NMI, best-match Jaccard, stable and dataset-specific clusters.",
        ),
        Stage(
            "sweep_comparison",
            fmt.TablesFormat(),
            comparisons.sweep_comparison,
            reads=("clusters", "activations", "prompts"),
            partitioning="dataset",
            group="comparisons",
            kinds=frozenset({"polars"}),
            code_version="2",  # 2: tokens per sample of each point; the reference's floor on the features a point kept
            description="How one dataset's clustering changes across sweep points, against the "
            "replicate noise floor, and each clustering's held-out description length.",
        ),
        Stage(
            "ground_truth",
            fmt.TablesFormat(),
            comparisons.ground_truth,
            sections=("ground_truth", "clustering"),  # the plant, and every clustering method of the sweep
            partitioning="none",
            group="comparisons",
            kinds=frozenset({"pytorch", "polars"}),
            numerics=True,  # the plant is drawn with torch (a Gaussian copula)
            description="Every clustering method of the sweep asked to recover planted co-firing structure (sae-lens' "
            "synthetic activations: correlated groups, hierarchies, frequent features): ARI and best-match Jaccard "
            "against the plant, by number of samples.",
        ),
        Stage(
            "research_report",
            fmt.DocumentFormat(),
            comparisons.research_report,
            reads=("sae_evals", "ground_truth", "dataset_comparison", "sweep_comparison"),
            partitioning="none",
            group="comparisons",
            kinds=frozenset({"markdown"}),
            description="The research report: the learning curve (how many tokens a stable clustering needs), then one "
            "section per research question, each effect against its noise floor.",
            code_version="5",  # 5: the learning curve; 4: Q3 sets the merge against another method; 3: the SAE's quality
        ),
        Stage(
            "cluster_explorer",
            fmt.SiteFormat(),
            explorer.cluster_explorer,
            # every partition with clusters (and its chain), each point's comparison, the SAE's quality, the report's figures
            reads=(
                "sae_evals",
                "activations",
                "memberships",
                "coactivation",
                "merge_history",
                "clusters",
                "dataset_comparison",
                "research_report",
            ),
            partitioning="none",
            group="comparisons",
            kinds=frozenset({"html", "plotly"}),
            code_version=templates_version(),  # the page data's release and a digest of the templates
            description="The cluster explorer: a static site (opens from file://, or `make explore`) with every partition's "
            "clusters, each cluster's members, shaded top prompts, co-firing, merge-tree neighbours and matches elsewhere.",
        ),
    ]
}


def partition_chain(stages: Mapping[str, Stage] = STAGES) -> tuple[str, ...]:
    """The stages of one (dataset, sweep point) partition, in pipeline order."""
    return tuple(name for name, stage in stages.items() if stage.partitioning == "dataset_point")
