"""Cluster analysis at a cut of the merge hierarchy.

Inputs are the clustering (a label per kept feature), the sparse token activations
(tokens x d_sae) and each token's prompt; outputs are plain column dicts (numpy arrays /
lists) so any table library can hold them.  A cluster is *active* on a token when any
member feature is active (activation > threshold) there.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from cluster_assets.core.history import MergeHistory


def cut_labels(history: MergeHistory, cut: str | int) -> tuple[int, np.ndarray]:
    """(k, labels) at ``cut``: ``"mdl"`` (the MDL-minimising step) or a fixed number of groups."""
    if cut == "mdl":
        k = history.best_k()
    else:
        k = int(cut)
        lowest = history.n_features - history.n_merges
        if not lowest <= k <= history.n_features:
            raise ValueError(f"cut k={k} is outside the merged range [{lowest}, {history.n_features}]")
    return k, history.labels_at(k)


def quadrants(entropy: np.ndarray, varentropy: np.ndarray) -> np.ndarray:
    """The research notebook's entropy/varentropy quadrant of each feature (median split).

    low/low "flowing", high entropy/low varentropy "careful", low/high "exploring",
    high/high "resampling"; NaN statistics give "" (no quadrant).
    """
    out = np.full(entropy.shape, "", dtype=object)
    ok = np.isfinite(entropy) & np.isfinite(varentropy)
    if not ok.any():
        return out.astype(str)
    high_e = entropy > np.median(entropy[ok])
    high_v = varentropy > np.median(varentropy[ok])
    names = {(False, False): "flowing", (True, False): "careful", (False, True): "exploring", (True, True): "resampling"}
    for (e, v), name in names.items():
        out[ok & (high_e == e) & (high_v == v)] = name
    return out.astype(str)


@dataclass
class ClusterAnalysis:
    clusters: dict[str, list]  # one row per cluster
    top_prompts: dict[str, list]  # one row per (cluster, rank)
    correlation: np.ndarray  # (k, k) Pearson correlation of prompt-level cluster activity
    prompt_activity: np.ndarray  # (n_prompts, k) active-token count of each cluster per prompt


def analyse_clusters(
    labels: np.ndarray,
    feature_ids: np.ndarray,
    activations: sp.csr_array,
    token_prompt: np.ndarray,
    token_text: list[str],
    threshold: float,
    top_n: int = 5,
) -> ClusterAnalysis:
    """Per-cluster statistics, top prompts (activating tokens marked ``[[tok]]``) and the
    cluster-cluster correlation of prompt-level activity.

    labels: (n_kept,) cluster of each kept feature, 0..k-1; feature_ids: their SAE ids.
    activations: (tokens, d_sae) CSR; token_prompt: (tokens,) prompt id; token_text: (tokens,).
    """
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max(initial=-1)) + 1
    n_tokens = activations.shape[0]
    member = sp.csr_array((np.ones(labels.size), (feature_ids, labels)), shape=(activations.shape[1], k))
    acts = sp.csr_array(activations)
    on = acts.data > threshold
    # each matrix gets its own index arrays: eliminate_zeros() compacts them in place
    active = sp.csr_array((on.astype(np.float64), acts.indices.copy(), acts.indptr.copy()), shape=acts.shape)
    active_values = sp.csr_array((np.where(on, acts.data, 0.0).astype(np.float64), acts.indices.copy(), acts.indptr.copy()), shape=acts.shape)
    active.eliminate_zeros()
    active_values.eliminate_zeros()
    # per token: how many member features of each cluster are active, and their summed activation
    n_active = sp.csc_array(active @ member)
    value = sp.csc_array(active_values @ member)
    cluster_tokens = np.diff(n_active.indptr)  # tokens where the cluster is active
    prompts, token_prompt_row = np.unique(token_prompt, return_inverse=True)
    to_prompt = sp.csr_array((np.ones(n_tokens), (token_prompt_row, np.arange(n_tokens))), shape=(prompts.size, n_tokens))
    prompt_tokens = (to_prompt @ (n_active > 0).astype(np.float64)).toarray()  # (prompts, k) active-token counts
    prompt_mass = (to_prompt @ value).toarray()

    sizes = np.bincount(labels, minlength=k)
    rows: dict[str, list] = {"cluster": [], "size": [], "feature_ids": [], "active_tokens": [], "firing_rate": [],
                             "sparsity": [], "mean_activation": [], "max_activation": [], "prompts_active": []}
    top: dict[str, list] = {"cluster": [], "rank": [], "prompt_id": [], "active_tokens": [], "activation_mass": [], "marked_text": []}
    token_order = np.argsort(token_prompt_row, kind="stable")
    starts = np.searchsorted(token_prompt_row[token_order], np.arange(prompts.size + 1))
    for c in range(k):
        lo, hi = n_active.indptr[c], n_active.indptr[c + 1]
        vals = value.data[value.indptr[c] : value.indptr[c + 1]]
        counts = n_active.data[lo:hi]
        rows["cluster"].append(c)
        rows["size"].append(int(sizes[c]))
        rows["feature_ids"].append(sorted(int(f) for f in feature_ids[labels == c]))
        rows["active_tokens"].append(int(cluster_tokens[c]))
        rows["firing_rate"].append(cluster_tokens[c] / max(n_tokens, 1))
        rows["sparsity"].append(1.0 - cluster_tokens[c] / max(n_tokens, 1))
        # mean activation per active (token, member feature) pair; max over them
        rows["mean_activation"].append(float(vals.sum() / counts.sum()) if counts.sum() else 0.0)
        col = active_values[:, feature_ids[labels == c]]
        rows["max_activation"].append(float(col.data.max()) if col.nnz else 0.0)
        rows["prompts_active"].append(int((prompt_tokens[:, c] > 0).sum()))
        order = np.lexsort((prompts, -prompt_mass[:, c], -prompt_tokens[:, c]))
        active_tokens_of_c = set(n_active.indices[lo:hi].tolist())
        for rank, p in enumerate(order[:top_n]):
            if prompt_tokens[p, c] == 0:
                break
            tok_rows = token_order[starts[p] : starts[p + 1]]
            text = "".join(f"[[{token_text[t]}]]" if t in active_tokens_of_c else token_text[t] for t in tok_rows)
            top["cluster"].append(c)
            top["rank"].append(rank)
            top["prompt_id"].append(int(prompts[p]))
            top["active_tokens"].append(int(prompt_tokens[p, c]))
            top["activation_mass"].append(float(prompt_mass[p, c]))
            top["marked_text"].append(text)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.corrcoef(prompt_tokens, rowvar=False) if k > 1 else np.ones((k, k))
    corr = np.nan_to_num(np.asarray(corr, dtype=np.float64).reshape(k, k), nan=0.0)
    return ClusterAnalysis(rows, top, corr, prompt_tokens)
