"""Research-scale timing of the clustering path, with the references timed in the same run.

    python benchmarks/cluster_scale.py --samples 500000 --features 9981 --active 200
    python benchmarks/cluster_scale.py --samples 200000 --features 65536 --active 64 --always-on 10 --greedy-only

The activity is generated in a child process and written as .npz chunks; this process
streams them like activation files, so its peak resident memory is the clustering
path's.  Ours: memberships from sparse activations (reading the files not counted),
exact coactivation, the merge loop -- greedy (range threshold 0) and range 0.05 as full
runs to 3 groups, with s/merge in a window below ~F, ~5k and ~1k groups; mcmc T=1 as
s/merge at those points (reached by greedy merges).  References on the same input:
scipy's sparse ``X.T @ X``, a dense numpy recomputation of the full cost matrix plus
range sampling (a few steps at k = F), and ``scipy.cluster.hierarchy.linkage(
method="average")`` on the same number of items; the last two need F^2 floats, so they run
only up to ``--dense-up-to`` features.  scipy's product runs on column blocks when its
whole result would not fit beside ours (the same multiplications, in bounded memory).
One table with the ratios at the end.  ``--repeats R`` runs coactivation and scipy's product R times
each and keeps the best (the first run of each pays this process's first touch of its memory).
"""

from __future__ import annotations

import argparse
import math
import multiprocessing
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).parent))
from activity import ActivityShape, activation_chunks

from cluster_assets.core import Memberships, MergeConfig, activity_from_batches, coactivation
from cluster_assets.core.merge import MergeState


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def step_times(state: MergeState, config: MergeConfig, steps: int, rng: np.random.Generator) -> float:
    """Mean seconds per merge (choose + exact update) over ``steps`` merges from the current state."""
    t0 = time.perf_counter()
    done = 0
    for _ in range(steps):
        if state.k <= 3:
            break
        i, j, _ = state.choose(config, float(rng.random()), rng)
        state.merge(i, j)
        done += 1
    return (time.perf_counter() - t0) / max(done, 1)


def dense_reference_step(counts: np.ndarray, cof: np.ndarray, sizes: np.ndarray, n: int, alpha: float, threshold: float, rng) -> float:
    """The design's cost matrix recomputed densely with numpy (float64), then range sampling."""
    t0 = time.perf_counter()
    k = counts.size
    p = counts / n
    pij = cof / n
    S = p.sum()
    pi, pj = p[:, None], p[None, :]
    ri, rj = sizes[:, None].astype(np.float64), sizes[None, :].astype(np.float64)
    cost = (
        (S - pi - pj) * math.log2((k - 1) / k)
        + (pi + pj - pij) * math.log2(k - 1)
        - (pi + pj) * math.log2(k)
        + alpha * ((pi + pj - pij) * (ri + rj) - pi * ri - pj * rj)
    )
    iu = np.triu_indices(k, 1)
    c = cost[iu]
    lo, hi = c.min(), c.max()
    cand = np.flatnonzero(c <= lo + threshold * (hi - lo))
    cand[rng.integers(cand.size)]
    return time.perf_counter() - t0


def write_chunks(shape: ActivityShape, folder: str) -> None:
    """Generate the activity (in a child process, so its memory is not the clustering path's) as .npz chunks."""
    for n, chunk in enumerate(activation_chunks(shape)):
        sp.save_npz(Path(folder) / f"chunk_{n:05d}.npz", chunk, compressed=False)


def merge_run(activity, cof, config: MergeConfig, marks: tuple[int, ...], window: int, seed: int) -> tuple[float, int, dict]:
    """A full run to 3 groups: total seconds (the state's setup, the expansion of the counts to
    their condensed triangle included), merges, and the mean s/merge in a window below each mark."""
    t0 = time.perf_counter()
    state = MergeState(activity, cof, engine="auto")
    print(f"    merge state set up in {time.perf_counter() - t0:.2f} s", flush=True)
    rng = np.random.default_rng(seed)
    near: dict[int, list[float]] = {}
    merges = 0
    while state.k > 3:
        k = state.k
        s0 = time.perf_counter()
        i, j, _ = state.choose(config, float(rng.random()), rng)
        state.merge(i, j)
        dt = time.perf_counter() - s0
        merges += 1
        for mark in marks:
            if mark - window < k <= mark:
                near.setdefault(mark, []).append(dt)
    return time.perf_counter() - t0, merges, {mark: float(np.mean(v)) for mark, v in near.items()}


#: Above this many features scipy's product runs on column blocks of this width (its result
#: is sparse int32 with int32 indices: up to F x block x 8 bytes per block).
SCIPY_BLOCK = 4096


