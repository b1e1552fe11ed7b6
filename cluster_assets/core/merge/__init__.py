"""The greedy MDL merge: config, state and run (:mod:`.state`), the merge key (:mod:`.cost`),
the full-scan samplers (:mod:`.scan`, the reference) and the row-extremes samplers
(:mod:`.row_extremes`, the fast exact engine), and the sorted-set kernels (:mod:`.sets`)."""

from cluster_assets.core.merge.state import ENGINES, MergeConfig, MergeState, run_merge

__all__ = ["ENGINES", "MergeConfig", "MergeState", "run_merge"]
