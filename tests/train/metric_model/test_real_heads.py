"""Real heads as acquired in the metric classifier's fit, and the source-out calibration
(mmrqa_bids/train/metric_model/real_heads.py, fit.py, trees.py)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import ARTIFACTS  # noqa: E402
from mmrqa_bids.train.metric_model import fit, real_heads  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE, plan_examples  # noqa: E402
from mmrqa_bids.train.metric_model.sources import TrainingError  # noqa: E402
from mmrqa_bids.train.metric_model.trees import (fit_ensemble,  # noqa: E402
                                                 source_out_temperature)

LEVEL = {"none": 0.0, "mild": 0.3, "moderate": 1.0, "severe": 2.0}
GRADE = {"none": "Good", "mild": "Good", "moderate": "Medium", "severe": "Bad"}


def _row(artifact: str, severity: str, rng, offset: float = 0.0) -> dict[str, float]:
    k = ARTIFACTS.index(artifact) if artifact in ARTIFACTS else 0
    s = LEVEL[severity]
    return {"a": offset + s + 0.05 * rng.standard_normal(),
            "b": s * (k % 3) + 0.05 * rng.standard_normal(),
            "c": s * (k // 3) + 0.05 * rng.standard_normal()}


def _real_records(rng, source: str, offset: float, n_clean: int = 12):
    combos = [("none", "none")] * n_clean + [(a, s) for a in ARTIFACTS
                                             for s in ("mild", "moderate", "severe")]
    return [{"source": source, "artifact": a, "severity": s, "label": GRADE[s],
             "metrics": _row(a, s, rng, offset)} for a, s in combos]


def _synthetic_family(monkeypatch, offset: float):
    """Renderings without offset; real heads whose clean runs sit at ``offset`` in `a` (a
    baseline the renderings never show)."""
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["anat"]["draws"] = {"train": 1, "seen": 1, "unseen": 1}
    recipe["anat"]["real"] = {"sources": ["robex-T1w-real", "mni152-T1w-real"], "n_clean": 12,
                              "per_artifact_severity": 1, "share": 0.25}
    # Small trees: about 30 fits per family here (source-out calibration, one refit per head).
    recipe["model"] = {**recipe["model"], "calibration": "source_out", "max_iter": 15}
    examples = plan_examples(recipe, "anat")
    rng = np.random.default_rng(0)
    records = [{"metrics": _row(ex.artifact, ex.severity, rng), "label": GRADE[ex.severity]}
               for ex in examples]
    real = (_real_records(rng, "robex-T1w-real", offset)
            + _real_records(rng, "mni152-T1w-real", offset))
    monkeypatch.setattr(fit, "scale_free_metrics", lambda family: {"a", "b", "c"})
    return recipe, examples, records, real


def test_anatomy_of_maps_renderings_and_real_sources_to_their_head():
    assert real_heads.anatomy_of("rendered-mnihard") == "mni"
    assert real_heads.anatomy_of("rendered-robex") == "robex"
    assert real_heads.anatomy_of("mni152-T1w-real") == "mni"
    assert real_heads.anatomy_of("fsl-bold-real") == "fsl"


def test_as_training_rows_keeps_labels_and_names_the_artifact_of_degraded_runs():
    recs = [{"source": "b0-bold-real", "artifact": "none", "severity": "none", "label": "Good",
             "metrics": {"x": 1.0}},
            {"source": "b0-bold-real", "artifact": "blur", "severity": "mild", "label": "Good",
             "metrics": {"x": 2.0}}]
    rows = real_heads.as_training_rows(recs)
    assert rows["artifact_labels"] == ["none", "blur"] and rows["clean"] == [True, False]
    assert rows["labels"] == ["Good", "Good"] and rows["sources"] == ["b0-bold-real"] * 2


def test_real_head_runs_refuses_a_rendered_or_other_family_source():
    with pytest.raises(TrainingError, match="not a real anat source"):
        real_heads.real_head_runs("anat", {"sources": ["tpm-T1w"], "n_clean": 1,
                                           "per_artifact_severity": 1}, None)
    with pytest.raises(TrainingError, match="not a real anat source"):
        real_heads.real_head_runs("anat", {"sources": ["b0-bold-real"], "n_clean": 1,
                                           "per_artifact_severity": 1}, None)


def test_fit_family_weighs_real_runs_and_holds_each_anatomy_out(monkeypatch):
    recipe, examples, records, real = _synthetic_family(monkeypatch, offset=0.0)
    calls = []
    original = fit.fit_model

    def spy(*args, **kwargs):
        calls.append((kwargs["groups"], kwargs["sample_weight"]))
        return original(*args, **kwargs)

    monkeypatch.setattr(fit, "fit_model", spy)
    doc = fit.fit_family("anat", examples, records, recipe, real=real)
    groups, weight = calls[0]  # the shipped fit: every row
    w = np.asarray(weight)
    is_real = np.array([g.endswith("-real") for g in groups])
    assert is_real.sum() == len(real)
    assert w[is_real].sum() / w.sum() == pytest.approx(0.25)
    held = {}
    for g, _ in calls[1:]:  # one refit per real source, without that source's anatomy
        missing = {real_heads.anatomy_of(s) for s in groups} - {real_heads.anatomy_of(s)
                                                                 for s in g}
        assert len(missing) == 1
        held[missing.pop()] = g
    assert set(held) == {"robex", "mni"}
    assert not any(s in ("rendered-robex", "robex-T1w-real") for s in held["robex"])
    assert not any(s in ("rendered-mni", "rendered-mnihard", "mni152-T1w-real")
                   for s in held["mni"])
    ev = doc["evaluation"]["real_held_out"]
    assert set(ev["by_source"]) == {"robex-T1w-real", "mni152-T1w-real"}
    assert ev["pooled"]["n"] == len(real) and ev["pooled"]["accuracy"] > 0.8
    assert sum(ev["pooled"]["clean_graded"].values()) == 24
    assert doc["recipe"]["calibration"].startswith("out-of-source")
    assert doc["recipe"]["n_calibration"] == len(records) - sum(
        ex.split != "train" for ex in examples) + len(real)


def test_real_runs_teach_a_baseline_the_renderings_never_show(monkeypatch):
    """Real clean heads sit at a = 1.2 (a rendering there is Medium or worse): without them
    the held-out real clean runs are graded down; with them (the other real head in training)
    they are Good."""
    recipe, examples, records, real = _synthetic_family(monkeypatch, offset=1.2)
    doc = fit.fit_family("anat", examples, records, recipe, real=real)
    clean = doc["evaluation"]["real_held_out"]["pooled"]["clean_graded"]
    assert clean["Good"] >= 20
    without = fit.fit_family("anat", examples, records, recipe)
    from mmrqa_bids.grading.classifier import MetricModel, metric_matrix
    p = MetricModel.from_dict(without).grade.predict_proba(
        metric_matrix([r["metrics"] for r in real if r["severity"] == "none"],
                      without["features"]))
    assert (p.argmax(axis=1) != 0).mean() > 0.9


def test_source_out_temperature_is_looser_than_in_source_when_a_source_is_shifted():
    """Three sources; the third one's runs sit shifted: a model that has seen all three is sure
    of them, one that left the shifted source out is not, so the source-out temperature is
    larger than one fitted on random rows of all sources."""
    rng = np.random.default_rng(1)
    n = 300
    groups = np.repeat(["s1", "s2", "s3"], n)
    y = rng.integers(0, 2, 3 * n)
    x = (y + 0.35 * rng.standard_normal(3 * n))[:, None]
    x[groups == "s3"] += 0.6
    params = {**DEFAULT_RECIPE["model"], "max_iter": 20}
    t_out = source_out_temperature(x, y, 2, params, 0, groups)
    calib = rng.random(3 * n) < 0.2
    t_in = fit_ensemble(x, [str(v) for v in y], ("0", "1"), params, 0, calib)["temperature"]
    assert 0.05 <= t_in < t_out <= 20.0
    with pytest.raises(TrainingError, match="two sources"):
        source_out_temperature(x[:n], y[:n], 2, params, 0, groups[:n])
    with pytest.raises(TrainingError, match="exclusive"):
        fit_ensemble(x, [str(v) for v in y], ("0", "1"), params, 0, calib, groups=groups)
