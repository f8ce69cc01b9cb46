"""Dataset-relative grades: leave-one-out z, grades of members and new runs, guard rails."""
from __future__ import annotations

import numpy as np
import pytest

from mmrqa_bids.cohorts import relative
from mmrqa_bids.cohorts.reference import build_reference
from mmrqa_bids.cohorts.relative import (MIN_COHORT_SIZE, CohortGradeError, cohort_warnings,
                                         cohort_z, grade_against, grade_cohort, naive_model)
from mmrqa_bids.metrics.names import ANAT_FEATURES

NAIVE = naive_model("anat")


def _cohort(n: int, seed: int = 0, degraded: dict[int, float] | None = None):
    """n anatomical runs of one protocol: every scale-free metric N(base, 3% of base); the
    runs in ``degraded`` have every metric moved by that many cohort spreads."""
    rng = np.random.default_rng(seed)
    base = {m: 1.0 + k for k, m in enumerate(ANAT_FEATURES)}
    rows = []
    for i in range(n):
        shift = (degraded or {}).get(i, 0.0)
        rows.append({m: b * (1 + 0.03 * (rng.normal() + shift)) for m, b in base.items()})
    members = [f"sub-{i:02d}_T1w" for i in range(n)]
    return rows, build_reference(rows, cohort_id="T1w-test", protocol={"suffix": "T1w"},
                                 members=members)


def test_leave_one_out_compares_a_member_with_the_others_only():
    rows, ref = _cohort(9, degraded={0: 6.0})
    z, centre, _ = cohort_z(rows, ["snr_total"], ref)
    assert abs(z[0, 0]) > 4  # the degraded run stands out from the other eight
    # Its own value never enters its centre: the centre is that of the clean runs.
    others = [r["snr_total"] for r in rows[1:]]
    assert min(others) <= centre[0, 0] <= max(others)
    # The clean runs' centres (computed without them) differ from one another.
    assert np.ptp(centre[1:, 0]) > 0


def test_large_cohorts_use_the_cohort_reference():
    rows, ref = _cohort(relative.LOO_MAX_SIZE + 6)
    _, centre, _ = cohort_z(rows, ["efc"], ref)
    assert np.all(centre[:, 0] == ref.stats(["efc"])[0][0])


def test_clean_members_good_degraded_member_bad_with_the_naive_score():
    rows, ref = _cohort(20, degraded={3: 8.0, 11: 2.0})
    grades = grade_cohort(ref, rows, "anat", model=NAIVE)
    labels = [g.label for g in grades]
    assert labels[3] == "Bad"
    assert labels[11] == "Medium"
    assert all(lab == "Good" for i, lab in enumerate(labels) if i not in (3, 11))
    for g in grades:
        assert sum(g.probabilities.values()) == pytest.approx(1.0)
        assert g.confidence == max(g.probabilities.values())
        assert g.model_id.startswith(relative.NAIVE_ID)


def test_deviations_name_the_metrics_that_set_a_run_apart():
    rows, ref = _cohort(20, degraded={3: 4.0})
    rows[3]["efc"] = rows[3]["efc"] * 1.5  # the furthest metric
    g = grade_cohort(ref, rows, "anat", model=NAIVE)[3]
    assert 0 < len(g.deviations) <= relative.MAX_DEVIATIONS
    assert g.deviations[0].metric == "efc"
    zs = [abs(d.z) for d in g.deviations]
    assert zs == sorted(zs, reverse=True) and min(zs) >= relative.DEVIATION_MIN_Z
    d = g.deviations[0]
    assert d.low < d.centre < d.high and not d.low <= d.value <= d.high


def test_grade_against_a_stored_reference():
    import json

    from mmrqa_bids.cohorts.reference import CohortReference

    rows, ref = _cohort(30)
    stored = CohortReference.from_dict(json.loads(json.dumps(ref.to_dict())))
    new_rows, _ = _cohort(2, seed=5, degraded={1: 9.0})
    assert grade_against(stored, new_rows[0], "anat", model=NAIVE).label == "Good"
    assert grade_against(stored, new_rows[1], "anat", model=NAIVE).label == "Bad"


def test_clear_errors():
    rows, ref = _cohort(MIN_COHORT_SIZE - 1)
    with pytest.raises(CohortGradeError, match=f"needs at least {MIN_COHORT_SIZE}"):
        grade_cohort(ref, rows, "anat", model=NAIVE)
    with pytest.raises(CohortGradeError, match=f"needs at least {MIN_COHORT_SIZE}"):
        grade_against(ref, rows[0], "anat", model=NAIVE)
    rows, ref = _cohort(12)
    with pytest.raises(CohortGradeError, match="11 rows for a reference of 12"):
        grade_cohort(ref, rows[:-1], "anat", model=NAIVE)
    with pytest.raises(CohortGradeError, match="shares no finite metric"):
        grade_against(ref, {"unrelated": 1.0}, "anat", model=NAIVE)
    with pytest.raises(CohortGradeError, match="unknown family"):
        relative.load_cohort_model("dwi")


