"""Fitting the metric classifier: scale-free features, the recipe's features, the grade
models and their monotonic constraints (mmrqa_bids/train/metric_model/fit.py, trees.py)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import ARTIFACTS  # noqa: E402
from mmrqa_bids.grading.base import LABELS  # noqa: E402
from mmrqa_bids.grading.classifier import load_model_file  # noqa: E402
from mmrqa_bids.train.metric_model import export, fit, rendering  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE, Example  # noqa: E402
from mmrqa_bids.train.metric_model.sources import TrainingError  # noqa: E402
from mmrqa_bids.train.metric_model.trees import monotonic_signs  # noqa: E402


def test_scale_free_selection_drops_intensity_metrics():
    free = fit.scale_free_metrics("anat")
    assert free  # some metric survives
    from mmrqa_bids.metrics import measure
    ex = Example("anat", "probe", "tpm", "T1w", 4.0, "none", "none", 3)
    data = rendering.render_example(ex)
    a = measure(data, "T1w", (4.0,) * 3).metrics
    b = measure(data * 37.3, "T1w", (4.0,) * 3).metrics
    for name in a:
        # Scale-dependent metrics change by orders of magnitude; segmentation-based ones
        # wobble by < 0.3% (numerics), well inside the 1% tolerance.
        rel = abs(b[name] - a[name]) / max(abs(a[name]), 1e-9)
        if rel > 0.1:
            assert name not in free, name
        elif rel < 0.003 and not name.startswith("mrqy_"):
            # (MRQy's foreground depends on the gain, by how much depends on the image: a
            # mrqy_* metric steady on this probe may move on the other one.)
            assert name in free, name


def test_recipe_features_add_the_recipe_extras_and_are_the_default_of_fit_model():
    from mmrqa_bids.metrics import FUNC_METRICS

    rng = np.random.default_rng(0)
    rows = [{k: float(rng.random()) for k in FUNC_METRICS} for _ in range(30)]
    feats = fit.recipe_features("bold", rows)
    assert set(DEFAULT_RECIPE["bold"]["extra_features"]) <= set(feats)
    assert {"tsnr", "fd_mean"} <= set(feats) and "summary_fg_mean" not in feats
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["bold"]["exclude_features"] = ["fov_edge"]
    assert "fov_edge" not in fit.recipe_features("bold", rows, recipe)


def _ordinal_rows(n: int = 1200, seed: int = 0):
    """Synthetic runs: "blur" lowers `sharp` and raises `snr`, "noise" lowers `snr`;
    `drift` rises with every artifact (the others move nothing else); the grade follows
    the artifact's strength."""
    rng = np.random.default_rng(seed)
    art = rng.choice(("none",) + ARTIFACTS, size=n)
    strength = np.where(art == "none", 0.0, rng.random(n))
    grade = np.where(strength < 0.33, "Good", np.where(strength < 0.66, "Medium", "Bad"))
    sharp = 1 - np.where(art == "blur", strength, 0) + 0.05 * rng.normal(size=n)
    snr = 10 + np.where(art == "blur", 5 * strength, 0) - np.where(art == "noise", 8 * strength, 0)
    drift = strength + 0.05 * rng.normal(size=n)
    rows = [{"sharp": a, "snr": b, "drift": c} for a, b, c in zip(sharp, snr, drift)]
    return rows, grade.tolist(), art.tolist()


def test_monotonic_signs_constrain_only_features_every_artifact_moves_one_way():
    rows, grade, art = _ordinal_rows()
    feats = ["sharp", "snr", "drift"]
    x = np.array([[r[f] for f in feats] for r in rows])
    # blur raises snr and noise lowers it: free; sharp only falls (blur); drift always rises
    assert monotonic_signs(x, grade, art, feats) == {"sharp": -1, "drift": 1}


def test_ordinal_grade_model_is_monotonic_calibrated_and_round_trips(tmp_path):
    from mmrqa_bids.grading.classifier import OrdinalEnsemble

    rows, grade, art = _ordinal_rows()
    feats = ["sharp", "snr", "drift"]
    params = {"grade_model": "ordinal", "monotonic": "training", "max_iter": 30}
    doc = fit.fit_model("bold", rows, grade, art, [a == "none" for a in art], params=params,
                        features=feats)
    assert doc["grade"]["kind"] == "ordinal"
    assert doc["grade"]["monotonic"] == {"sharp": -1, "drift": 1}
    model = load_model_file(export.save_model(doc, tmp_path))
    assert isinstance(model.grade, OrdinalEnsemble)
    x = np.array([[r[f] for f in feats] for r in rows])
    p = model.grade.predict_proba(x)
    assert p.shape == (len(rows), 3) and np.all(p >= 0)
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert np.mean(np.array(LABELS)[p.argmax(axis=1)] == np.array(grade)) > 0.8
    # P(>= Medium) never falls as drift rises, nor as sharp falls, whatever the other values
    grid = np.linspace(x.min(axis=0), x.max(axis=0), 25)
    base = np.tile(np.median(x, axis=0), (25, 1))
    for j, sign in ((2, 1), (0, -1)):
        probe = base.copy()
        probe[:, j] = grid[:, j]
        a = model.grade.at_least_medium.predict_proba(probe)[:, 1]
        assert np.all(sign * np.diff(a) >= -1e-12)
    for temp in (model.grade.at_least_medium.temperature, model.grade.bad.temperature):
        assert 0.05 < temp < 20


def test_unknown_grade_model_options_are_clear_errors():
    rows, grade, art = _ordinal_rows(100)
    for params in ({"grade_model": "ranked"}, {"grade_model": "ordinal", "monotonic": "yes"},
                   {"grade_model": "ordinal", "good_weight": 0.5}):
        with pytest.raises(TrainingError, match="grade_model|monotonic|good_weight"):
            fit.fit_model("bold", rows, grade, art, [a == "none" for a in art], params=params,
                          features=["sharp", "snr", "drift"])


def test_good_weight_shifts_the_prior_of_good_and_round_trips(tmp_path):
    rows, grade, art = _ordinal_rows()
    feats = ["sharp", "snr", "drift"]
    fitted = {g: fit.fit_model("bold", rows, grade, art, [a == "none" for a in art],
                               features=feats, params={"max_iter": 30, "good_weight": g})
              for g in (1.0, 0.5)}
    assert "class_weights" not in fitted[1.0]["grade"]
    assert fitted[0.5]["grade"]["class_weights"] == [0.5, 1.0, 1.0]
    x = np.array([[r[f] for f in feats] for r in rows])
    p1 = load_model_file(export.save_model(fitted[1.0], tmp_path / "a")).grade.predict_proba(x)
    p5 = load_model_file(export.save_model(fitted[0.5], tmp_path / "b")).grade.predict_proba(x)
    expected = p1 * [0.5, 1.0, 1.0]
    np.testing.assert_allclose(p5, expected / expected.sum(axis=1, keepdims=True))
    assert (p5.argmax(axis=1) == 0).sum() < (p1.argmax(axis=1) == 0).sum()
