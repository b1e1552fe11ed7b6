"""Cluster analysis at a cut of the merge hierarchy, in a few passes over the sparse activations.

Inputs are the clustering (a label per kept feature), the sparse token activations
(tokens x d_sae) and each token's prompt; outputs are plain column dicts (numpy arrays /
lists) so any table library can hold them.  A cluster is *active* on a token when any
member feature is active (activation > threshold) there.  No step loops over clusters in
Python or over all tokens per cluster: one pass finds the clusters active on each token,
one aggregates them per prompt, and everything else is sorting and counting those pairs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import numba as nb
import numpy as np
import scipy.sparse as sp

from cluster_assets.core.arrays import BoolArray, Float64Array, FloatArray, Int64Array, IntArray
from cluster_assets.core.features import Blocks, blocks_of, canonical_blocks, canonical_csr, prompt_rows
from cluster_assets.core.history import MergeHistory
from cluster_assets.core.params import ParameterError, SparseMatrix, check_number


@dataclass(frozen=True)
class ClusterConfig:
    """Where to cut the hierarchy and what to keep per cluster (the ``clusters`` section of a sweep point).

    cut: ``"mdl"`` (the MDL-minimising step) or a number of clusters.
    top_prompts: prompts kept per cluster, most active tokens first.
    """

    # read by pydantic when the sweep file is validated into this type: unknown keys are errors
    __pydantic_config__ = {"extra": "forbid"}

    cut: Literal["mdl"] | int = "mdl"
    top_prompts: int = 5

    def __post_init__(self) -> None:
        if self.cut != "mdl":
            check_number("cut", self.cut, ge=1)
        check_number("top_prompts", self.top_prompts, ge=1, le=100)


def cut_labels(history: MergeHistory, cut: str | int) -> tuple[int, np.ndarray]:
    """(k, labels) at ``cut``: ``"mdl"`` (the MDL-minimising step) or a fixed number of groups."""
    if cut == "mdl":
        k = history.best_k()
    else:
        k = int(cut)
        lowest = history.n_features - history.n_merges
        if not lowest <= k <= history.n_features:
            raise ParameterError("cut", f"{k} clusters is outside the merged range [{lowest}, {history.n_features}]")
    return k, history.labels_at(k)


@dataclass(frozen=True)
class Cut:
    """A clustering's labels at a cut (:meth:`cluster_assets.core.clustering.Clustering.at`).

    mdl_at_cut is the MDL (bits/sample) at the cut of a merge history, None for fixed labels."""

    method: str
    k: int  # clusters (the baseline's noise, label -1, is not a cluster)
    feature_ids: np.ndarray
    labels: np.ndarray
    noise: int  # features labelled -1
    mdl_at_cut: float | None


@dataclass(frozen=True)
class ClusterAnalysis:
    clusters: dict[str, list[Any]]  # one row per cluster 0..k-1
    top_prompts: dict[str, list[Any]]  # one row per (cluster, rank)
    correlation: np.ndarray  # (k, k) Pearson correlation of prompt-level cluster activity (active tokens per prompt)
    descriptions: dict[str, list[Any]] | None = None  # what each cluster fires on (describe_tally), when token columns were given


@dataclass(frozen=True)
class TokenColumns:
    """Per token (row): its token id, position in its prompt, and class (index into
    :data:`cluster_assets.core.tokens.CLASSES`) -- what :func:`describe_tally` describes clusters by."""

    token_ids: np.ndarray
    positions: np.ndarray
    token_class: np.ndarray

    def rows(self, start: int, stop: int) -> TokenColumns:
        return TokenColumns(self.token_ids[start:stop], self.positions[start:stop], self.token_class[start:stop])


@dataclass
class TokenTally:
    """Per cluster, what it fired on, summed over row blocks (every count additive, so any split of
    the tokens gives the same tally): (cluster, token id) counts, class counts, position sums."""

    per_token: sp.csr_array  # (k, token ids) active tokens of each cluster by token id
    classes: np.ndarray  # (k, classes) int64
    position_sum: np.ndarray  # (k,) int64
    active: np.ndarray  # (k,) int64

    def __add__(self, other: TokenTally) -> TokenTally:
        width = max(self.per_token.shape[1], other.per_token.shape[1])
        per_token = sp.csr_array(_widened(self.per_token, width) + _widened(other.per_token, width))
        return TokenTally(per_token, self.classes + other.classes, self.position_sum + other.position_sum, self.active + other.active)


@nb.njit(cache=True)
def _sum_by_group(
    indptr: IntArray,
    cols: IntArray,
    values: FloatArray,
    col_map: IntArray,
    threshold: float,
    row_order: IntArray,
    row_group: IntArray,
    n_groups: int,
    k: int,
) -> tuple[Int64Array, Int64Array, Int64Array, Float64Array, Float64Array]:
    """Per group of rows and mapped column: how many entries and the sum of their values.

    Rows are visited in ``row_order``, along which ``row_group`` (0..n_groups-1) does not
    decrease; an entry counts when its value is above ``threshold`` and ``col_map`` maps its
    column to 0..k-1.  Returns the (groups x k) CSR (columns in order of first appearance) of
    the counts and sums, and each mapped column's largest entry value.
    """
    out_indptr = np.zeros(n_groups + 1, np.int64)
    out_c = np.empty(cols.size, np.int64)
    out_n = np.empty(cols.size, np.int64)
    out_v = np.empty(cols.size, np.float64)
    stamp = np.full(k, -1, np.int64)
    slot = np.zeros(k, np.int64)
    vmax = np.zeros(k)
    count = 0
    r = 0
    for g in range(n_groups):
        while r < row_order.size and row_group[row_order[r]] == g:
            t = row_order[r]
            for q in range(indptr[t], indptr[t + 1]):
                v = np.float64(values[q])
                c = col_map[cols[q]]
                if v > threshold and c >= 0:
                    if stamp[c] != g:
                        stamp[c] = g
                        slot[c] = count
                        out_c[count] = c
                        out_n[count] = 0
                        out_v[count] = 0.0
                        count += 1
                    out_n[slot[c]] += 1
                    out_v[slot[c]] += v
                    vmax[c] = max(vmax[c], v)
            r += 1
        out_indptr[g + 1] = count
    # copies: a view would keep the entry-sized buffers alive, ~3x the result at a block of tokens
    return out_indptr, out_c[:count].copy(), out_n[:count].copy(), out_v[:count].copy(), vmax


@nb.njit(cache=True)
def _marks(sel_c: IntArray, sel_p: IntArray, starts: IntArray, row_order: IntArray, tok_indptr: IntArray, tok_c: IntArray) -> BoolArray:
    """For each selected (cluster, prompt): whether the cluster is active on each of the prompt's
    tokens, flattened in prompt-token order (offsets: ``starts[p+1] - starts[p]`` per selection)."""
    total = 0
    for s in range(sel_c.size):
        total += starts[sel_p[s] + 1] - starts[sel_p[s]]
    out = np.zeros(total, np.bool_)
    at = 0
    for s in range(sel_c.size):
        for r in range(starts[sel_p[s]], starts[sel_p[s] + 1]):
            t = row_order[r]
            for q in range(tok_indptr[t], tok_indptr[t + 1]):
                if tok_c[q] == sel_c[s]:
                    out[at] = True
                    break
            at += 1
    return out


def runs(active: np.ndarray) -> list[tuple[int, int]]:
    """Maximal runs of True as (first, last + 1) positions."""
    edges = np.diff(np.concatenate([[0], active.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def prompt_spans(texts: list[str], active: np.ndarray) -> tuple[str, list[tuple[int, int]]]:
    """The prompt's text (its tokens' texts joined) and the [start, end) character spans of its
    runs of active tokens, so adjacent active tokens form one highlighted span."""
    offsets = np.concatenate([[0], np.cumsum([len(t) for t in texts])])
    return "".join(texts), [(int(offsets[a]), int(offsets[b])) for a, b in runs(active)]


#: Up to this many (prompt, cluster) entries the correlation's Gram matrix is a dense product (~320 MB).
DENSE_GRAM_ENTRIES = 40_000_000


def gram_of(x: sp.csr_array) -> Float64Array:
    """(k, k) ``x.T @ x`` of a sparse (rows x k) matrix, dense; exact (so the same bytes in any
    summation order) when ``x`` holds integers whose sums of products stay below 2**53, as counts do."""
    n, k = x.shape
    x = sp.csr_array(x).astype(np.float64)
    if n * k <= DENSE_GRAM_ENTRIES:  # a dense BLAS product beats the sparse one by far at these sizes
        dense = x.toarray()
        return dense.T @ dense
    return (x.T @ x).toarray()


def correlation_from_gram(gram: Float64Array, total: Float64Array, n: int) -> np.ndarray:
    """Pearson correlation between k columns over ``n`` rows from their Gram matrix (k, k) and
    column sums (k,): 0 where a column is constant."""
    cov = gram - np.outer(total, total) / max(n, 1)
    std = np.sqrt(np.clip(np.diag(cov), 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = cov / np.outer(std, std)
    return np.nan_to_num(np.clip(corr, -1.0, 1.0), nan=0.0)


def correlation_of(prompt_activity: sp.csr_array) -> np.ndarray:
    """Pearson correlation between the columns of a sparse (prompts x k) matrix (0 where a
    column is constant), from its sparse Gram matrix rather than a dense product."""
    x = sp.csr_array(prompt_activity).astype(np.float64)
    return correlation_from_gram(gram_of(x), np.asarray(x.sum(axis=0), dtype=np.float64).ravel(), x.shape[0])


def cluster_activity(activations: SparseMatrix | Blocks, feature_ids: np.ndarray, labels: np.ndarray, threshold: float) -> np.ndarray:
    """(k,) tokens on which each cluster is active (any member above ``threshold``), on any
    tokens -- another dataset's included (one SAE, one feature identity); one block at a time."""
    labels = np.asarray(labels, dtype=np.int64)
    k = int(labels.max(initial=-1)) + 1
    counts = np.zeros(k, np.int64)
    for block in blocks_of(activations):
        counts += np.bincount(_clusters_on_tokens(canonical_csr(block), feature_ids, labels, threshold, k)[1], minlength=k)
    return counts


