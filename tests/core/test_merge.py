import math

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.cluster.hierarchy import dendrogram, fcluster, is_valid_linkage

from cluster_assets.core import MergeConfig, MergeHistory, MergeState, canonical_labels, run_merge
from tests.core import reference as ref


def _inputs(seed, n_max=150, f_max=14):
    rng = np.random.default_rng(seed)
    n, f = int(rng.integers(20, n_max)), int(rng.integers(5, f_max))
    x = ref.random_activity(rng, n, f, density=rng.uniform(0.05, 0.4))
    x[rng.integers(0, n), :] = True  # at least one active sample per feature is not required, but make most alive
    return x, rng


def _ref_partition_check(x, history, alpha, rel_tol=1e-9, threshold=0.0):
    """Replay the history against the dense reference: each chosen pair must be an allowed
    choice of the sampler, its recorded cost and the MDL must match the recount."""
    for s, (clusters, a, b) in enumerate(ref.replay_groups(x.shape[1], history.pairs)):
        ids = sorted(clusters)
        groups = [clusters[i] for i in ids]
        assert history.mdl[s] == pytest.approx(ref.mdl(x, groups, alpha), rel=rel_tol, abs=1e-12)
        if a is None:
            break
        costs = ref.cost_matrix(x, groups, alpha)
        lo, hi = np.nanmin(costs), np.nanmax(costs)
        chosen = costs[ids.index(a), ids.index(b)]
        tol = rel_tol * max(1.0, abs(lo), abs(hi))
        assert chosen <= lo + threshold * (hi - lo) + tol, f"step {s}: cost {chosen} not allowed (min {lo})"
        assert history.costs[s] == pytest.approx(chosen, rel=rel_tol, abs=tol)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0, 4.0])
def test_greedy_matches_dense_reference(seed, alpha):
    x, _ = _inputs(seed)
    history = run_merge(sp.csr_array(x), MergeConfig(alpha=alpha, threshold=0.0, seed=seed))
    assert history.n_merges == x.shape[1] - 3
    _ref_partition_check(x, history, alpha)


def test_greedy_sequence_equals_reference_when_minimum_is_unique():
    """Where the reference minimum is unique by a clear margin, the partition sequence is the same."""
    rng = np.random.default_rng(123)
    x = rng.random((400, 10)) < rng.uniform(0.05, 0.5, size=10)
    history = run_merge(sp.csr_array(x), MergeConfig(alpha=0.7, threshold=0.0))
    groups = [frozenset([i]) for i in range(10)]
    for s in range(history.n_merges):
        costs = ref.cost_matrix(x, groups, 0.7)
        flat = np.sort(costs[~np.isnan(costs)])
        assert flat[1] - flat[0] > 1e-9, "test input must have a unique minimum"
        i, j = np.unravel_index(np.nanargmin(costs), costs.shape)
        groups = [g for t, g in enumerate(groups) if t not in (i, j)] + [groups[i] | groups[j]]
        got = canonical_labels(history.labels_at(10 - s - 1))
        want = np.zeros(10, dtype=np.int64)
        for label, g in enumerate(groups):
            want[list(g)] = label
        np.testing.assert_array_equal(got, canonical_labels(want))


@pytest.mark.parametrize("seed", range(6))
def test_range_sampler_respects_threshold(seed):
    x, _ = _inputs(seed + 100)
    history = run_merge(sp.csr_array(x), MergeConfig(alpha=1.0, threshold=0.3, seed=seed))
    _ref_partition_check(x, history, 1.0, threshold=0.3)


@pytest.mark.parametrize("seed", range(8))
def test_incremental_counts_equal_full_recount_after_every_merge(seed):
    x, rng = _inputs(seed + 200, n_max=300, f_max=30)
    state = MergeState(sp.csr_array(x))
    config = MergeConfig(sampler="mcmc", temperature=0.05, seed=seed)
    while state.k > 3:
        i, j, _ = state.choose(config, float(rng.random()))
        state.merge(i, j)
        groups = [frozenset(state.features[slot].tolist()) for slot in state.active]
        want = ref.dense_coactivation(ref.group_activity(x, groups))
        np.testing.assert_array_equal(state.cofiring.square(state.active), want)
        for slot in state.active:
            np.testing.assert_array_equal(state.members[slot], np.flatnonzero(x[:, state.features[slot]].any(axis=1)))


