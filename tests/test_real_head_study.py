"""benchmarks/real_head_study.py: the hidden-set-1-like layout, the severity truth, the
project's measured label of a TorchIO run, and the figures against the truth."""
from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("real_head_study")


def test_single_layout_is_shaped_like_hidden_set_1(bench):
    from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE

    layout = bench.SINGLE_LAYOUT
    assert sum(c + b for _, _, c, b in layout) == 38
    assert {s for s, *_ in layout} == {"T1w", "T2w", "bold"}
    assert all(7 <= c + b <= 8 for _, _, c, b in layout)  # small cohorts, as in the hidden set
    assert all(c + b >= MIN_COHORT_SIZE for _, _, c, b in layout)  # each gets dataset grades
    assert len({(s, k) for s, k, *_ in layout}) == len(layout)  # one cohort per head
    pairs = [p for cohort in bench.degraded_cycle(layout, per_cohort=False) for p in cohort]
    assert len(pairs) == sum(b for *_, b in layout)
    assert set(pairs) == {(a, s) for a in bench.ARTIFACTS for s in bench.SEVERITIES}


def test_the_study_layout_cycles_within_each_cohort(bench):
    cycle = bench.degraded_cycle([("T1w", "robex", 16, 6), ("bold", "epi", 8, 2)],
                                 per_cohort=True)
    assert cycle[0][:3] == [("motion", "mild"), ("ghosting", "moderate"), ("spike", "severe")]
    assert cycle[1] == [("motion", "mild"), ("ghosting", "moderate")]


def test_severity_truth_is_the_hidden_sets_labels(bench):
    assert [bench.severity_label(s) for s in ("none", "mild", "moderate", "severe")] == [
        "Good", "Good", "Medium", "Bad"]


def _ball(n: int = 32) -> np.ndarray:
    z, y, x = np.mgrid[:n, :n, :n] - (n - 1) / 2
    r = np.sqrt(x ** 2 + (1.2 * y) ** 2 + z ** 2)
    return (np.clip(12 - r, 0, 1) * (0.6 + 0.4 * (x > 0))).astype(np.float32)


def test_measured_label_is_the_projects_degradation_and_grade(bench):
    from mmrqa_bids.artifacts import GRADE_CUTS, degradation

    clean = _ball()
    assert bench.measured_label(clean, clean) == (0.0, "Good")
    blurred = [bench.torchio_degrade(clean, (2.0, 2.0, 2.0), "blur", sev, 5)
               for sev in bench.SEVERITIES]
    d = [bench.measured_label(b, clean)[0] for b in blurred]
    assert d == sorted(d) and d[0] > 0
    assert d[2] == pytest.approx(degradation(blurred[2], clean))
    lab = bench.measured_label(blurred[2], clean)[1]
    assert lab == ("Good" if d[2] < GRADE_CUTS[0] else "Medium" if d[2] < GRADE_CUTS[1]
                   else "Bad")


def test_a_seed_gives_the_same_draw_whatever_the_image(bench):
    """The measured label degrades the noise-free origin with the run's seed: the draw must
    not depend on the content (blur is linear, so blur(a + b) = blur(a) + blur(b) for one
    draw), and a 4-D series draws once per volume."""
    a = _ball()
    b = np.random.default_rng(0).random(a.shape).astype(np.float32) * 0.1
    z = (2.0, 2.0, 2.0)
    together = bench.torchio_degrade(a + b, z, "blur", "moderate", 11)
    apart = (bench.torchio_degrade(a, z, "blur", "moderate", 11)
             + bench.torchio_degrade(b, z, "blur", "moderate", 11))
    np.testing.assert_allclose(together, apart, atol=1e-5)
    other = bench.torchio_degrade(a, z, "blur", "moderate", 12)
    assert not np.allclose(other, bench.torchio_degrade(a, z, "blur", "moderate", 11))
    series = bench.torchio_degrade(np.stack([a, a], axis=-1), z, "blur", "moderate", 11)
    assert series.shape == a.shape + (2,)


def test_figures_are_against_the_severity_truth(bench):
    rows = [{"truth_label": t, "grade": g, "model_grade": m} for t, g, m in [
        ("Good", "Good", "Medium"), ("Good", "Good", "Medium"), ("Medium", "Good", "Medium"),
        ("Bad", "Bad", "Bad"), ("Bad", None, "Bad")]]
    final = bench.figures(rows, "grade")
    assert final["n"] == 4 and final["confusion"] == [[2, 0, 0], [1, 0, 0], [0, 0, 1]]
    assert final["accuracy"] == pytest.approx(0.75)
    assert final["balanced_accuracy"] == pytest.approx(2 / 3)
    absolute = bench.figures(rows, "model_grade")
    assert absolute["n"] == 5 and absolute["confusion"] == [[0, 2, 0], [0, 1, 0], [0, 0, 2]]
    assert "G[ 2  0  0] M[ 1  0  0] B[ 0  0  1]" in bench.figures_line("final", final)


def test_bias_log_std_ignores_a_global_gain(bench):
    clean = _ball() + 0.05
    assert bench.bias_log_std(1.7 * clean, clean) == pytest.approx(0.0, abs=1e-6)
    x = np.linspace(-1, 1, clean.shape[0])[:, None, None]
    field = np.exp(0.2 * x) * np.ones_like(clean)
    assert 0.05 < bench.bias_log_std(1.3 * field * clean, clean) < 0.2


def test_auc_ranks_at_the_group_tsv_precision(bench):
    clean = [bench.score(p) for p in (1.0, 0.99999999998)]
    assert bench.auc([bench.score(0.9999995)], clean) == 0.5  # the TSV's 1: a tie
    assert bench.auc([bench.score(0.99)], clean) == 1.0


def test_reuse_dataset_refuses_one_built_with_other_arguments(bench, tmp_path, capsys):
    """--reuse-dataset grades only a dataset built with the same arguments (its truth.json
    records them); anything else is a one-line refusal, nothing is built or run."""
    (tmp_path / "bids").mkdir()
    (tmp_path / "truth.json").write_text(json.dumps({"shape": {"seed": 1}, "runs": []}))
    assert bench.main(["--out", str(tmp_path), "--reuse-dataset", "--seed", "24"]) == 2
    assert "built with other arguments" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.main(["--reuse-dataset"])  # needs --out


def test_results_have_each_grade_column_once(bench, tmp_path):
    """A reused dataset's truth records carry the earlier run's grades: results.tsv still has
    one column per field, holding this run's values."""
    truth = [{"participant_id": "sub-01", "truth": "clean", "metrics": {"efc": 0.5},
              "grade": "Good", "p_good": 0.9, "basis": "dataset", "deviations": []}]
    bench.write_results(tmp_path / "results.tsv", truth)
    head, row = (tmp_path / "results.tsv").read_text().splitlines()
    names = head.split("\t")
    assert len(names) == len(set(names))
    assert names[:2] == ["participant_id", "truth"] and "metrics" not in names
    values = dict(zip(names, row.split("\t")))
    assert values["grade"] == "Good" and values["basis"] == "dataset"
    assert list(bench.GRADE_COLUMNS) == names[-len(bench.GRADE_COLUMNS):]