def test_no_warning_for_a_clean_cohort():
    rows, ref = _cohort(24)
    grades = grade_cohort(ref, rows, "anat", model=NAIVE)
    assert cohort_warnings(ref, grades, ["Good"] * 24, rows=rows) == []


def test_warning_when_most_runs_are_graded_down_by_both_models():
    rows, ref = _cohort(10, degraded={i: 3.0 for i in range(5)})
    grades = grade_cohort(ref, rows, "anat", model=NAIVE)
    forced = [relative.RelativeGrade("Medium", g.probabilities, g.confidence, (), g.model_id)
              for g in grades[:6]] + grades[6:]
    warnings = cohort_warnings(ref, forced, ["Bad"] * 10)
    assert len(warnings) == 1 and "may be degraded" in warnings[0]
    # Graded down by one model only: no warning.
    assert cohort_warnings(ref, forced, ["Good"] * 10) == []


def test_warning_for_a_bimodal_cohort():
    rows_a, _ = _cohort(12, seed=1)
    rows_b, _ = _cohort(12, seed=2, degraded={i: 12.0 for i in range(12)})  # another protocol
    rows = rows_a + rows_b
    ref = build_reference(rows, cohort_id="mixed", protocol={}, members=[str(i) for i in range(24)])
    grades = grade_cohort(ref, rows, "anat", model=NAIVE)
    warnings = cohort_warnings(ref, grades, [None] * 24, rows=rows)
    assert any("two distinct groups" in w for w in warnings)
    with pytest.raises(CohortGradeError, match="24 grades for 3"):
        cohort_warnings(ref, grades, [None] * 3)


def test_bimodality_of_one_normal_sample_stays_below_the_cuts():
    rng = np.random.default_rng(0)
    for n in (24, 100):
        for _ in range(50):
            d, gap = relative.bimodality(rng.normal(size=n))
            assert not (d > relative.BIMODAL_MIN_D and gap > relative.BIMODAL_MIN_GAP)
    d, gap = relative.bimodality(np.concatenate([rng.normal(0, 1, 50), rng.normal(9, 1, 50)]))
    assert d > relative.BIMODAL_MIN_D and gap > relative.BIMODAL_MIN_GAP


def test_the_shipped_model_grades_a_generated_cohort():
    """The trained model that ships: clean subjects of one protocol Good, a strongly
    degraded one not Good (a rendered 3 mm T1w source: seconds per run)."""
    from mmrqa_bids.cohorts import simulate as S
    from mmrqa_bids.metrics import measure
    from mmrqa_bids.resources import data_dir

    path = data_dir() / relative.MODEL_FILES["anat"]
    assert path.is_file(), f"{path} does not ship"
    model = relative.read_model_file(path)
    assert model.grade is not None and model.model_id.startswith("mmrqa-cohort-hgb-anat")
    plan = S.plan_pool("tpm-T1w", n_clean=9, per_artifact_severity=1, seed=12345)
    runs = plan[:9] + [r for r in plan if r.artifact == "noise" and r.severity == "severe"]
    rows = []
    for run in runs:
        sim, vox = S.simulate_run(run)
        rows.append(measure(sim.data, "T1w", vox).metrics)
    ref = build_reference(rows, cohort_id="T1w-test", protocol={},
                          members=[str(i) for i in range(len(rows))])
    grades = grade_cohort(ref, rows, "anat", model=model)
    assert [g.label for g in grades[:9]] == ["Good"] * 9
    assert grades[9].label != "Good"
    assert grades[9].model_id == model.model_id


@pytest.mark.parametrize("family", relative.FAMILIES)
def test_the_shipped_model_never_grades_a_further_run_better(family):
    """Monotonic in every feature: scaling a run's departures up (either direction) never
    lowers P(>= Medium) or P(Bad); a run far off in every metric, up or down, is Bad."""
    from mmrqa_bids.resources import data_dir

    model = relative.read_model_file(data_dir() / relative.MODEL_FILES[family])
    m = len(model.features)
    rng = np.random.default_rng(0)
    z = rng.normal(0, 2, (200, m))
    rel = z * rng.uniform(0.005, 0.05, (1, m))
    p = model.predict_proba(z, rel)
    for factor in (1.5, 3.0):
        q = model.predict_proba(np.clip(z * factor, -10, 10), rel * factor)
        assert np.all(q[:, 1] + q[:, 2] >= p[:, 1] + p[:, 2] - 1e-9)
        assert np.all(q[:, 2] >= p[:, 2] - 1e-9)
    for sign in (1.0, -1.0):
        far = model.predict_proba(np.full((1, m), sign * 10.0), np.full((1, m), sign * 0.3))
        assert relative.LABELS[int(relative.ordinal_labels(far)[0])] == "Bad"