def token_cluster_activations(
    activations: sp.csr_array, feature_ids: np.ndarray, labels: np.ndarray, rows: np.ndarray, threshold: float
) -> sp.csr_array:
    """(len(rows), k) each cluster's activation on the token ``rows`` (distinct, any order): the sum
    of its members' values above ``threshold`` (what sae_vis shades, for a cluster)."""
    labels = np.asarray(labels, dtype=np.int64)
    rows = np.asarray(rows, dtype=np.int64)
    k = int(labels.max(initial=-1)) + 1
    acts = canonical_csr(activations)
    group = np.full(acts.shape[0], -1, np.int64)
    group[rows] = np.arange(rows.size)
    cluster_of = cluster_of_features(acts.shape[1], feature_ids, labels)
    indptr, c, _, v, _ = _sum_by_group(acts.indptr, acts.indices, acts.data, cluster_of, float(threshold), rows, group, rows.size, k)
    return sp.csr_array((v, c, indptr), shape=(rows.size, k))


def cluster_of_features(n_features: int, feature_ids: np.ndarray, labels: np.ndarray) -> Int64Array:
    """(n_features,) the cluster of each SAE feature: its label where ``feature_ids`` has it, -1 elsewhere (and for noise)."""
    labels = np.asarray(labels, dtype=np.int64)
    cluster_of = np.full(n_features, -1, np.int64)
    cluster_of[np.asarray(feature_ids, dtype=np.int64)[labels >= 0]] = labels[labels >= 0]
    return cluster_of


