"""``train`` without a base model trains the metric classifier on the same examples and split
(rated runs plus simulated copies), and the result grades through ``--grader classifier``."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("torchio")


@pytest.mark.slow
def test_train_level_fits_the_metric_classifier(tmp_path):
    from mmrqa_bids.cli.run import main
    from mmrqa_bids.grading.base import GradeRequest
    from mmrqa_bids.grading.classifier import ClassifierGrader
    from mmrqa_bids.ratings import ratings_tsv
    from mmrqa_bids.settings import Grading
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

    root = tmp_path / "bids"
    subjects = [f"{i:02d}" for i in range(1, 8)]
    build_dataset(root, [RunPlan(s, "T1w") for s in subjects], voxel_size=3.0)
    tsv = tmp_path / "ratings.tsv"
    tsv.write_text(ratings_tsv({"participant_id": s, "rating": "1"} for s in subjects))
    out = tmp_path / "out"
    code = main([str(root), str(out), "train", "--labels", str(tsv), "--simulate", "8",
                 "--holdout-fraction", "0.15", "-w", str(tmp_path / "work"), "--nprocs", "2"])
    assert code == 0
    model = out / "models" / "mmrqa-metric-classifier"
    evaluation = json.loads((model / "evaluation.json").read_text())
    assert evaluation["anat"]["trained"] and evaluation["anat"]["n_train"] == 6 * 9
    assert evaluation["anat"]["held_out"]["n"] == 1
    assert not evaluation["bold"]["trained"]  # no rated bold run: the shipped model is kept
    manifest = json.loads((model / "dataset" / "manifest.json").read_text())
    assert sum(e["origin"] == "simulated" for e in manifest["examples"]) == 6 * 8
    grader = ClassifierGrader.from_settings(Grading(model=str(model)))
    example = manifest["examples"][0]
    grade = grader.grade([GradeRequest(bids_name=example["example_id"], suffix="T1w",
                                       metrics=example["metrics"])])[0]
    assert grade.label in ("Good", "Medium", "Bad")
    assert evaluation["anat"]["model_id"] in grader.provenance()["model_id"]
