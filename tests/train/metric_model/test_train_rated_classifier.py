"""The metric classifier on a study's own ratings, family by family: grades alone fit the
grade model and keep the shipped artifact model; too few ratings keep the shipped model and
say how many more of which grade; participant-level metrics are reused only when valid."""
from __future__ import annotations

import math

import numpy as np
import pytest

from mmrqa_bids.train.metric_model.rated import (MIN_PER_CLASS, fit_rated_family,
                                                 held_out_scores, known_artifact, read_model_doc,
                                                 shortfall, shortfall_line, stratified_calibration)


@pytest.fixture(scope="module")
def shipped():
    from mmrqa_bids.grading.classifier import model_paths
    return read_model_doc(model_paths(None)["anat"])


def _rows(shipped, n_per_grade: dict[str, int], seed: int = 0) -> list[dict]:
    """Metric rows around the shipped model's clean medians; Medium and Bad runs moved by 3
    and 8 interquartile ranges on every feature (a clear, learnable difference)."""
    rng = np.random.default_rng(seed)
    shift = {"Good": 0.0, "Medium": 3.0, "Bad": 8.0}
    out = []
    for grade, n in n_per_grade.items():
        for _ in range(n):
            metrics = {}
            for name in shipped["features"]:
                ref = shipped["reference"].get(name, {"median": 1.0, "q25": 0.9, "q75": 1.1})
                iqr = max(ref["q75"] - ref["q25"], 1e-6)
                metrics[name] = ref["median"] + iqr * (shift[grade] + 0.3 * rng.standard_normal())
            out.append({"label": grade, "metrics": metrics, "suffix": "T1w",
                        "origin": "expert", "artifact": None, "split": "train"})
    return out


def test_shortfall_counts_what_each_grade_lacks():
    labels = ["Good"] * 7 + ["Medium"] * 3
    assert shortfall(labels, ("Good", "Medium", "Bad"), 5) == {"Medium": 2, "Bad": 5}
    assert shortfall(labels * 2, ("Good", "Medium"), 5) == {}


def test_shortfall_line_is_one_line_with_the_ratings_needed():
    line = shortfall_line("bold", {"Good": 4, "Bad": 1}, {"Good": 1, "Medium": 5, "Bad": 4},
                          0.5, 5)
    assert "\n" not in line and line.startswith("WARNING bold")
    assert "1 more Good, 5 more Medium, 4 more Bad in the training split" in line
    # half the ratings are held out: twice as many rated runs in all
    assert "about 2 Good, 10 Medium, 8 Bad more rated runs" in line
    assert "shipped bold model is kept" in line


def test_stratified_calibration_keeps_most_of_every_class_for_the_trees():
    labels = ["Good"] * 20 + ["Medium"] * 5 + ["Bad"] * 4
    calib = stratified_calibration(labels, 0.2, seed=3)
    arr = np.array(labels)
    assert [int(calib[arr == c].sum()) for c in ("Good", "Medium", "Bad")] == [4, 1, 0]
    assert np.array_equal(calib, stratified_calibration(labels, 0.2, seed=3))


def test_known_artifact():
    assert known_artifact({"label": "Good", "artifact": None}) == "none"
    assert known_artifact({"label": "Bad", "artifact": None}) is None
    assert known_artifact({"label": "Bad", "artifact": "motion"}) == "motion"
    # the rating widget's "other": an artifact outside the classifier's types
    assert known_artifact({"label": "Bad", "artifact": "other"}) is None


def test_grades_alone_fit_the_grade_model_and_keep_the_shipped_artifact_model(shipped):
    from mmrqa_bids.grading.classifier import MetricModel

    train = _rows(shipped, {"Good": 12, "Medium": 6, "Bad": 6})
    doc, record = fit_rated_family("anat", train, shipped, seed=0)
    assert doc is not None and record["trained"]
    assert doc["features"] == shipped["features"]
    assert doc["artifact"] == shipped["artifact"]
    kept = doc["recipe"]["artifact_model"]
    assert kept["trained"] is False and kept["model_id"] == shipped["model_id"]
    assert "no artifact label" in kept["reason"]
    assert doc["model_id"].startswith("mmrqa-metric-rated-anat-")
    model = MetricModel.from_dict(doc)  # the grader reads it
    assert list(model.artifact.classes) == shipped["artifact"]["classes"]
    test = _rows(shipped, {"Good": 10, "Medium": 10, "Bad": 10}, seed=1)
    scores = held_out_scores(doc, test)
    assert scores["n"] == 30 and scores["accuracy"] >= 0.8  # the separable grades are learned
    assert scores.get("artifact_accuracy_degraded") is None  # no artifact truth to score


def test_a_family_short_of_a_grade_is_not_fitted(shipped):
    train = _rows(shipped, {"Good": 9, "Medium": MIN_PER_CLASS, "Bad": 2})
    doc, record = fit_rated_family("anat", train, shipped, seed=0)
    assert doc is None and not record["trained"]
    assert record["short"] == {"Bad": MIN_PER_CLASS - 2}
    assert record["counts"] == {"Good": 9, "Medium": MIN_PER_CLASS, "Bad": 2}


