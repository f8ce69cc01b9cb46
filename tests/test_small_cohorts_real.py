"""benchmarks/small_cohorts_real.py: cohort draws and the dataset grade at any size >= 3."""
from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("small_cohorts_real")


def _pool(n_clean: int, n_degraded: int) -> list[dict]:
    return [{"clean": i < n_clean, "i": i} for i in range(n_clean + n_degraded)]


def test_a_draw_holds_n_runs_and_at_most_one_degraded(bench):
    rng = np.random.default_rng(0)
    pool = _pool(4, 3)
    for with_degraded in (False, True):
        rows = bench.draw(pool, 3, with_degraded, rng)
        assert len(rows) == 3 and len({r["i"] for r in rows}) == 3
        assert sum(not r["clean"] for r in rows) == int(with_degraded)
    assert bench.draw(pool, 5, False, rng) is None  # only 4 clean runs


def test_dataset_grades_grade_every_member_of_a_small_cohort(bench):
    """Three runs of one protocol, one far off in every metric: the far one is graded down,
    the two alike ones are not (each compared with the two others)."""
    from mmrqa_bids.cohorts.relative import load_cohort_model

    features = load_cohort_model("anat").features
    rng = np.random.default_rng(1)
    rows = [{"metrics": {f: float(1.0 + 0.01 * rng.standard_normal()) for f in features}}
            for _ in range(3)]
    for f in features:
        rows[2]["metrics"][f] *= 1.5
    grades = bench.dataset_grades(rows, "anat")
    assert len(grades) == 3 and grades[2] != "Good"


def test_cohorts_below_three_runs_are_refused(bench):
    with pytest.raises(SystemExit):
        bench.main(["somewhere", "--sizes", "2"])


def test_a_model_option_names_a_family(bench):
    with pytest.raises(SystemExit):
        bench.main(["somewhere", "--model", "T1w=/some/file.json.gz"])