def analyse_clusters(
    labels: np.ndarray,
    feature_ids: np.ndarray,
    activations: SparseMatrix | Blocks,
    token_prompt: np.ndarray,
    token_text: list[str],
    threshold: float,
    top_n: int = 5,
    columns: TokenColumns | None = None,
) -> ClusterAnalysis:
    """Per-cluster statistics, top prompts (text, and the [start, end) character spans of its
    runs of active tokens as ``span_starts``/``span_ends``), the cluster-cluster correlation
    of prompt-level activity and, given the token ``columns``, what each cluster fires on.

    labels: (n_kept,) cluster of each kept feature, 0..k-1 (``-1``: not analysed);
    feature_ids: their SAE ids.  activations: (tokens, d_sae) CSR, or its row blocks (two passes,
    one block of activations in memory at a time; beside the per-token inputs and one block's
    work, what it holds is per cluster: a (k, k) Gram matrix and ``top_n`` prompts each, whatever
    the number of prompts); token_prompt: (tokens,) prompt id; token_text: (tokens,) the text
    of each token.
    """
    labels = np.asarray(labels, dtype=np.int64)
    feature_ids = np.asarray(feature_ids, dtype=np.int64)
    token_prompt = np.asarray(token_prompt, dtype=np.int64)
    k = int(labels.max(initial=-1)) + 1
    active_tokens, active_pairs, prompts_active = np.zeros(k, np.int64), np.zeros(k, np.int64), np.zeros(k, np.int64)
    value_sum, cmax = np.zeros(k), np.zeros(k)
    gram, column_total, n_prompts = np.zeros((k, k)), np.zeros(k), 0
    best = _no_entries()
    tally: TokenTally | None = None
    start = 0
    # pass 1: clusters active on each token of a block (active members, summed activation), then per
    # prompt.  A prompt lies in one block, so its (prompt, cluster) entries are final there: only their
    # sums over prompts and each cluster's best few entries are carried to the next block.
    for tok, rows in _token_blocks(activations, token_prompt, feature_ids, labels, threshold, k):
        tok_indptr, tok_c, tok_n, tok_v, vmax = tok
        active_tokens += np.bincount(tok_c, minlength=k)
        active_pairs += np.bincount(tok_c, weights=tok_n, minlength=k).astype(np.int64)
        np.add.at(value_sum, tok_c, tok_v)  # in row order, carried across blocks: the bytes of one pass
        np.maximum(cmax, vmax, out=cmax)
        prompts, row_prompt, order = prompt_rows(rows)
        p_indptr, p_c, p_n, p_v, _ = _sum_by_group(tok_indptr, tok_c, tok_v, np.arange(k), -np.inf, order, row_prompt, prompts.size, k)
        prompts_active += np.bincount(p_c, minlength=k)
        gram += gram_of(sp.csr_array((p_n, p_c, p_indptr), shape=(prompts.size, k)))  # float64 inside, once
        column_total += np.bincount(p_c, weights=p_n, minlength=k)
        n_prompts += prompts.size
        p_prompt = np.repeat(prompts, np.diff(p_indptr))
        best = _top_entries(_joined(best, (p_c, p_prompt, p_n, p_v)), k, top_n)
        if columns is not None:
            block = tally_tokens(sp.csr_array((tok_n, tok_c, tok_indptr), shape=(rows.size, k)), columns.rows(start, start + rows.size))
            tally = block if tally is None else tally + block
        start += rows.size
    n_tokens = start

    sizes = np.bincount(labels[labels >= 0], minlength=k)
    by_label = np.argsort(labels, kind="stable")
    member_ids = np.split(feature_ids[by_label][labels[by_label] >= 0], np.cumsum(sizes)[:-1]) if k else []
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_activation = np.where(active_pairs > 0, value_sum / active_pairs, 0.0)
    rows_out = {
        "cluster": list(range(k)),
        "size": sizes.tolist(),
        "feature_ids": [sorted(m.tolist()) for m in member_ids],
        "active_tokens": active_tokens.tolist(),
        "firing_rate": (active_tokens / max(n_tokens, 1)).tolist(),
        "sparsity": (1.0 - active_tokens / max(n_tokens, 1)).tolist(),
        "mean_activation": mean_activation.tolist(),
        "max_activation": cmax.tolist(),
        "prompts_active": prompts_active.tolist(),
    }

    # top prompts: most active tokens, then most activation, then the lower prompt id
    best_c, best_prompt, best_n, best_v = best
    best_rank = np.arange(best_c.size) - np.searchsorted(best_c, best_c)
    # pass 2: which of a chosen prompt's tokens its cluster is active on, from the block holding the prompt
    wanted: dict[int, list[int]] = {}
    for e, prompt in enumerate(best_prompt.tolist()):
        wanted.setdefault(prompt, []).append(e)
    spans: dict[int, tuple[str, list[tuple[int, int]]]] = {}
    start = 0
    second: Iterable[TokenBlock] = _token_blocks(activations, token_prompt, feature_ids, labels, threshold, k) if wanted else []
    for tok, rows in second:
        tok_indptr, tok_c = tok[0], tok[1]
        mine = [e for p in np.unique(rows).tolist() for e in wanted.get(p, [])]
        if mine:
            local, row_prompt, order = prompt_rows(rows)
            starts = np.searchsorted(row_prompt[order], np.arange(local.size + 1))
            sel_p = np.searchsorted(local, best_prompt[mine])
            marks = _marks(best_c[mine], sel_p, starts, order, tok_indptr, tok_c)
            at = 0
            for e, p in zip(mine, sel_p.tolist()):
                token_rows = order[starts[p] : starts[p + 1]]
                spans[e] = prompt_spans([token_text[start + t] for t in token_rows], marks[at : at + token_rows.size])
                at += token_rows.size
        start += rows.size
    top: dict[str, list[Any]] = {
        "cluster": [],
        "rank": [],
        "prompt_id": [],
        "active_tokens": [],
        "activation_mass": [],
        "text": [],
        "span_starts": [],
        "span_ends": [],
    }
    for e, row in enumerate(zip(best_c.tolist(), best_rank.tolist(), best_prompt.tolist(), best_n.tolist(), best_v.tolist())):
        text, runs_ = spans[e]
        for key, value in zip(top, (*row, text, [a for a, _ in runs_], [b for _, b in runs_])):
            top[key].append(value)

    descriptions = describe_tally(tally if tally is not None else _empty_tally(k)) if columns is not None else None
    return ClusterAnalysis(rows_out, top, correlation_from_gram(gram, column_total, n_prompts), descriptions)