def test_range_threshold_zero_always_picks_a_minimum_cost_pair_with_ties():
    # duplicated columns create exact ties; every draw must land on a minimum
    rng = np.random.default_rng(5)
    base = rng.random((200, 4)) < 0.2
    x = np.concatenate([base, base, base[:, :2]], axis=1)
    state = MergeState(sp.csr_array(x))
    groups = [frozenset([i]) for i in range(x.shape[1])]
    costs = ref.cost_matrix(x, groups, 1.0)
    lo = np.nanmin(costs)
    picks = set()
    for u in np.linspace(0, 0.999, 50):
        i, j, _cost = state.choose(MergeConfig(threshold=0.0), float(u))
        assert costs[i, j] == pytest.approx(lo, abs=1e-12)
        picks.add((i, j))
    assert len(picks) > 1, "ties should be broken by the draw, not always the same pair"


def test_a_merged_away_group_lets_go_of_its_samples():
    # a [:0] view of the union would keep its whole buffer alive until the run ends: at 2M tokens
    # that held ~0.8 GB of merged-away groups
    x = np.random.default_rng(6).random((500, 5)) < 0.4
    state = MergeState(sp.csr_array(x))
    state.merge(0, 1)
    state.merge(0, 2)  # slot 2's samples were a view of the activity; slot 0's now a union of its own
    state.merge(3, 4)
    for j in (1, 2, 4):
        assert state.members[j].size == 0 and state.members[j].base is None
    np.testing.assert_array_equal(state.members[0], np.flatnonzero(x[:, :3].any(axis=1)))


def test_a_union_of_another_size_than_given_is_an_error():
    from cluster_assets.core.merge.sets import union_sorted

    a, b = np.array([1, 3, 5], np.int32), np.array([3, 4], np.int32)
    np.testing.assert_array_equal(union_sorted(a, b, 4), [1, 3, 4, 5])
    for wrong in (3, 5):
        with pytest.raises(ValueError, match="union's size"):
            union_sorted(a, b, wrong)


def test_mcmc_frequencies_match_softmax():
    rng = np.random.default_rng(7)
    x = rng.random((300, 6)) < rng.uniform(0.05, 0.6, size=6)
    state = MergeState(sp.csr_array(x))
    groups = [frozenset([i]) for i in range(6)]
    costs = ref.cost_matrix(x, groups, 1.0)
    iu = np.triu_indices(6, 1)
    c = costs[iu]
    temperature = (c.max() - c.min()) / 4
    p = np.exp((c.min() - c) / temperature)
    p /= p.sum()
    uniform = np.full_like(p, 1 / p.size)
    assert 0.5 * np.abs(p - uniform).sum() > 0.15, "softmax must be far from uniform for the test to mean anything"
    config = MergeConfig(sampler="mcmc", temperature=temperature)
    draws = 20000
    counts = np.zeros((6, 6))
    u = np.random.default_rng(11).random(draws)
    for value in u:
        i, j, _ = state.choose(config, float(value))
        counts[i, j] += 1
    freq = counts[iu] / draws
    assert 0.5 * np.abs(freq - p).sum() < 0.02
    np.testing.assert_allclose(freq, p, atol=0.015)


def test_same_seed_same_history_bit_for_bit():
    x, _ = _inputs(42, n_max=400, f_max=40)
    for config in (MergeConfig(threshold=0.5, seed=3), MergeConfig(sampler="mcmc", temperature=0.01, seed=3)):
        a, b = run_merge(sp.csr_array(x), config), run_merge(sp.csr_array(x), config)
        assert a == b
        other = run_merge(sp.csr_array(x), MergeConfig(**{**config.to_dict(), "seed": 4}))
        assert not np.array_equal(a.pairs, other.pairs)


@pytest.mark.parametrize("seed", range(5))
def test_labels_at_equals_fcluster_on_linkage(seed):
    x, _ = _inputs(seed + 300, f_max=25)
    for iters in (None, 4):
        history = run_merge(sp.csr_array(x), MergeConfig(threshold=0.2, seed=seed, iters=iters))
        z = history.linkage
        assert is_valid_linkage(z) and z.shape == (x.shape[1] - 1, 4)
        dendrogram(z, no_plot=True)
        for k in range(x.shape[1] - history.n_merges, x.shape[1] + 1):
            want = canonical_labels(fcluster(z, k, criterion="maxclust"))
            np.testing.assert_array_equal(history.labels_at(k), want)
        with pytest.raises(ValueError, match="k must be"):
            history.labels_at(x.shape[1] - history.n_merges - 1)


def test_history_arrays_round_trip():
    x, _ = _inputs(9)
    h = run_merge(sp.csr_array(x), MergeConfig(seed=2), feature_ids=np.arange(x.shape[1]) * 7)
    back = MergeHistory.from_arrays(h.to_arrays())
    assert back == h
    np.testing.assert_array_equal(back.linkage, h.linkage)
    assert back.best_k() == h.best_k()


