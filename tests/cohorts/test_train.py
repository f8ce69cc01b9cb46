"""The cohort grade model's fit: source-out temperatures, and the training sources."""
from __future__ import annotations

import numpy as np
import pytest

from mmrqa_bids.cohorts.relative import CohortModel, ordinal_labels
from mmrqa_bids.cohorts.simulate import (NATIVE_T1W_SOURCES, SOURCES, family_sources,
                                         real_twins)
from mmrqa_bids.cohorts.train import (DEGRADED_REPLICATES, fit_cohort_model, fit_grade,
                                      limit_replicates)

FEATURES = ("efc", "cjv", "snr_total")
FAST = {"max_iter": 30}


def _table(seed: int = 0, rows: int = 30) -> dict[str, np.ndarray]:
    """Three sources of ten cohorts: clean rows near z 0 (Good), degraded ones with metric 0
    off by 3-6 (Medium) or 8-10 (Bad) robust SD; the third source's degraded runs move the
    metric half as far (a scanner the others do not describe)."""
    rng = np.random.default_rng(seed)
    n = 30 * rows
    z = rng.normal(0, 1, (n, len(FEATURES)))
    label = rng.choice(["Good", "Medium", "Bad"], n, p=[0.6, 0.25, 0.15])
    source = np.repeat(["s1", "s2", "s3"], n // 3)
    z[label == "Medium", 0] = rng.uniform(3, 6, np.sum(label == "Medium"))
    z[label == "Bad", 0] = rng.uniform(8, 10, np.sum(label == "Bad"))
    z[(source == "s3") & (label != "Good"), 0] *= 0.5
    return {"z": z, "rel": 0.05 * z, "label": label, "clean": label == "Good",
            "source": source, "cohort": np.repeat(np.arange(30), rows),
            "size": np.full(n, rows), "prevalence": np.full(n, 0.4),
            "artifact": np.where(label == "Good", "none", "blur"),
            "naive": np.nanmean(np.abs(z), axis=1)}


def test_source_out_temperatures_are_softer_and_leave_the_grades_alone():
    """Random calibration cohorts share their sources with the training cohorts, so the
    temperature sharpens; on out-of-source logits it is larger. The grade (the median class,
    :func:`ordinal_labels`) is read from the logits' signs, which no temperature changes."""
    table = _table()
    plain = fit_cohort_model("anat", table, params=FAST, features=FEATURES)
    out = fit_cohort_model("anat", table, params={**FAST, "calibration": "source_out"},
                           features=FEATURES)
    assert out["training"]["params"]["calibration"] == "source_out"
    assert "calibration" not in plain["training"]["params"]  # the default file is unchanged
    for key in ("at_least_medium", "bad"):
        assert out["grade"][key]["temperature"] > plain["grade"][key]["temperature"]
    # The source-out fit's trees under either fit's temperatures: the grades are the same.
    soft = CohortModel.from_dict(out)
    sharp_doc = {**out, "grade": {**out["grade"], **{
        k: {**out["grade"][k], "temperature": plain["grade"][k]["temperature"]}
        for k in ("at_least_medium", "bad")}}}
    sharp = CohortModel.from_dict(sharp_doc)
    z, rel = table["z"], table["rel"]
    p_soft, p_sharp = soft.predict_proba(z, rel), sharp.predict_proba(z, rel)
    np.testing.assert_array_equal(ordinal_labels(p_soft), ordinal_labels(p_sharp))
    assert p_soft.max(1).mean() < p_sharp.max(1).mean()


def test_calibration_settings_are_checked():
    table = _table(rows=10)
    x = table["z"]
    with pytest.raises(ValueError, match="unknown calibration"):
        fit_grade(x, table["label"], table["cohort"], {**FAST, "calibration": "bogus"})
    with pytest.raises(ValueError, match="each row's source"):
        fit_grade(x, table["label"], table["cohort"], {**FAST, "calibration": "source_out"})


def test_family_sources_add_native_heads_and_drop_by_name():
    anat = [s.name for s in SOURCES if s.family == "anat"]
    assert family_sources("anat") == anat
    native = [s.name for s in NATIVE_T1W_SOURCES]
    assert family_sources("anat", native_t1w=True) == anat + native
    assert family_sources("bold", native_t1w=True) == [s.name for s in SOURCES
                                                       if s.family == "bold"]
    assert native[0] not in family_sources("anat", native_t1w=True, drop=[native[0]])
    with pytest.raises(ValueError, match="cannot drop"):
        family_sources("anat", drop=[native[0]])
    with pytest.raises(ValueError, match="no anat source left"):
        family_sources("anat", drop=anat)


def test_a_real_head_is_held_out_with_its_twin_on_another_grid():
    names = family_sources("anat", native_t1w=True)
    assert real_twins("robex-T1w-real", names) == ["robex-T1w-native"]
    assert real_twins("mni152-T1w-native", names) == ["mni152-T1w-real"]
    assert real_twins("robex-T2w", names) == []  # rendered from ROBEX's tissues, not the head
    assert real_twins("robex-T1w-real", family_sources("anat")) == []


def test_real_source_out_scores_only_the_real_heads():
    """``real_source_out`` fits the temperature on the out-of-source logits of the real-head
    sources' rows: a table whose real source is scored alone gets another temperature than
    one where every source is scored, from the same trees."""
    from mmrqa_bids.cohorts.train import real_head_sources

    table = _table()
    real = [s.name for s in SOURCES if s.kind == "real"][:1]
    rendered = [s.name for s in SOURCES if s.kind == "rendered"][:2]
    table["source"] = np.repeat(real + rendered, len(table["label"]) // 3)
    assert real_head_sources(list(table["source"]) + ["abide:NYU"]) == real
    every = fit_cohort_model("anat", table, params={**FAST, "calibration": "source_out"},
                             features=FEATURES)
    only = fit_cohort_model("anat", table, params={**FAST, "calibration": "real_source_out"},
                            features=FEATURES)
    for key in ("at_least_medium", "bad"):
        assert only["grade"][key]["temperature"] != every["grade"][key]["temperature"]
        assert {k: v for k, v in only["grade"][key].items() if k != "temperature"} == \
            {k: v for k, v in every["grade"][key].items() if k != "temperature"}


def test_a_larger_pool_keeps_the_smaller_one_and_limit_replicates_cuts_it_back():
    """Three subjects per artifact x severity: the one-subject pool's runs (same keys, so the
    same cached records) plus two more per cell; :func:`limit_replicates` gives the smaller
    pool back, every clean subject kept."""
    from mmrqa_bids.cohorts.simulate import ARTIFACTS, plan_pool

    one, three = plan_pool("tpm-T1w"), plan_pool("tpm-T1w", per_artifact_severity=3)
    assert DEGRADED_REPLICATES >= 1
    assert len(one) == 32 + 3 * len(ARTIFACTS) and len(three) == 32 + 9 * len(ARTIFACTS)
    assert {r.key() for r in one} < {r.key() for r in three}
    records = {"tpm-T1w": [{"severity": r.severity, "replicate": r.replicate, "key": r.key()}
                           for r in three]}
    cut = limit_replicates(records, 1)["tpm-T1w"]
    assert [r["key"] for r in cut] == [r.key() for r in one]
    assert len(limit_replicates(records, 2)["tpm-T1w"]) == 32 + 6 * len(ARTIFACTS)
    with pytest.raises(ValueError, match="replicates must be >= 1"):
        limit_replicates(records, 0)
