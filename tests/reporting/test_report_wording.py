"""The report's sentences say what the numbers say: verdicts against intervals, signs in words."""

from cluster_assets.core.replicates import Estimate
from cluster_assets.reporting.report import _compare, _saves

NAMES = ("a", "b")


def test_a_verdict_needs_the_intervals_apart():
    high, low = Estimate(0.5, 0.45, 0.55, 3), Estimate(0.2, 0.15, 0.25, 3)
    assert _compare(high, low, NAMES, "up", "down") == "up, beyond sampling noise"
    assert _compare(low, high, NAMES, "up", "down") == "down, beyond sampling noise"
    overlapping = Estimate(0.5, 0.2, 0.6, 3)
    assert _compare(overlapping, low, NAMES, "up", "down") == "no difference beyond sampling noise"


def test_one_sided_intervals_say_whose_noise_is_unmeasured():
    single, interval = Estimate(0.9, None, None, 1), Estimate(0.2, 0.15, 0.25, 3)
    assert _compare(single, interval, NAMES, "up", "down").endswith("`a` has one replicate, its own noise is unmeasured)")
    assert _compare(single, Estimate(0.1, None, None, 1), NAMES, "up", "down") == "one replicate each: cannot be told from sampling noise"
    assert _compare(Estimate(None, None, None, 0), interval, NAMES, "up", "down") == "not measured"


def test_a_negative_gain_reads_as_a_cost():
    assert _saves(Estimate(0.167, 0.16, 0.17, 3), "X") == "saves 16.7% [16.0%, 17.0%] of X"
    assert _saves(Estimate(-0.243, -0.26, -0.213, 3), "X") == "costs 24.3% [21.3%, 26.0%] more than X"
    assert _saves(Estimate(-0.018, None, None, 1), "X") == "costs 1.8% (one replicate) more than X"
    # an interval that straddles zero stays a (possibly negative) saving: no sign is claimed
    assert _saves(Estimate(-0.01, -0.03, 0.02, 3), "X") == "saves -1.0% [-3.0%, 2.0%] of X"
    assert _saves(Estimate(-0.5, None, None, 1)) == "costs 50.0% (one replicate) more"


def test_headlines_are_the_scale_and_each_sections_first_statement():
    from cluster_assets.reporting.report import headlines

    markdown = (
        "# r\n\n**Scale:** 3 datasets (point `base`)\n\n## Q1. How?\n\n![Q1](figures/q1.png)\n\n- `a` vs `b`: ARI 0.5\n- second\n\n"
        "## Q2. Why?\n\n- _Nothing to answer with yet._\n"
    )
    assert headlines(markdown) == {"scale": "3 datasets (point base)", "Q1": "a vs b: ARI 0.5", "Q2": "_Nothing to answer with yet._"}
    curve = "# r\n\n## How many tokens does a stable clustering need?\n\n- kjv: floor ARI 0.4\n- python_stdlib: 0.5\n"
    assert headlines(curve) == {"tokens_needed": "kjv: floor ARI 0.4"}


def test_the_ground_truth_row_sets_the_merge_against_another_method_or_says_it_is_missing():
    import polars as pl

    from cluster_assets.reporting.report import _ground_truth_statements

    recovery = pl.DataFrame(
        {
            "point": ["base", "alpha_half", "hdbscan_raw"] * 2,
            "method": ["mdl_merge", "mdl_merge", "umap_hdbscan"] * 2,
            "samples": [500] * 3 + [8000] * 3,
            "ari": [0.9, 0.95, 0.3, 0.97, 0.99, 0.95],
            "jaccard": [0.9, 0.9, 0.4, 1.0, 1.0, 0.97],
        }
    )
    most, fewest = _ground_truth_statements(recovery, "base")
    assert most.startswith("Ground truth, 8,000 samples") and "ARI 0.97" in most
    assert "`hdbscan_raw` (umap_hdbscan), ARI 0.95" in most and "alpha_half" not in most + fewest  # another method, not another alpha
    assert fewest.startswith("Ground truth, 500 samples") and "ARI 0.30" in fewest
    assert _ground_truth_statements(None, "base") == ["Ground truth: not run yet (materialise `ground_truth`)."]


def test_the_learning_curve_says_where_the_floor_is_stable_or_how_fast_it_still_grows():
    from cluster_assets.core.replicates import learning_curve
    from cluster_assets.reporting.report import curve_statement

    sizes = [62_500, 125_000, 250_000]
    rising = [Estimate(0.40, 0.35, 0.45, 3), Estimate(0.50, 0.45, 0.55, 3), Estimate(0.60, 0.56, 0.64, 3)]
    curve = learning_curve(sizes, rising, 0.8)
    # +0.10 per doubling from 0.60 at 250k: two more doublings, 1M; the ends: (0.64 - 0.45) = 0.19 and (0.56 - 0.55) = 0.01
    assert curve.reached is None and not curve.flattens
    assert abs(curve.gain.value - 0.10) < 1e-12 and abs(curve.gain.lower - 0.01) < 1e-12 and abs(curve.gain.upper - 0.19) < 1e-12
    assert abs(curve.projected[0] - 1_000_000) < 1e-3 and curve.projected[1] < curve.projected[0] < curve.projected[2]
    text = curve_statement("kjv", curve)
    assert text.startswith("kjv: floor ARI 0.40 [0.35, 0.45] at 62k tokens per sample, 0.60 [0.56, 0.64] at 250k")
    assert "not stable yet" in text and "reaches 0.8 at about 1.0M tokens" in text

    stable = [*rising[:2], Estimate(0.85, 0.81, 0.88, 3)]
    reached = learning_curve(sizes, stable, 0.8)
    assert reached.reached == 250_000 and reached.projected is None
    assert "stable (floor ARI ≥ 0.8, interval included) from 250k tokens" in curve_statement("kjv", reached)
    # a value above the target whose interval dips below it is not stable
    assert learning_curve(sizes, [*rising[:2], Estimate(0.82, 0.78, 0.86, 3)], 0.8).reached is None

    flat = [rising[0], Estimate(0.50, 0.45, 0.55, 3), Estimate(0.52, 0.47, 0.57, 3)]
    flattening = learning_curve(sizes, flat, 0.8)
    assert flattening.flattens and "flattens below 0.8 within noise" in curve_statement("kjv", flattening)

    # sizes are sorted, and a size with one replicate (no floor) is left out
    shuffled = learning_curve([250_000, 62_500, 500_000], [rising[2], rising[0], Estimate(None, None, None, 0)], 0.8)
    assert shuffled.sizes == (62_500, 250_000) and abs(shuffled.gain.value - 0.10) < 1e-12  # 0.20 over two doublings
    assert "one size with a floor" in curve_statement("kjv", learning_curve([62_500], rising[:1], 0.8))