def scipy_product_seconds(activity, cof) -> float:
    """Seconds of scipy's sparse ``X.T @ X`` (int32), whole or on column blocks of SCIPY_BLOCK
    (the same multiplications in bounded memory); its first rows are checked against ours."""
    x = sp.csr_array(activity, dtype=np.int32)
    f = x.shape[1]
    block = f if f <= 4 * SCIPY_BLOCK else SCIPY_BLOCK
    xc = x.tocsc()
    seconds = 0.0
    for start in range(0, f, block):
        cols = xc[:, start : start + block]
        t0 = time.perf_counter()
        part = x.T @ cols
        seconds += time.perf_counter() - t0
        if start == 0:
            head = min(f, 300)
            want = cof.square(np.arange(head))[:, : min(block, head)]
            np.testing.assert_array_equal(sp.csr_array(part)[:head].toarray()[:, : min(block, head)], want)
        del part
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=9_981)
    parser.add_argument("--active", type=float, default=200.0)
    parser.add_argument("--always-on", type=int, default=0, help="features that fire on nearly every sample")
    parser.add_argument("--dense-up-to", type=int, default=12_000, help="largest F for the F^2-float references")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=20, help="merges timed per (sampler, k) point")
    parser.add_argument("--dense-steps", type=int, default=2)
    parser.add_argument("--no-references", action="store_true")
    parser.add_argument("--greedy-only", action="store_true", help="skip the range/mcmc runs (for very large runs)")
    parser.add_argument("--coactivation-only", action="store_true", help="stop after coactivation and scipy's product")
    parser.add_argument("--repeats", type=int, default=1, help="coactivation and scipy's product each run this often; the best counts")
    args = parser.parse_args()
    shape = ActivityShape(samples=args.samples, features=args.features, active=args.active, always_on=args.always_on, seed=args.seed)
    print(f"shape: {shape}")
    marks = tuple(sorted({m for m in (args.features, 5000, 1000) if m <= args.features}, reverse=True))
    with tempfile.TemporaryDirectory(prefix="cluster_scale_") as folder:
        child = multiprocessing.get_context("spawn").Process(target=write_chunks, args=(shape, folder))
        t0 = time.perf_counter()
        child.start()
        child.join()
        if child.exitcode != 0:
            raise SystemExit(f"generating the activity failed (exit {child.exitcode})")
        print(
            f"generated {args.samples} x {args.features} in {time.perf_counter() - t0:.1f} s (child process, "
            "written as .npz chunks; the clustering path below streams them like activation files)",
            flush=True,
        )

        # --- ours (this process: its peak memory is the clustering path's) ----------------
        warm = sp.csr_array(np.random.default_rng(0).random((200, 40)) < 0.2)  # compile the kernels outside the timings
        coactivation(warm)
        for config in (MergeConfig(threshold=0.0), MergeConfig(threshold=0.05), MergeConfig(sampler="mcmc")):
            ws = MergeState(warm)
            step_times(ws, config, 5, np.random.default_rng(0))
        reading = [0.0]

        def chunks():
            for path in sorted(Path(folder).glob("chunk_*.npz")):
                r0 = time.perf_counter()
                chunk = sp.load_npz(path)
                reading[0] += time.perf_counter() - r0
                yield chunk

        t0 = time.perf_counter()
        activity = activity_from_batches(chunks(), 0.0, args.features)
        t_mem = time.perf_counter() - t0 - reading[0]
    nnz = activity.nnz
    print(f"  {nnz / args.samples:.1f} active/sample; reading the chunks took {reading[0]:.2f} s (not counted below)")
    t0 = time.perf_counter()
    Memberships(activity)
    t_csc = time.perf_counter() - t0
    print(f"  memberships: {t_mem + t_csc:.2f} s", flush=True)
    cof, t_co = timed(lambda: coactivation(activity))
    peak_co = peak_rss_gb()
    print(f"  coactivation: {t_co:.2f} s, {cof.nbytes / 1e9:.2f} GB of counts, peak RSS so far {peak_co:.2f} GB", flush=True)
    t_first = t_co
    for _ in range(args.repeats - 1):  # the best of the repeats: the first pays this process's first touch of its memory
        del cof
        cof, t = timed(lambda: coactivation(activity))
        t_co = min(t_co, t)
        print(f"  coactivation again: {t:.2f} s", flush=True)
    counts = cof.counts
    alive = np.flatnonzero(counts > 0)
    print(f"  ({alive.size} alive features, {cof.nonzero_pairs() / (args.features * (args.features - 1) / 2):.1%} of pairs co-fire)")
    references = not args.no_references
    dense_refs = references and args.features <= args.dense_up_to
    ref_co = None
    if references:
        ref_co = scipy_product_seconds(activity, cof)
        ref_first = ref_co
        print(f"  scipy X.T @ X: {ref_co:.2f} s", flush=True)
        for _ in range(args.repeats - 1):
            t = scipy_product_seconds(activity, cof)
            ref_co = min(ref_co, t)
            print(f"  scipy X.T @ X again: {t:.2f} s", flush=True)
        if args.repeats > 1:
            print(f"  first runs: ours {t_first:.2f} s, scipy {ref_first:.2f} s, {ref_first / t_first:.3g}x", flush=True)

    if args.coactivation_only:
        print(f"\n| coactivation (exact counts) | {t_co:.4g} s | {ref_co:.3f} s | {ref_co / t_co:.3g}x (scipy X.T @ X) |" if ref_co else "")
        print(f"peak resident memory: {peak_rss_gb():.2f} GB")
        return
    t_greedy, total_steps, window = merge_run(activity, cof, MergeConfig(threshold=0.0), marks, args.steps, 0)
    print(f"  greedy full run: {t_greedy:.1f} s", flush=True)
    full_runs = {"greedy": (t_greedy, total_steps)}
    per_k = {("greedy", mark): v for mark, v in window.items()}
    if not args.greedy_only:
        t_range, n_range, window = merge_run(activity, cof, MergeConfig(threshold=0.05), marks, args.steps, 1)
        print(f"  range 0.05 full run: {t_range:.1f} s", flush=True)
        full_runs["range 0.05"] = (t_range, n_range)
        per_k.update({("range 0.05", mark): v for mark, v in window.items()})
        # mcmc: one walk down by greedy merges, timing args.steps mcmc merges at each mark
        state = MergeState(activity, cof, engine="auto")
        greedy, mcmc = MergeConfig(threshold=0.0), MergeConfig(sampler="mcmc", temperature=1.0)
        walk, draws = np.random.default_rng(2), np.random.default_rng(3)
        for mark in marks:
            while state.k > mark:
                i, j, _ = state.choose(greedy, float(walk.random()))
                state.merge(i, j)
            per_k[("mcmc T=1", mark)] = step_times(state, mcmc, args.steps, draws)
            print(f"  mcmc T=1 at k~{mark}: {per_k[('mcmc T=1', mark)]:.4f} s/merge", flush=True)
        del state
    peak_ours = peak_rss_gb()

    # --- references (same input, same run) ------------------------------------------------
    ref_dense = ref_link = None
    if dense_refs:
        k = args.features
        dense_rng = np.random.default_rng(3)
        cof64 = cof.square().astype(np.float64)
        sizes = np.ones(k, dtype=np.int64)
        ref_dense = np.mean(
            [
                dense_reference_step(counts.astype(np.float64), cof64, sizes, args.samples, 1.0, 0.05, dense_rng)
                for _ in range(args.dense_steps)
            ]
        )
        del cof64
        from scipy.cluster.hierarchy import linkage

        norm = np.sqrt(np.maximum(counts, 1).astype(np.float64))
        dist = 1.0 - cof.square() / norm[:, None] / norm[None, :]
        np.fill_diagonal(dist, 0.0)
        dist = np.clip((dist + dist.T) / 2, 0.0, None)
        iu = np.triu_indices(k, 1)
        condensed = dist[iu]
        del dist, iu
        _, ref_link = timed(lambda: linkage(condensed, method="average"))
        del condensed

    print("\n| stage | ours | reference | reference / ours |")
    print("|---|---|---|---|")

    def line(stage, ours, ref=None, ref_name=""):
        ratio = f"{ref / ours:.3g}x ({ref_name})" if ref is not None and ours else ""
        ref_text = f"{ref:.3f} s" if ref is not None else ""
        print(f"| {stage} | {ours:.4g} s | {ref_text} | {ratio} |")

    line("memberships from sparse activations", t_mem + t_csc)
    line("coactivation (exact counts)", t_co, ref_co, "scipy X.T @ X")
    for name, (seconds, merges) in full_runs.items():
        line(
            f"{name} merge, full run ({merges} merges)",
            seconds,
            ref_link if name == "greedy" else None,
            "scipy linkage average, same items",
        )
        line(
            f"{name} merge, mean per merge over the full run",
            seconds / max(merges, 1),
            ref_dense,
            f"dense numpy cost matrix + range sampling at k={args.features}",
        )
    for (sampler, mark), s_per in sorted(per_k.items(), key=lambda kv: (kv[0][0], -kv[0][1])):
        line(
            f"{sampler}, per merge at k~{mark}",
            s_per,
            ref_dense if mark == args.features else None,
            "dense numpy step" if mark == args.features else "",
        )
    print(f"| peak resident memory, clustering path | {peak_ours:.2f} GB | | |")
    print(f"\npeak resident memory of the whole run (references included): {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