#: A cluster's candidate top prompts: (cluster, prompt id, active tokens, activation mass) per entry.
Entries = tuple[Int64Array, Int64Array, Int64Array, Float64Array]


def _no_entries() -> Entries:
    return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float64)


def _joined(a: Entries, b: Entries) -> Entries:
    return np.concatenate([a[0], b[0]]), np.concatenate([a[1], b[1]]), np.concatenate([a[2], b[2]]), np.concatenate([a[3], b[3]])


def _top_entries(entries: Entries, k: int, top_n: int) -> Entries:
    """Each cluster's ``top_n`` entries, most active tokens first, then most activation, then the
    lower prompt id (a total order: a (cluster, prompt) pair is one entry), sorted by cluster then rank."""
    c, prompt, n, v = entries
    order = np.lexsort((prompt, -v, -n, c))
    rank = np.arange(order.size) - np.searchsorted(c[order], np.arange(k))[c[order]]
    keep = order[rank < top_n]
    return c[keep], prompt[keep], n[keep], v[keep]


TokenSums = tuple[Int64Array, Int64Array, Int64Array, Float64Array, Float64Array]
TokenBlock = tuple[TokenSums, np.ndarray]


def _clusters_on_tokens(csr: sp.csr_array, feature_ids: np.ndarray, labels: np.ndarray, threshold: float, k: int) -> TokenSums:
    """The clusters active on each token of a canonical CSR block (``_sum_by_group``'s CSR parts:
    indptr, cluster, active members, summed activation; and each cluster's largest value)."""
    cluster_of = cluster_of_features(csr.shape[1], feature_ids, labels)
    r = np.arange(csr.shape[0])
    return _sum_by_group(csr.indptr, csr.indices, csr.data, cluster_of, float(threshold), r, r, r.size, k)


