"""Ground truth: how well each clustering method recovers planted co-firing structure, by samples.

The plant is the registry's ``ground_truth`` section (sae-lens' synthetic activations: correlated
groups, hierarchies, frequent noise features; :mod:`cluster_assets.sources.synthetic`), here with
the command line's changes.  Each method runs as the pipeline runs it (memberships, coactivation,
one ``cluster`` entry point, the cut at the MDL minimum) and is scored by ARI against the plant
(noise counted as singletons) and the mean best-match Jaccard of the planted groups.

    python benchmarks/synthetic_recovery.py [--samples 250 500 1000 2000 4000 8000 16000] [--correlation 0.9]
        [--groups 12] [--group-size 5] [--seeds 3]

Prints one row per (method, samples): the mean and range over ``--seeds`` plants, and seconds.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import cluster_assets  # noqa: F401  (the numerics are chosen before torch does any work)
from cluster_assets.config.models import GroundTruth
from cluster_assets.core.baseline import BaselineConfig
from cluster_assets.core.merge import MergeConfig
from cluster_assets.sources.synthetic import recovery

METHODS = {
    "mdl_merge (alpha 1)": MergeConfig(),
    "umap_hdbscan (defaults)": BaselineConfig(),
    "hdbscan without umap": BaselineConfig(umap=False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000, 8000, 16000])
    parser.add_argument("--correlation", type=float, default=0.9)
    parser.add_argument("--groups", type=int, default=12)
    parser.add_argument("--group-size", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    print(f"{'method':<26} {'samples':>8} {'ARI mean':>9} {'ARI range':>14} {'Jaccard':>8} {'clusters':>9} {'seconds':>8}")
    for name, config in METHODS.items():
        for n in args.samples:
            rows, t0 = [], time.perf_counter()
            for seed in range(args.seeds):
                plant = GroundTruth(groups=args.groups, group_size=args.group_size, correlation=args.correlation, seed=seed)
                rows.append(recovery(plant, n, config))
            ari = np.array([r["ari"] for r in rows])
            print(
                f"{name:<26} {n:>8} {ari.mean():>9.3f} {f'{ari.min():.2f}-{ari.max():.2f}':>14} "
                f"{np.mean([r['jaccard'] for r in rows]):>8.3f} {np.mean([r['clusters'] for r in rows]):>9.1f} "
                f"{(time.perf_counter() - t0) / args.seeds:>8.2f}"
            )


if __name__ == "__main__":
    main()
