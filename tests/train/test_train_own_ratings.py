"""Issue 23's two failures, end to end on a study-like dataset (30 T1w participants graded
Good/Medium/Bad, 4 bold ones) with a ratings TSV in the documented format and no
``artifact`` column:

1. ``train --labels ratings.tsv --holdout-fraction 0.5`` used to exit 2 ("every class needs
   training examples; got ['none']"): the grades alone must fit the anat grade model, keep
   the shipped artifact model (recorded), and keep the shipped bold model (too few bold
   ratings) with one warning line; exit 0 with a complete model folder.
2. With ``--simulate`` it used to exit 2 on the bold family (an artifact class short) and
   leave the anat model only: it must exit 0 with the complete folder, and (same OUTPUT_DIR
   as a participant-level run) reuse that level's metrics and show progress per run.
"""
from __future__ import annotations

import filecmp
import json
from pathlib import Path

import pytest

pytest.importorskip("torchio")  # --simulate

MODEL = Path("models") / "mmrqa-metric-classifier"
FOLDER = ("settings.toml", "evaluation.json", "README.md", "classifier_anat.json.gz",
          "classifier_bold.json.gz", "cohort_anat.json.gz", "cohort_bold.json.gz",
          "dataset/manifest.json")


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> tuple[Path, Path]:
    from mmrqa_bids.testing.study import build_study, study_plans

    root = tmp_path_factory.mktemp("study") / "bids"
    tsv = build_study(root, study_plans({"Good": 10, "Medium": 10, "Bad": 10}, n_bold=4))
    assert tsv.read_text().splitlines()[0].split("\t") == [
        "participant_id", "session_id", "run_id", "suffix", "rating"]  # no artifact column
    return root, tsv


def _train(root: Path, out: Path, tsv: Path, work: Path, *extra: str) -> int:
    from mmrqa_bids.cli.run import main
    return main([str(root), str(out), "train", "--labels", str(tsv), "--holdout-fraction",
                 "0.5", "-w", str(work), "--nprocs", "2", *extra])


def _check_folder(model: Path) -> dict:
    from mmrqa_bids.grading.classifier import ClassifierGrader, model_paths
    from mmrqa_bids.settings import Grading

    for name in FOLDER:
        assert (model / name).is_file(), name
    evaluation = json.loads((model / "evaluation.json").read_text())
    # the bold family kept the shipped model, byte for byte; anat was fitted on the ratings
    assert not evaluation["bold"]["trained"]
    assert filecmp.cmp(model / "classifier_bold.json.gz", model_paths(None)["bold"],
                       shallow=False)
    assert evaluation["anat"]["trained"]
    assert evaluation["anat"]["held_out"]["n"] == evaluation["anat"]["held_out_shipped"]["n"] > 0
    provenance = ClassifierGrader.from_settings(Grading(model=str(model))).provenance()
    anat = provenance["models"]["anat"]
    assert anat["model_id"] == evaluation["anat"]["model_id"]
    # the kept artifact model is recorded where the graded runs' provenance shows it
    assert anat["recipe"]["artifact_model"]["trained"] is False
    assert "shipped artifact model is kept" in anat["recipe"]["artifact_model"]["reason"]
    card = (model / "README.md").read_text()
    assert "**Shipped model kept**" in card and "Artifact model: **shipped**" in card
    # the dataset-relative model (#23 item 3): anat recalibrated on the T1w ratings (30 rated
    # runs, a cohort), bold's 4 rated runs too few for a cohort: the shipped one, byte for byte
    from mmrqa_bids.cohorts.relative import read_model_file
    from mmrqa_bids.resources import data_dir

    rel = evaluation["anat"]["relative"]
    assert rel["trained"] and rel["n_train"] == evaluation["anat"]["n_train"] - \
        evaluation["anat"]["n_simulated"]
    assert rel["held_out"]["n"] == rel["held_out_shipped"]["n"] > 0
    user = read_model_file(model / "cohort_anat.json.gz")
    assert user.model_id == rel["model_id"] and user.model_id.startswith("mmrqa-cohort-rated-")
    assert not evaluation["bold"]["relative"]["trained"]
    assert filecmp.cmp(model / "cohort_bold.json.gz", data_dir() / "cohort_bold.json.gz",
                       shallow=False)
    assert f"`{rel['model_id']}`" in card and "Dataset-relative model" in card
    return evaluation


@pytest.mark.slow
def test_grades_alone_train_and_a_short_family_keeps_the_shipped_model(study, tmp_path,
                                                                       capsys):
    root, tsv = study
    code = _train(root, tmp_path / "out", tsv, tmp_path / "work")
    printed = capsys.readouterr().out
    assert code == 0
    evaluation = _check_folder(tmp_path / "out" / MODEL)
    assert "no artifact label" in evaluation["anat"]["artifact_model"]["reason"]
    warnings = [line for line in printed.splitlines() if "WARNING" in line]
    assert len(warnings) == 1 and warnings[0].startswith("[mmrqa] WARNING bold:")
    short = evaluation["bold"]["short"]
    assert short and all(n > 0 for n in short.values())
    assert ", ".join(f"{n} more {grade}" for grade, n in short.items()) in warnings[0]


@pytest.mark.slow
def test_simulated_copies_reused_metrics_and_progress(study, tmp_path, capsys):
    from mmrqa_bids.cli.run import main

    root, tsv = study
    out = tmp_path / "out"
    # the participant level measured three of the rated runs into the same OUTPUT_DIR
    assert main([str(root), str(out), "participant", "--participant-label", "01", "02", "11",
                 "--no-reports", "-w", str(tmp_path / "work_participant")]) == 0
    capsys.readouterr()
    code = _train(root, out, tsv, tmp_path / "work", "--simulate", "1")
    printed = capsys.readouterr().out
    assert code == 0
    evaluation = _check_folder(out / MODEL)
    manifest = json.loads((out / MODEL / "dataset" / "manifest.json").read_text())
    reused = sorted(e["example_id"] for e in manifest["examples"] if e["reused"])
    assert reused == ["sub-01_T1w", "sub-02_T1w", "sub-11_T1w"]
    n_simulated = sum(e["origin"] == "simulated" for e in manifest["examples"])
    assert n_simulated > 0
    # one progress line per measured example, the reused ones not measured again
    progress = [line for line in printed.splitlines() if "] measured " in line]
    n = len(manifest["examples"]) - len(reused)
    assert len(progress) == n and f"measured {n}/{n} " in printed
    assert "3 rated run(s) reuse the participant level's metrics" in printed
    # too few simulated copies of each artifact type: the shipped artifact model is kept
    assert "fewer than" in evaluation["anat"]["artifact_model"]["reason"]
    assert evaluation["anat"]["n_simulated"] > 0