@pytest.mark.parametrize(
    "activity, config, match",
    [
        (np.zeros((0, 5), bool), MergeConfig(), "empty"),
        (np.ones((4, 1), bool), MergeConfig(), "at least 2"),
        (np.zeros((4, 5), bool), MergeConfig(), "no feature is active"),
        (np.array([[np.nan, 1.0, 0.0]]), MergeConfig(), "NaN"),
        (np.ones((4, 6), bool), MergeConfig(iters=4), "more merges than possible"),
    ],
)
def test_bad_input_raises_clear_errors(activity, config, match):
    with pytest.raises(ValueError, match=match):
        run_merge(sp.csr_array(activity), config)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"sampler": "annealing"}, "sampler"),
        ({"threshold": -0.1}, "threshold"),
        ({"temperature": 0}, "temperature"),
        ({"iters": -1}, "iters"),
        ({"alpha": math.inf}, "alpha"),
    ],
)
def test_bad_config_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        MergeConfig(**kwargs)


def test_costs_are_mdl_differences():
    x, _ = _inputs(77)
    h = run_merge(sp.csr_array(x), MergeConfig(alpha=0.5, threshold=0.1))
    np.testing.assert_allclose(np.diff(h.mdl), h.costs, rtol=1e-9, atol=1e-12)
    assert np.all(np.isfinite(h.mdl))


