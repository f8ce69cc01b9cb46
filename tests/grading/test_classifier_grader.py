"""The shipped metric classifier: exact tree export, determinism, invariance, provenance."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nb
import numpy as np
import pytest

from mmrqa_bids.grading import GradeRequest, make_grader
from mmrqa_bids.grading.base import LABELS, NARRATIVE_SECTIONS, GraderError
from mmrqa_bids.grading.classifier import (MODEL_FILES, ClassifierGrader, TreeEnsemble,
                                           load_model_file, model_paths)
from mmrqa_bids.settings import Grading

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def grader() -> ClassifierGrader:
    return make_grader(Grading(grader="classifier"))


def test_exported_trees_reproduce_scikit_learn():
    from sklearn.ensemble import HistGradientBoostingClassifier

    from mmrqa_bids.train.metric_model.trees import export_hgb

    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    y = (x[:, 0] + 0.5 * x[:, 1] > 0).astype(int) + (x[:, 2] > 1).astype(int)
    x[::17, 3] = np.nan  # missing values follow the exported branch direction
    for classes in (("a", "b", "c"), ("a", "b")):
        yy = np.minimum(y, len(classes) - 1)
        hgb = HistGradientBoostingClassifier(max_iter=10, max_leaf_nodes=8,
                                             random_state=0).fit(x, yy)
        ens = TreeEnsemble.from_dict(json.loads(json.dumps(export_hgb(hgb, classes))))
        np.testing.assert_allclose(ens.predict_proba(x), hgb.predict_proba(x), atol=1e-10)


def test_shipped_models_are_small_and_load_fast():
    for family, name in MODEL_FILES.items():
        path = REPO / "mmrqa_bids" / "data" / name
        assert path.stat().st_size < 1_000_000
        t0 = time.perf_counter()
        model = load_model_file(path)
        elapsed = time.perf_counter() - t0
        assert model.family == family and model.model_id
        assert elapsed < 0.5, f"{name} took {elapsed:.3f} s to load"
        # The recipe and the held-out evaluation travel with the model.
        assert model.recipe["recipe"][family]["unseen"]
        assert {"seen", "unseen"} <= model.evaluation.keys()


def test_model_card_describes_the_shipped_models():
    """The card names each shipped model and quotes its stored unseen figures."""
    card = (REPO / "mmrqa_bids" / "data" / "classifier_model_card.md").read_text()
    for name in MODEL_FILES.values():
        model = load_model_file(REPO / "mmrqa_bids" / "data" / name)
        assert f"`{model.model_id}`" in card, f"the card does not name {model.model_id}"
        unseen = model.evaluation["unseen"]
        for key in ("accuracy", "macro_f1"):
            assert f"**{unseen[key]:.3f}**" in card, (model.family, key, unseen[key])


def test_grading_needs_no_torch_nor_sklearn():
    code = ("import sys; from mmrqa_bids.grading import make_grader, GradeRequest; "
            "from mmrqa_bids.settings import Grading; g = make_grader(Grading()); "
            "m = g.models['anat']; "
            "g.grade([GradeRequest('sub-01_T1w', 'T1w', {f: 1.0 for f in m.features})]); "
            "print(sorted(k for k in ('torch', 'torchio', 'sklearn') if k in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin",
                               "NIPYPE_NO_ET": "1"}, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _volume(seed: int = 0, artifact: str = "none", severity: str = "none") -> np.ndarray:
    pytest.importorskip("torchio")
    from mmrqa_bids.artifacts import simulate
    from mmrqa_bids.train.metric_model.sources import load_tpm_head

    clean = load_tpm_head(3.0).render("T1w")
    clean = clean / clean.max()
    return simulate(clean, artifact, severity, seed=seed, voxel_size=(3.0,) * 3).data


def _grade_file(grader, path: Path, suffix: str = "T1w"):
    from mmrqa_bids.io import load_image
    from mmrqa_bids.metrics import compute

    img, _ = load_image(path, suffix)
    metrics = compute(img, suffix)
    return grader.grade([GradeRequest(path.name.split(".")[0], suffix, metrics)])[0]


@pytest.mark.parametrize("artifact,severity", [("none", "none"), ("noise", "severe")])
def test_scale_dtype_orientation_do_not_change_the_grade(grader, tmp_path, artifact, severity):
    data = _volume(1, artifact, severity)
    affine = np.diag([3.0, 3.0, 3.0, 1.0])
    variants = {
        "float": nb.Nifti1Image(data.astype(np.float32), affine),
        "int16_gain": nb.Nifti1Image(np.round(data * 3000).astype(np.int16), affine),
        "uint8_like": nb.Nifti1Image((data * 40).astype(np.float64), affine),
        # Stored left-right and anterior-posterior flipped (LPS-like), same anatomy.
        "flipped": nb.Nifti1Image(data[::-1, ::-1].astype(np.float32),
                                  np.diag([-3.0, -3.0, 3.0, 1.0])),
        # Stored sagittal-first (axes permuted), same anatomy.
        "permuted": nb.Nifti1Image(np.ascontiguousarray(data.transpose(2, 0, 1)),
                                   np.array([[0, 3.0, 0, 0], [0, 0, 3.0, 0], [3.0, 0, 0, 0],
                                             [0, 0, 0, 1]])),
    }
    grades = {}
    for name, img in variants.items():
        path = tmp_path / f"sub-{name.replace('_', '')}_T1w.nii.gz"
        nb.save(img, str(path))
        grades[name] = _grade_file(grader, path)
    ref = grades["float"]
    if severity == "severe":
        assert ref.label == "Bad" and ref.artifacts
    for name, g in grades.items():
        assert g.label == ref.label, name
        for label in LABELS:
            assert g.probabilities[label] == pytest.approx(ref.probabilities[label], abs=0.02)


def test_grader_is_deterministic(grader):
    m = grader.models["anat"]
    metrics = {f: (m.reference[f]["median"] * 1.7) for f in m.features}
    reqs = [GradeRequest("sub-01_T1w", "T1w", metrics), GradeRequest("sub-02_T2w", "T2w", metrics)]
    a = [g.to_dict() for g in grader.grade(reqs)]
    b = [g.to_dict() for g in make_grader(Grading()).grade(reqs)]
    assert a == b
    assert a[0]["probabilities"] == a[1]["probabilities"]  # suffix-independent within anat


def test_grade_contents(grader):
    for family, suffix in (("anat", "T1w"), ("bold", "bold")):
        m = grader.models[family]
        for scale in (1.0, 0.2):
            metrics = {f: m.reference[f]["median"] * (scale if m.reference[f]["log"] else 1)
                       for f in m.features}
            g = grader.grade([GradeRequest(f"sub-01_{suffix}", suffix, metrics)])[0]
            assert g.label in LABELS
            assert sum(g.probabilities.values()) == pytest.approx(1.0)
            assert g.confidence == pytest.approx(max(g.probabilities.values()))
            assert set(g.narrative) == set(NARRATIVE_SECTIONS)
            assert all(0 <= a["likelihood"] <= 1 for a in g.artifacts)
            if g.label != "Good":
                assert g.artifacts


def test_provenance_records_model_and_recipe(grader):
    prov = grader.provenance()
    assert prov["backend"] == "classifier"
    for family in ("anat", "bold"):
        entry = prov["models"][family]
        assert entry["model_id"] in prov["model_id"]
        assert len(entry["sha256"]) == 64 and entry["features"] and entry["recipe"]
    json.dumps(prov)


def test_missing_metric_and_bad_model_are_clear_errors(grader, tmp_path):
    with pytest.raises(GraderError, match="sub-01_T1w: .*needs metrics"):
        grader.grade([GradeRequest("sub-01_T1w", "T1w", {"cv": 1.0})])
    bad = tmp_path / MODEL_FILES["anat"]
    bad.write_text("{not json")
    (tmp_path / MODEL_FILES["bold"]).write_text(json.dumps({"format": "other"}))
    with pytest.raises(GraderError, match="cannot read the metric classifier"):
        load_model_file(bad)
    with pytest.raises(GraderError, match="not an mmrqa metric classifier"):
        load_model_file(tmp_path / MODEL_FILES["bold"])
    with pytest.raises(GraderError, match="must be a folder"):
        model_paths(str(tmp_path / "nowhere"))


def test_a_metric_that_could_not_be_computed_takes_the_missing_branch(grader):
    m = grader.models["anat"]
    metrics = {f: m.reference[f]["median"] for f in m.features}
    metrics[m.features[0]] = float("nan")
    g = grader.grade([GradeRequest("sub-01_T1w", "T1w", metrics)])[0]
    assert g.label in LABELS and sum(g.probabilities.values()) == pytest.approx(1.0)
    assert m.features[0] not in g.narrative["classification"]  # no "nan" quoted as a driver
