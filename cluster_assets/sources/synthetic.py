"""Activations with planted co-firing structure, from sae-lens' synthetic toolkit, and how well
each clustering method recovers it.

The plant (:class:`~cluster_assets.config.models.GroundTruth`, the registry's ``ground_truth``): ``groups`` groups of ``group_size`` features that co-fire (a Gaussian
copula with correlation ``correlation`` inside a group, sae-lens' ``ActivationGenerator``), the first
``hierarchies`` of them trees (a parent whose children fire only when it fires, sae-lens'
``HierarchyNode``); group firing probabilities spread Zipf-like from ``max_firing`` down to
``min_firing``; and ``noise_features`` independent features, some very frequent (as real SAEs
have), which the truth counts as singletons.  A sample is a token; consecutive blocks of
``tokens_per_prompt`` samples are a prompt (what the density baseline's profiles sum over).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch

from cluster_assets.config.models import GroundTruth
from cluster_assets.core import MembershipConfig, build_memberships, cluster, coactivation
from cluster_assets.core.clustering import ClusteringConfig
from cluster_assets.core.comparison import adjusted_rand_index, best_matches
from cluster_assets.core.heldout import with_singletons
from cluster_assets.sources.numerics import fixed_threads


def truth(planted: GroundTruth) -> np.ndarray:
    """(n_features,) int64 planted group of each feature; each noise feature a group of its own."""
    grouped = np.repeat(np.arange(planted.groups), planted.group_size)
    return np.concatenate([grouped, planted.groups + np.arange(planted.noise_features)]).astype(np.int64)


def generator(planted: GroundTruth) -> Any:
    """sae-lens' ``ActivationGenerator`` for the plant."""
    from sae_lens.synthetic import ActivationGenerator, HierarchyNode, hierarchy_modifier, zipfian_firing_probabilities

    g, m = planted.groups, planted.group_size
    group_p = zipfian_firing_probabilities(g, max_prob=planted.max_firing, min_prob=planted.min_firing)
    noise_p = torch.full((planted.noise_features,), planted.min_firing * 3)
    noise_p[: planted.frequent_noise] = 0.5
    probabilities = torch.cat([group_p.repeat_interleave(m), noise_p])
    labels = torch.from_numpy(truth(planted))
    same_group = (labels[:, None] == labels[None, :]) & (torch.arange(planted.n_features)[:, None] < g * m)
    correlation = torch.where(same_group, planted.correlation, 0.0)
    correlation.fill_diagonal_(1.0)
    trees = [
        HierarchyNode(feature_index=k * m, children=[HierarchyNode(feature_index=k * m + c) for c in range(1, m)])
        for k in range(planted.hierarchies)
    ]
    torch.manual_seed(planted.seed)
    return ActivationGenerator(
        planted.n_features,
        probabilities,
        std_firing_magnitudes=0.3,
        mean_firing_magnitudes=1.0,
        modify_activations=hierarchy_modifier(trees) if trees else None,
        correlation_matrix=correlation,
    )


def sample(planted: GroundTruth, n_samples: int, replicate: int = 0) -> tuple[sp.csr_array, np.ndarray]:
    """(n_samples, n_features) float32 CSR activations and each sample's prompt (blocks of
    ``tokens_per_prompt``); ``replicate`` draws another independent sample of the same plant."""
    gen = generator(planted)
    torch.manual_seed(planted.seed * 1_000_003 + replicate + 1)
    with fixed_threads(1):  # the copula's Cholesky and matmul: the same draws at any thread count
        dense = gen.sample(n_samples).clamp_min(0).numpy().astype(np.float32)
    return sp.csr_array(dense), np.arange(n_samples, dtype=np.int64) // planted.tokens_per_prompt


def recovery(
    planted: GroundTruth, n_samples: int, config: ClusteringConfig, replicate: int = 0, min_firing_rate: float = 0.0
) -> dict[str, Any]:
    """How well ``config``'s method recovers the plant from ``n_samples`` samples: ARI against the
    planted groups (on the features kept; noise labels count as singletons), the mean best-match
    Jaccard of the planted groups, and the clusters found."""
    values, prompts = sample(planted, n_samples, replicate)
    members = build_memberships(values, prompts, MembershipConfig(min_firing_rate=min_firing_rate)).memberships
    result = cluster(members, config, activations=values, token_prompt=prompts, cofiring=coactivation(members.activity))
    cut = result.at("mdl")
    kept = np.asarray(cut.feature_ids)
    planted_labels, found = truth(planted)[kept], with_singletons(cut.labels)
    grouped = planted_labels < planted.groups
    matches = best_matches(kept[grouped], planted_labels[grouped], kept, found)
    return {
        "method": result.method,
        "samples": n_samples,
        "kept": int(kept.size),
        "clusters": cut.k,
        "noise": cut.noise,
        "ari": adjusted_rand_index(planted_labels, found),
        "jaccard": float(np.mean(matches.jaccard)) if matches.jaccard.size else 0.0,
    }


def recovery_curve(planted: GroundTruth, configs: Mapping[str, ClusteringConfig]) -> list[dict[str, Any]]:
    """:func:`recovery` of every named method config at every one of ``planted.sample_sizes``, one row each."""
    return [{"point": name} | recovery(planted, n, config) for name, config in configs.items() for n in planted.sample_sizes]