def test_split_features_keep_each_direction_apart():
    z = np.array([[2.0, -3.0, np.nan]])
    rel = np.array([[0.1, -0.2, np.nan]])
    x = relative.split_features(z, rel)
    m = z.shape[1]
    assert x.shape == (1, 4 * m + len(relative.AGGREGATES))
    assert x[0, :m].tolist()[:2] == [2.0, 0.0] and x[0, m:2 * m].tolist()[:2] == [0.0, 3.0]
    assert x[0, 2 * m:3 * m].tolist()[:2] == [0.1, 0.0]
    assert x[0, 3 * m:4 * m].tolist()[:2] == [0.0, 0.2]
    assert np.isnan(x[0, [2, m + 2, 2 * m + 2, 3 * m + 2]]).all()  # missing stays missing
    # the aggregates are those of |z|, as the |z| input's
    assert np.allclose(x[0, 4 * m:], relative.relative_features(z, rel)[0, 2 * m:])
    assert len(relative.input_names("split", ["a", "b", "c"])) == x.shape[1]
    # the directional input: the same per-metric columns, no aggregates
    d = relative.model_input("directional", z, rel)
    assert np.array_equal(d, x[:, :4 * m], equal_nan=True)
    assert len(relative.input_names("directional", ["a", "b", "c"])) == d.shape[1]
    with pytest.raises(CohortGradeError, match="unknown cohort feature kind"):
        relative.model_input("signed", z, rel)


def test_out_of_support_never_good_then_bad_and_never_lowers_a_grade():
    p = np.array([[0.9, 0.08, 0.02]] * 3)
    q = relative.out_of_support(p, np.array([1.0, 4.5, 9.0]), (4.0, 7.0))
    assert np.allclose(q[0], p[0])  # inside the support: unchanged
    assert q[1, 0] == 0.0 and q[1, 2] == pytest.approx(0.02)  # P(Good) moved to Medium
    assert q[2].tolist() == [0.0, 0.0, 1.0]
    assert np.allclose(q.sum(1), 1.0)
    # a and b = P(>= Medium), P(Bad) only rise
    assert np.all(q[:, 1] + q[:, 2] >= p[:, 1] + p[:, 2]) and np.all(q[:, 2] >= p[:, 2])


def test_model_files_of_the_earlier_format_are_read_and_unknown_ones_refused():
    from mmrqa_bids.resources import data_dir

    model = relative.read_model_file(data_dir() / relative.MODEL_FILES["anat"])
    doc = {"format": "mmrqa-cohort-model/1", "family": "anat", "model_id": "old",
           "features": list(model.features), "grade": _grade_doc(model)}
    old = relative.CohortModel.from_dict(doc)
    assert old.feature_kind == "abs" and old.support is None
    with pytest.raises(CohortGradeError, match="mmrqa-cohort-model/9"):
        relative.CohortModel.from_dict({**doc, "format": "mmrqa-cohort-model/9"})
    with pytest.raises(CohortGradeError, match="unknown feature kind 'signed'"):
        relative.CohortModel.from_dict({**doc, "format": relative.MODEL_FORMAT,
                                        "feature_kind": "signed"})


def _grade_doc(model):
    import gzip
    import json

    from mmrqa_bids.resources import data_dir

    path = data_dir() / relative.MODEL_FILES[model.family]
    return json.loads(gzip.decompress(path.read_bytes()))["grade"]


@pytest.mark.parametrize("family", relative.FAMILIES)
def test_the_shipped_model_never_grades_an_outlier_good(family):
    """Runs 10 robust SD off in every metric, in random directions (the defect of the
    signed-feature model: 7-9% of them Good), are never Good; moved further away along any
    random direction, a run is never graded better."""
    from mmrqa_bids.resources import data_dir

    model = relative.read_model_file(data_dir() / relative.MODEL_FILES[family])
    assert model.feature_kind in ("split", "directional") and model.support is not None
    m = len(model.features)
    rng = np.random.default_rng(1)
    signs = rng.choice([-1.0, 1.0], (1000, m))
    p = model.predict_proba(10.0 * signs, 0.3 * signs)
    assert not np.any(relative.ordinal_labels(p) == 0)
    direction = rng.normal(size=(300, m))
    direction /= np.abs(direction).max(1, keepdims=True)
    scale = rng.uniform(0.001, 0.05, (1, m))
    prev = None
    for dist in (0.5, 1, 2, 3, 5, 8, 10, 20):
        z = np.clip(direction * dist, -10, 10)
        q = model.predict_proba(z, direction * dist * scale)
        if prev is not None:
            assert np.all(q[:, 1] + q[:, 2] >= prev[:, 1] + prev[:, 2] - 1e-9)
            assert np.all(q[:, 2] >= prev[:, 2] - 1e-9)
            # the median class follows a and b, so the grade never improves either
            assert np.all(relative.ordinal_labels(q) >= relative.ordinal_labels(prev))
        prev = q


def test_the_grade_is_the_median_class_of_the_ordinal_probabilities():
    p = np.array([[0.6, 0.3, 0.1],     # P(>= Medium) 0.4: Good
                  [0.45, 0.3, 0.25],   # P(>= Medium) 0.55, P(Bad) 0.25: Medium, not argmax
                  [0.4, 0.1, 0.5],     # P(Bad) 0.5: Bad
                  [0.1, 0.8, 0.1]])
    np.testing.assert_array_equal(relative.ordinal_labels(p), [0, 1, 2, 1])
    assert relative.ordinal_labels(np.array([0.2, 0.2, 0.6])).tolist() == [2]