def test_artifact_labels_of_every_type_fit_an_artifact_model(shipped):
    from mmrqa_bids.artifacts import ARTIFACTS

    train = _rows(shipped, {"Good": 10, "Medium": 0, "Bad": 0})
    degraded = _rows(shipped, {"Medium": 2 * len(ARTIFACTS) + 1, "Bad": 3 * len(ARTIFACTS)},
                     seed=2)
    for i, e in enumerate(degraded):
        e["artifact"] = ARTIFACTS[i % len(ARTIFACTS)]
    doc, record = fit_rated_family("anat", train + degraded, shipped, seed=0)
    assert record["trained"] and record["artifact_model"]["trained"]
    assert doc["artifact"] != shipped["artifact"]
    assert set(record["artifact_model"]["counts"]) == {"none", *ARTIFACTS}


def test_too_few_artifact_labels_keep_the_shipped_artifact_model(shipped):
    train = _rows(shipped, {"Good": 8, "Medium": 6, "Bad": 6})
    for e in train[8:]:
        e["artifact"] = "motion"
    doc, record = fit_rated_family("anat", train, shipped, seed=0)
    assert record["trained"] and not record["artifact_model"]["trained"]
    assert "fewer than" in record["artifact_model"]["reason"] and "ghosting" in \
        record["artifact_model"]["reason"]
    assert doc["artifact"] == shipped["artifact"]


def test_reusable_metrics_only_from_a_matching_participant_level_json():
    from mmrqa_bids.train.level import reusable_metrics

    doc = {"bids_meta": {"checksum": "sha256:abc"}, "metrics": {"snr": 3.0, "cjv": None},
           "provenance": {"version": "1.0", "mriqc": None,
                          "settings": {"execution": {"inu_method": "polynomial"}}}}
    got = reusable_metrics(doc, "sha256:abc", "1.0")
    assert got["snr"] == 3.0 and math.isnan(got["cjv"])
    assert reusable_metrics(doc, "sha256:other", "1.0") is None  # the file changed
    assert reusable_metrics(doc, "sha256:abc", "1.1") is None  # another mmrqa version
    n4 = {**doc, "provenance": {**doc["provenance"],
                                "settings": {"execution": {"inu_method": "n4"}}}}
    assert reusable_metrics(n4, "sha256:abc", "1.0") is None  # another bias-field estimator
    mriqc = {**doc, "provenance": {**doc["provenance"], "mriqc": {"note": None}}}
    assert reusable_metrics(mriqc, "sha256:abc", "1.0") is None  # MRIQC's IQMs mixed in
    assert reusable_metrics({**doc, "metrics": {}}, "sha256:abc", "1.0") is None
    assert reusable_metrics(None, "sha256:abc", "1.0") is None


def test_model_card_records_kept_and_fitted_models_without_held_out_runs(tmp_path):
    from mmrqa_bids.cli.parser import build_parser
    from mmrqa_bids.cli.run import build_settings
    from mmrqa_bids.train.metric_level import classifier_card

    tsv = tmp_path / "ratings.tsv"
    tsv.write_text("participant_id\trating\n01\tGood\n")
    settings = build_settings(build_parser().parse_args(
        [str(tmp_path), str(tmp_path / "out"), "train", "--labels", str(tsv),
         "--holdout-fraction", "0"]))
    families = {
        "anat": {"trained": True, "n_train": 15, "n_simulated": 0, "model_id": "m-anat",
                 "counts": {"Good": 5, "Medium": 5, "Bad": 5}, "min_samples_leaf": 2,
                 "artifact_model": {"trained": False, "model_id": "shipped-anat",
                                    "reason": "no artifact label among the ratings; the "
                                              "shipped artifact model is kept"}},
        "bold": {"trained": False, "n_train": 2, "counts": {"Good": 2},
                 "short": {"Good": 3, "Medium": 5, "Bad": 5}, "kept": "shipped-bold",
                 "reason": "fewer than 5 training examples of Good, Medium, Bad"}}
    data = {"train_ids": ["01"], "held": [], "failed": [],
            "manifest": {"reused_participant_metrics": 1}}
    card = classifier_card(settings, tmp_path / "out" / "m", data, families)
    assert "**Fitted on the ratings**: model `m-anat`" in card
    assert "Artifact model: **shipped** (`shipped-anat`): no artifact label" in card
    assert "**Shipped model kept** (`shipped-bold`)" in card
    assert "it needs 3 more Good and 5 more Medium and 5 more Bad" in card
    assert card.count("No held-out run of this family") == 2
    assert "1 rated run(s) reused the metrics" in card


