"""Every stage after the model gives bit-identical results for any thread count: numba's kernels
(NUMBA_NUM_THREADS) and the BLAS behind numpy and scipy (OMP/OpenBLAS/MKL thread variables)."""

import os
import subprocess
import sys
import textwrap

from tests.conftest import ROOT

SCRIPT = textwrap.dedent("""
    import numpy as np, scipy.sparse as sp, xxhash
    import numba
    from cluster_assets.core import MembershipConfig, MergeConfig, build_memberships, coactivation, run_merge
    from cluster_assets.core.analysis import TokenColumns, analyse_clusters, cut_labels
    from cluster_assets.core.heldout import heldout_score

    rng = np.random.default_rng(0)
    n, d = 20000, 300  # more samples than one 8,192-sample block: multi-block tiling runs on every thread
    values = np.where(rng.random((n, d)) < rng.uniform(0.0, 0.08, d), rng.exponential(1.0, (n, d)), 0.0).astype(np.float32)
    prompts = np.repeat(np.arange(n // 40), 40)
    digest = xxhash.xxh3_128()
    def add(*arrays):
        for a in arrays:
            digest.update(np.ascontiguousarray(a).tobytes())
    res = build_memberships(sp.csr_array(values), prompts, MembershipConfig(threshold=0.1, min_firing_rate=0.005))
    csc = res.memberships.activity
    add(res.stats.firing_count, res.stats.max, res.stats.mean, res.stats.entropy, res.stats.varentropy, csc.indptr, csc.indices)
    counts = coactivation(csc)
    add(counts.counts, counts.pairs.data, counts.pairs.indices, counts.pairs.indptr)
    for config in (MergeConfig(), MergeConfig(threshold=0.3, seed=1), MergeConfig(sampler="mcmc", temperature=0.5, seed=2)):
        h = run_merge(csc, config, cofiring=counts)
        add(h.pairs, h.costs, h.mdl)
    _, labels = cut_labels(h, "mdl")
    columns = TokenColumns(rng.integers(0, 50, n), np.arange(n) % 40, rng.integers(0, 7, n))
    an = analyse_clusters(labels, h.feature_ids, sp.csr_array(values), prompts, ["t"] * n, 0.1, 5, columns)
    add(an.correlation, np.asarray(an.clusters["mean_activation"]))
    desc = an.descriptions
    assert desc is not None
    add(np.asarray(desc["mean_position"]), np.asarray(desc["share_word"]))
    score = heldout_score(res.memberships.to_csr(), labels, 1.0)
    add(np.array([score.mdl, score.random]))
    print(numba.get_num_threads(), digest.hexdigest())
""")


def test_results_do_not_depend_on_the_thread_count():
    digests = {}
    for threads in (1, 2, 3):
        pinned = {name: str(threads) for name in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
        env = {**os.environ, **pinned, "PYTHONPATH": str(ROOT)}
        done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=600, cwd=ROOT)
        assert done.returncode == 0, done.stderr[-3000:]
        used, digest = done.stdout.split()
        assert int(used) == threads
        digests[threads] = digest
    assert len(set(digests.values())) == 1, digests
