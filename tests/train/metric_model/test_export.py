"""The metric classifier's whole path on synthetic metric rows: fit, export, save, reload
through the grader (mmrqa_bids/train/metric_model/export.py)."""
from __future__ import annotations

import copy

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.artifacts import ARTIFACTS  # noqa: E402
from mmrqa_bids.grading.base import GradeRequest  # noqa: E402
from mmrqa_bids.grading.classifier import ClassifierGrader, load_model_file  # noqa: E402
from mmrqa_bids.train.metric_model import export, fit  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE, plan_examples  # noqa: E402


def test_fit_save_reload_on_synthetic_metrics(tmp_path, monkeypatch):
    """The fit/export/save path on metric rows with a known structure (no simulation)."""
    recipe = copy.deepcopy(DEFAULT_RECIPE)
    recipe["anat"]["draws"] = {"train": 3, "seen": 1, "unseen": 1}
    examples = plan_examples(recipe, "anat")
    rng = np.random.default_rng(0)
    level = {"none": 0.0, "mild": 0.3, "moderate": 1.0, "severe": 2.0}
    rows = []
    for ex in examples:
        k = ARTIFACTS.index(ex.artifact) if ex.artifact in ARTIFACTS else 0
        s = level[ex.severity]
        rows.append({"a": 10 ** (1.5 - 0.4 * s) * (1 + 0.05 * rng.standard_normal()),
                     "b": s * (k % 3) + 0.05 * rng.standard_normal(),
                     "c": s * (k // 3) + 0.05 * rng.standard_normal(),
                     "mean": 1000 * rng.random()})
    monkeypatch.setattr(fit, "scale_free_metrics", lambda family: {"a", "b", "c"})
    records = [{"metrics": r, "label": ex.label} for r, ex in zip(rows, examples)]
    doc = fit.fit_family("anat", examples, records, recipe)
    assert "measured degradation" in doc["recipe"]["label_map"]
    assert doc["features"] == ["a", "b", "c"]  # "mean" is not scale-free
    excluding = copy.deepcopy(recipe)
    excluding["anat"]["exclude_features"] = ["c"]
    assert fit.fit_family("anat", examples, records, excluding)["features"] == ["a", "b"]
    assert doc["evaluation"]["unseen"]["accuracy"] > 0.85
    path = export.save_model(doc, tmp_path)
    assert path.read_bytes() == export.save_model(doc, tmp_path).read_bytes()  # deterministic
    model = load_model_file(path)
    grader = ClassifierGrader(models={"anat": model})
    bad = grader.grade([GradeRequest("sub-01_T1w", "T1w", {"a": 10 ** 0.7, "b": 4.0,
                                                            "c": 0.0})])[0]
    assert bad.label == "Bad"
    good = grader.grade([GradeRequest("sub-01_T1w", "T1w", {"a": 10 ** 1.5, "b": 0.0,
                                                             "c": 0.0})])[0]
    assert good.label == "Good"
    assert 1.0 / 20 <= doc["grade"]["temperature"] <= 20.0
    # Inside every training run's range: no caution. Far outside it: named, in the narrative.
    assert good.outside_training == [] and "Caution" not in good.narrative["classification"]
    assert set(doc["support"]) == {"a", "b", "c"}
    odd = grader.grade([GradeRequest("sub-01_T1w", "T1w", {"a": 10 ** 1.5, "b": 0.0,
                                                            "c": 40.0})])[0]
    assert odd.outside_training == ["c"]
    text = odd.narrative["classification"]
    from mmrqa_bids.grading.narrative import format_value
    span = doc["support"]["c"]
    assert (f"Caution: c = 40 lies outside every run the model was trained on (c: "
            f"{format_value(span['low'])} to {format_value(span['high'])})") in text
    assert "{" not in text and "}" not in text
    assert odd.to_dict()["outside_training"] == ["c"]