def _token_blocks(activations: SparseMatrix | Blocks, token_prompt: np.ndarray, feature_ids: np.ndarray, labels: np.ndarray,
                  threshold: float, k: int) -> Iterator[TokenBlock]:  # fmt: skip
    """:func:`_clusters_on_tokens` of each block, with its rows' prompts."""
    for csr, rows in canonical_blocks(activations, token_prompt):
        yield _clusters_on_tokens(csr, feature_ids, labels, threshold, k), rows


def _empty_tally(k: int) -> TokenTally:
    from cluster_assets.core.tokens import CLASSES

    zeros = np.zeros(k, np.int64)
    return TokenTally(sp.csr_array((k, 0), dtype=np.int64), np.zeros((k, len(CLASSES)), np.int64), zeros, zeros.copy())


def _widened(m: sp.csr_array, width: int) -> sp.csr_array:
    """The same rows with ``width`` columns (token ids beyond a block's largest are absent there)."""
    return sp.csr_array((m.data, m.indices, m.indptr), shape=(m.shape[0], width))


def tally_tokens(token_clusters: sp.csr_array, columns: TokenColumns) -> TokenTally:
    """The tally of one block: ``token_clusters`` (tokens, k), nonzero where a cluster is active."""
    from cluster_assets.core.tokens import CLASSES

    tc = sp.csr_array(token_clusters)
    n_tokens, k = tc.shape
    rows = np.repeat(np.arange(n_tokens), np.diff(tc.indptr))
    c = tc.indices.astype(np.int64)
    ids = np.asarray(columns.token_ids, dtype=np.int64)[rows]
    # (cluster, token id) counts: scipy sums the duplicates of a COO in C
    per_token = sp.coo_array((np.ones(c.size, np.int64), (c, ids)), shape=(k, int(ids.max(initial=-1)) + 1)).tocsr()
    per_token.sum_duplicates()
    n_classes = len(CLASSES)
    classes = np.bincount(c * n_classes + np.asarray(columns.token_class)[rows], minlength=k * n_classes).reshape(k, n_classes)
    position_sum = np.bincount(c, weights=np.asarray(columns.positions, dtype=np.int64)[rows], minlength=k).astype(np.int64)
    return TokenTally(per_token, classes.astype(np.int64), position_sum, np.bincount(c, minlength=k).astype(np.int64))