# ------------------------------------------------------------------ relative model (item 3)
def _relative(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(z, rel) of n runs departing from their cohort by a random amount over the shipped
    anat cohort model's metrics."""
    from mmrqa_bids.train.metric_model.rated import shipped_cohort_doc

    m = len(shipped_cohort_doc("anat")["features"])
    rng = np.random.default_rng(seed)
    scale = np.exp(rng.uniform(np.log(0.2), np.log(8.0), (n, 1)))
    z = np.clip(rng.normal(0, 1, (n, m)) * scale, -10, 10)
    return z, z * 0.02


def _grades(p: np.ndarray) -> np.ndarray:
    return np.array(["Good", "Medium", "Bad"])[p.argmax(1)]


def test_recalibration_is_a_cohort_model_file_with_the_fitted_logits():
    from mmrqa_bids.cohorts.relative import CohortModel
    from mmrqa_bids.grading.classifier import TreeEnsemble
    from mmrqa_bids.train.metric_model.rated import (model_inputs, recalibrate_cohort_model,
                                                     shipped_cohort_doc)

    base = shipped_cohort_doc("anat")
    z, rel = _relative(120)
    p = CohortModel.from_dict(base).predict_proba(z, rel)
    labels = _grades(p)
    doc = recalibrate_cohort_model(base, z[:40], rel[:40], labels[:40])
    model = CohortModel.from_dict(doc)  # loads as the grader loads the shipped model
    assert model.model_id.startswith("mmrqa-cohort-rated-anat-")
    assert model.features == tuple(base["features"])
    rec = doc["recalibration"]
    assert rec["base_model_id"] == base["model_id"] and rec["n"] == 40
    x = model_inputs(base, z, rel)
    for key, fit in rec["heads"].items():  # folded into the head: logit a s + b, unclipped
        old, new = (TreeEnsemble.from_dict(d["grade"][key]) for d in (base, doc))
        assert np.allclose(new.raw(x)[:, 0] / new.temperature,
                           fit["slope"] * old.raw(x)[:, 0] / old.temperature + fit["offset"])
    # ratings that agree with the model keep its grades on the other runs
    agree = np.mean(_grades(model.predict_proba(z[40:], rel[40:])) == labels[40:])
    assert agree >= 0.95


def test_recalibration_learns_a_stricter_rater_and_more_with_more_ratings():
    from mmrqa_bids.cohorts.relative import CohortModel
    from mmrqa_bids.train.metric_model.rated import (head_logits, recalibrate_cohort_model,
                                                     shipped_cohort_doc)

    base = shipped_cohort_doc("anat")
    z, rel = _relative(400, seed=1)
    p = CohortModel.from_dict(base).predict_proba(z, rel)
    s = head_logits(base, z, rel)
    # a strict rater: Medium or Bad for the 40% of runs furthest from their cohort by the
    # shipped model's own score (it flags fewer), Bad where the shipped model says Bad
    strict = np.where(s["bad"] > 0, "Bad", np.where(
        s["at_least_medium"] > np.quantile(s["at_least_medium"], 0.6), "Medium", "Good"))
    assert np.mean(strict != "Good") > np.mean(p.argmax(1) != 0) + 0.1
    test = slice(200, None)
    target = np.mean(strict[test] != "Good")

    def flagged(n: int) -> float:
        doc = recalibrate_cohort_model(base, z[:n], rel[:n], strict[:n])
        q = CohortModel.from_dict(doc).predict_proba(z[test], rel[test])
        return float(np.mean(q.argmax(1) != 0))

    shipped = float(np.mean(p[test].argmax(1) != 0))
    few, many = flagged(5), flagged(200)
    assert shipped <= few <= many  # the prior holds a handful of ratings back
    assert abs(many - target) < abs(shipped - target)


def test_fit_affine_without_ratings_is_the_identity():
    from mmrqa_bids.train.metric_model.rated import fit_affine

    assert fit_affine(np.array([]), np.array([])) == pytest.approx((1.0, 0.0), abs=1e-6)


def test_rated_cohort_family_needs_a_cohort_and_enough_ratings():
    from mmrqa_bids.train.metric_model.rated import (fit_rated_cohort_family,
                                                     shipped_cohort_doc)

    base = shipped_cohort_doc("anat")
    rng = np.random.default_rng(3)
    names = base["features"]

    def entry(i: int, split: str, bad: bool) -> dict:
        metrics = {n: float(rng.normal(10, 1) + (8 if bad else 0)) for n in names}
        return {"label": "Bad" if bad else "Good", "metrics": metrics, "suffix": "T1w",
                "origin": "expert", "split": split, "artifact": None}

    entries = [entry(i, "train" if i < 14 else "test", i % 4 == 0) for i in range(20)]
    simulated = [{**entries[0], "origin": "simulated"}]  # not a member of the study's cohort
    doc, record = fit_rated_cohort_family("anat", entries + simulated, base)
    assert doc is not None and record["trained"] and record["n_train"] == 14
    assert record["held_out"]["n"] == record["held_out_shipped"]["n"] == 6
    # fewer rated runs of a suffix than a cohort needs: no relative features, base kept
    from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE
    doc, record = fit_rated_cohort_family("anat", entries[:MIN_COHORT_SIZE - 1], base)
    assert doc is None and not record["trained"] and "fewer than" in record["reason"]