def _dup_heavy(rng, n, f):
    """Activity with duplicated columns and identical rates: many exact ties."""
    base = ref.random_activity(rng, n, f // 2, 0.2)
    return np.concatenate([base, base[:, : f - f // 2]], axis=1)


@pytest.mark.parametrize("seed", range(25))
@pytest.mark.parametrize("threshold", [0.0, 0.05, 0.3, 1.0])
def test_row_extremes_engine_equals_full_scan_bit_for_bit(seed, threshold):
    rng = np.random.default_rng(seed + 500)
    n, f = int(rng.integers(30, 600)), int(rng.integers(5, 90))
    x = _dup_heavy(rng, n, f) if seed % 3 == 0 else ref.random_activity(rng, n, f, rng.uniform(0.02, 0.4))
    for alpha in (0.0, 0.3, 1.0, 3.0):
        config = MergeConfig(alpha=alpha, threshold=threshold, seed=seed)
        fast = run_merge(sp.csr_array(x), config, engine="auto")
        slow = run_merge(sp.csr_array(x), config, engine="scan")
        assert fast == slow


def test_switching_configs_on_one_state_rebuilds_the_row_structure():
    rng = np.random.default_rng(21)
    x = sp.csr_array(ref.random_activity(rng, 300, 40, 0.2))
    fast, slow = MergeState(x, engine="auto"), MergeState(x, engine="scan")
    draws = np.random.default_rng(0).random(30)
    for step, u in enumerate(draws):
        config = MergeConfig(threshold=0.0) if step < 10 else MergeConfig(threshold=0.2, alpha=0.5)
        a, b = fast.choose(config, float(u)), slow.choose(config, float(u))
        assert a == b
        fast.merge(a[0], a[1])
        slow.merge(b[0], b[1])


@pytest.mark.parametrize("threshold", [0.0, 0.05])
def test_row_extremes_engine_matches_full_scan_at_a_larger_size(threshold):
    rng = np.random.default_rng(9)
    x = ref.random_activity(rng, 2000, 150, 0.05)
    fast = run_merge(sp.csr_array(x), MergeConfig(alpha=0.5, threshold=threshold), engine="auto")
    slow = run_merge(sp.csr_array(x), MergeConfig(alpha=0.5, threshold=threshold), engine="scan")
    assert fast == slow
    assert fast.n_merges == 147


def test_unknown_engine():
    with pytest.raises(ValueError, match="engine"):
        run_merge(sp.csr_array(np.ones((3, 4), bool)), MergeConfig(), engine="gpu")


@pytest.mark.parametrize("case", ["subset", "superset", "overlap"])
def test_each_update_branch_equals_recount(case):
    """The update scans I&J, J-I or I-J, whichever is smallest; each must equal a recount."""
    rng = np.random.default_rng(11)
    x = ref.random_activity(rng, 400, 8, 0.3)
    if case == "subset":  # J inside I: J - I is empty
        x[:, 1] = x[:, 0] & (rng.random(400) < 0.5)
    elif case == "superset":  # I inside J: I - J is empty
        x[:, 0] = x[:, 1] & (rng.random(400) < 0.5)
    else:  # barely overlapping: I & J is smallest
        x[:, 1] = ~x[:, 0] & (rng.random(400) < 0.4)
        x[:5, 1] = x[:5, 0] = True
    state = MergeState(sp.csr_array(x))
    state.merge(0, 1)
    groups = [frozenset(state.features[slot].tolist()) for slot in state.active]
    want = ref.dense_coactivation(ref.group_activity(x, groups))
    np.testing.assert_array_equal(state.cofiring.square(state.active), want)


@pytest.mark.parametrize("premerges", [0, 3])
def test_fast_mcmc_frequencies_match_softmax(premerges):
    """The rejection sampler over row minima draws exactly from the softmax of the costs."""
    rng = np.random.default_rng(7)
    x = rng.random((300, 9)) < rng.uniform(0.05, 0.6, size=9)
    state = MergeState(sp.csr_array(x))
    for _ in range(premerges):  # exercise the row bookkeeping after merges
        i, j, _ = state.choose(MergeConfig(threshold=0.0), 0.0)
        state.merge(i, j)
    groups = [frozenset(state.features[slot].tolist()) for slot in state.active]
    costs = ref.cost_matrix(x, groups, 1.0)
    k = len(groups)
    iu = np.triu_indices(k, 1)
    c = costs[iu]
    temperature = (c.max() - c.min()) / 4
    p = np.exp((c.min() - c) / temperature)
    p /= p.sum()
    assert 0.5 * np.abs(p - np.full_like(p, 1 / p.size)).sum() > 0.15
    config = MergeConfig(sampler="mcmc", temperature=temperature)
    draws = 20000
    counts = np.zeros((k, k))
    slot_pos = {slot: n for n, slot in enumerate(state.active)}
    gen = np.random.default_rng(12)
    for _ in range(draws):
        i, j, _ = state.choose(config, 0.0, gen)
        counts[slot_pos[i], slot_pos[j]] += 1
    freq = counts[iu] / draws
    assert 0.5 * np.abs(freq - p).sum() < 0.02
    np.testing.assert_allclose(freq, p, atol=0.015)


def _reference_candidates(x, state, alpha, threshold):
    """Slot pairs whose dense-reference cost is <= lo + threshold * (hi - lo), away from the boundary."""
    groups = [frozenset(state.features[slot].tolist()) for slot in state.active]
    costs = ref.cost_matrix(x, groups, alpha)
    k = len(groups)
    iu = np.triu_indices(k, 1)
    c = costs[iu]
    cut = c.min() + threshold * (c.max() - c.min())
    assert np.min(np.abs(c - cut)) > 1e-9 * max(1.0, abs(cut)), "test input must not sit on the cut"
    inside = c <= cut
    return [(int(state.active[a]), int(state.active[b])) for a, b, keep in zip(*iu, inside) if keep], int(inside.size)


@pytest.mark.parametrize("premerges", [0, 4])
@pytest.mark.parametrize("threshold", [0.2, 0.5])
def test_fast_range_draws_uniformly_among_the_candidates(premerges, threshold):
    """The rejection draw (forced even on this small input) is uniform over exactly the
    reference candidates; with few candidates most draws take the listed fallback, which
    must be uniform too."""
    from cluster_assets.core.merge.row_extremes import extremes_range_pick

    rng = np.random.default_rng(5)
    x = rng.random((400, 12)) < rng.uniform(0.05, 0.6, size=12)
    state = MergeState(sp.csr_array(x))
    for _ in range(premerges):
        i, j, _ = state.choose(MergeConfig(threshold=0.0), 0.0)
        state.merge(i, j)
    want, n_pairs = _reference_candidates(x, state, 1.0, threshold)
    assert 1 < len(want) < n_pairs
    rows = state._row_extremes(1.0, threshold)
    gen = np.random.default_rng(8)
    draws = 12000
    seen: dict[tuple[int, int], int] = {}
    log_km1 = math.log2(state.k - 1)
    for _ in range(draws):
        i, j, _ = extremes_range_pick(
            rows, state.active, state.counts, state.sizes, state.pairs, state.starts, log_km1, float(gen.random()), gen, scan_pairs=0
        )
        seen[(i, j)] = seen.get((i, j), 0) + 1
    assert set(seen) == set(want)
    freq = np.array([seen[p] for p in want]) / draws
    assert 0.5 * np.abs(freq - 1 / len(want)).sum() < 0.03


@pytest.mark.parametrize("seed", range(6))
def test_fast_range_run_respects_threshold(seed, monkeypatch):
    """Whole runs with the rejection draw forced at every step: each pick is allowed by the reference."""
    from cluster_assets.core.merge import row_extremes

    monkeypatch.setattr(row_extremes, "RANGE_SCAN_PAIRS", 0)
    x, _ = _inputs(seed + 900)
    for threshold in (0.05, 0.3):
        history = run_merge(sp.csr_array(x), MergeConfig(alpha=1.0, threshold=threshold, seed=seed))
        _ref_partition_check(x, history, 1.0, threshold=threshold)
        assert history == run_merge(sp.csr_array(x), MergeConfig(alpha=1.0, threshold=threshold, seed=seed))


def test_a_given_cofiring_gives_the_same_history_and_is_left_alone():
    from cluster_assets.core import coactivation

    rng = np.random.default_rng(31)
    x = sp.csr_array(ref.random_activity(rng, 200, 20, 0.2))
    cof = coactivation(x)
    before = cof.square()
    assert run_merge(x, MergeConfig(seed=1), cofiring=cof) == run_merge(x, MergeConfig(seed=1))
    np.testing.assert_array_equal(cof.square(), before)


def test_canonical_csc_input_gives_the_same_history_as_csr():
    """A Memberships' boolean CSC is used as the per-feature sample lists directly (no transpose)."""
    from cluster_assets.core import Memberships

    rng = np.random.default_rng(41)
    x = sp.csr_array(ref.random_activity(rng, 300, 25, 0.2))
    csc = Memberships(x).activity
    assert csc.format == "csc" and csc.has_canonical_format and csc.indices.dtype == np.int32
    for config in (MergeConfig(threshold=0.0), MergeConfig(threshold=0.3, seed=2)):
        assert run_merge(csc, config) == run_merge(x, config)
    # its row view is built from the CSC, and is scipy's CSR of it
    state, want = MergeState(csc), sp.csr_array(x)
    want.sort_indices()
    np.testing.assert_array_equal(state.row_indptr, want.indptr)
    np.testing.assert_array_equal(state.row_indices, want.indices)
    assert state.row_indices.dtype == np.int32


def _neighbourhoods_by_leaf_sets(history, k):
    """Reference: every tree node as its set of leaves; a cluster's merges found by comparing sets."""
    n, labels = history.n_features, history.labels_at(k)
    leaves = {i: frozenset([i]) for i in range(n)}
    for s, (a, b) in enumerate(history.pairs):
        leaves[n + s] = leaves[int(a)] | leaves[int(b)]
    out = []
    for c in range(k):
        mine = frozenset(np.flatnonzero(labels == c).tolist())
        formed = next(
            (
                (len(leaves[int(a)]), len(leaves[int(b)]), history.costs[s])
                for s, (a, b) in enumerate(history.pairs[: n - k])
                if leaves[n + s] == mine
            ),
            None,
        )
        into, partners = None, ()
        for s in range(n - k, history.n_merges):
            a, b = (leaves[int(v)] for v in history.pairs[s])
            if mine in (a, b):
                other = b if a == mine else a
                into, partners = history.costs[s], tuple(sorted({int(labels[f]) for f in other}))
                break
        out.append((formed, into, partners))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_cut_neighbourhoods_match_the_leaf_set_reference(seed):
    from cluster_assets.core.history import neighbourhoods

    x, _ = _inputs(seed)
    history = run_merge(sp.csr_array(x), MergeConfig(alpha=0.5, seed=seed))
    for k in (history.n_features, history.best_k(), history.n_features - history.n_merges + 1):
        got = [(nb.formed_from, nb.merged_into, nb.partners) for nb in neighbourhoods(history, k)]
        assert got == _neighbourhoods_by_leaf_sets(history, k)
        assert any(g[0] is not None for g in got) or k == history.n_features  # below the top, some cluster was formed by a merge


def test_cut_neighbourhoods_of_a_small_tree():
    from cluster_assets.core.history import Neighbourhood, neighbourhoods

    tree = MergeHistory(4, 10, np.array([[0, 1], [2, 3], [4, 5]]), np.array([0.1, 0.2, 0.3]), np.zeros(4), np.array([2, 2, 4]), np.zeros(3))
    assert neighbourhoods(tree, 2) == [Neighbourhood((1, 1, 0.1), 0.3, (1,)), Neighbourhood((1, 1, 0.2), 0.3, (0,))]
    assert neighbourhoods(tree, 3) == [
        Neighbourhood((1, 1, 0.1), 0.3, (1, 2)),
        Neighbourhood(None, 0.2, (2,)),
        Neighbourhood(None, 0.2, (1,)),
    ]