def describe_tally(tally: TokenTally, top_n: int = 10, single_share: float = 0.5) -> dict[str, list[Any]]:
    """What each cluster fires on, from its tally (:func:`tally_tokens`, summed over blocks).

    Per cluster: the ``top_n`` token ids with their counts, the top token's share of the
    cluster's active tokens and whether that makes it ``single-token`` (share >=
    ``single_share``) or ``contextual``, the share of each token class (summing to 1 for an
    active cluster), the mean position in the prompt, and the number of distinct tokens.
    """
    from cluster_assets.core.tokens import CLASSES

    per_token, active = tally.per_token, tally.active
    k = per_token.shape[0]
    kc = np.repeat(np.arange(k), np.diff(per_token.indptr))
    kt, counts = per_token.indices, per_token.data
    order = np.lexsort((kt, -counts, kc))
    starts = per_token.indptr
    with np.errstate(invalid="ignore", divide="ignore"):
        shares = np.where(active[:, None] > 0, tally.classes / active[:, None], 0.0)
        mean_position = np.where(active > 0, tally.position_sum / active, np.nan)
    out: dict[str, list[Any]] = {
        "cluster": list(range(k)),
        "top_token_ids": [],
        "top_counts": [],
        "top_token_share": [],
        "kind": [],
        "distinct_tokens": np.diff(starts).tolist(),
        "mean_position": mean_position.tolist(),
    }
    for cluster in range(k):
        top = order[starts[cluster] : min(starts[cluster + 1], starts[cluster] + top_n)]
        out["top_token_ids"].append(kt[top].tolist())
        out["top_counts"].append(counts[top].tolist())
        share = float(counts[top[0]] / active[cluster]) if top.size else 0.0
        out["top_token_share"].append(share)
        out["kind"].append("single-token" if share >= single_share else "contextual")
    for i, name in enumerate(CLASSES):
        out[f"share_{name}"] = shares[:, i].tolist()
    return out


def describe_clusters(
    token_clusters: sp.csr_array,
    token_ids: np.ndarray,
    positions: np.ndarray,
    token_class: np.ndarray,
    top_n: int = 10,
    single_share: float = 0.5,
) -> dict[str, list[Any]]:
    """What each cluster fires on, from its (token, cluster) activity pairs: :func:`describe_tally`
    of one block.  token_clusters: (tokens, k); token_ids, positions, token_class (index into
    :data:`cluster_assets.core.tokens.CLASSES`): (tokens,)."""
    return describe_tally(tally_tokens(token_clusters, TokenColumns(token_ids, positions, token_class)), top_n, single_share)
