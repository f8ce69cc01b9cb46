"""The cohort benchmarks' own pieces: the within-site rank mean of
benchmarks/cohort_mriqc_ratings.py (--combine-supervised) and the options of
benchmarks/cohort_grading.py (--sizes, --train-floor-levels, --test-floor-levels,
--native-t1w, --calibration)."""
from __future__ import annotations

import numpy as np
import pytest


def test_rank_mean_ranks_within_each_site_only(load_benchmark):
    bench = load_benchmark("cohort_mriqc_ratings")
    sites = np.array(["A", "A", "A", "B", "B"])
    a = np.array([0.1, 0.9, 0.5, 100.0, 200.0])  # site B's scale is irrelevant
    b = np.array([0.3, 0.2, 0.1, 5.0, 1.0])
    out = bench.rank_mean_within_sites(sites, a, b)
    # site A: ranks of a 1, 3, 2 and of b 3, 2, 1, each over n = 3
    assert out[:3] == pytest.approx([(1 + 3) / 6, (3 + 2) / 6, (2 + 1) / 6])
    # site B: a ranks 1, 2; b ranks 2, 1 -> a tie at 0.75
    assert out[3:] == pytest.approx([0.75, 0.75])
    # one score alone: its within-site rank / n (the ranking within a site is kept)
    assert np.argsort(bench.rank_mean_within_sites(sites, a)[:3]).tolist() == [0, 2, 1]


def test_rank_mean_leaves_an_image_without_both_scores_out(load_benchmark):
    bench = load_benchmark("cohort_mriqc_ratings")
    sites = np.array(["A", "A", "A"])
    out = bench.rank_mean_within_sites(sites, np.array([1.0, np.nan, 3.0]),
                                       np.array([1.0, 2.0, 3.0]))
    assert np.isnan(out[1])
    assert out[[0, 2]] == pytest.approx([0.5, 1.0])  # ranked among the two scored images


def test_cohort_grading_takes_sizes_and_floor_level_options(capsys, load_benchmark):
    bench = load_benchmark("cohort_grading")
    from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE

    assert bench.SIZES == (8, 16, 32, 100)
    assert min(bench.SIZES) >= MIN_COHORT_SIZE  # the default sizes all get dataset grades
    with pytest.raises(SystemExit) as stop:
        bench.main(["--help"])
    assert stop.value.code == 0
    usage = capsys.readouterr().out
    for option in ("--sizes", "--train-floor-levels", "--test-floor-levels", "--native-t1w",
                   "--calibration", "--train-replicates", "--test-replicates"):
        assert option in usage
    assert "out-of-source logits (default" in " ".join(usage.split())  # the shipped recipe
