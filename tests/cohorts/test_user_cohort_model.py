"""Dataset grades read by a user's model folder (``train --labels`` writes its cohort models
beside the metric classifier): through the real group level, with ``--model`` or from the
runs' provenance, and the fallbacks (no cohort file, mixed folders, a folder that is gone).

The model folder's anat cohort model is the shipped one with +50 on the raw score of its
``at_least_medium`` head: P(grade >= Medium) is ~1 for every run, so every dataset grade it
gives is Medium or Bad, where the shipped model grades the clean runs of the study Good."""
from __future__ import annotations

import csv
import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmrqa_bids.cohorts.dataset import SHIPPED, cohort_models, model_folder_of_runs
from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE, MODEL_FILES, load_cohort_model
from mmrqa_bids.resources import data_dir
from mmrqa_bids.testing.cli import run_cli
from test_dataset_grades import _doc, _metrics, _read, _write_outputs

OFFSET_ID = "test-offset-anat"


def offset_model_folder(folder: Path, offset: float = 50.0) -> Path:
    """A model folder whose cohort_anat.json.gz is the shipped model with ``offset`` added to
    the at_least_medium head's baseline (and its own model id); no bold cohort model."""
    doc = json.loads(gzip.decompress((data_dir() / MODEL_FILES["anat"]).read_bytes()))
    head = doc["grade"]["at_least_medium"]
    head["baseline"] = [b + offset for b in head["baseline"]]
    doc["model_id"] = OFFSET_ID
    folder.mkdir(parents=True, exist_ok=True)
    (folder / MODEL_FILES["anat"]).write_bytes(gzip.compress(json.dumps(doc).encode()))
    return folder


def _study(out: Path, model: str | None = None, n: int = 12) -> list[dict]:
    """``n`` T1w runs of one protocol, all clean (the shipped cohort model grades them Good),
    graded at the participant level with ``--model model``."""
    rng = np.random.default_rng(1)
    docs = [_doc(f"sub-{i:02d}_T1w", _metrics(rng)) for i in range(n)]
    for doc in docs:
        doc["provenance"]["settings"] = {"grading": {"grader": "classifier", "model": model}}
    _write_outputs(out, docs)
    return docs


def _grades(out: Path, n: int = 12) -> list[dict]:
    return [_read(out, f"sub-{i:02d}_T1w")["grade"] for i in range(n)]


def test_offset_model_grades_every_run_at_least_medium(tmp_path):
    model = cohort_models(offset_model_folder(tmp_path / "m")).model("anat")
    assert model.model_id == OFFSET_ID
    assert model.model_id != load_cohort_model("anat").model_id


def test_group_model_flag_changes_the_dataset_grades(tmp_path):
    """(a) the real CLI: the shipped model grades the clean study Good, ``group --model M``
    grades it by M's cohort model (every run >= Medium), says so and records it."""
    out, bids = tmp_path / "out", tmp_path / "bids"  # the group level needs no BIDS folder
    _study(out)
    shipped = run_cli(bids, out, "group", "--no-reports")
    assert shipped.returncode == 0, shipped.stdout + shipped.stderr
    before = _grades(out)
    assert {g["basis"] for g in before} == {"dataset"}
    assert sum(g["label"] == "Good" for g in before) >= 10
    assert {g["model_id"] for g in before} == {load_cohort_model("anat").model_id}
    assert {g["cohort"]["model"] for g in before} == {SHIPPED}
    assert "dataset grades by the shipped cohort models: " in shipped.stdout

    folder = offset_model_folder(tmp_path / "model")
    user = run_cli(bids, out, "group", "--no-reports", "--model", folder)
    assert user.returncode == 0, user.stdout + user.stderr
    after = _grades(out)
    assert {g["label"] for g in after} <= {"Medium", "Bad"}
    assert {g["model_id"] for g in after} == {OFFSET_ID}
    assert {g["cohort"]["model"] for g in after} == {str(folder / MODEL_FILES["anat"])}
    assert f"dataset grades of anat cohorts by cohort model {OFFSET_ID} from {folder}" \
        in user.stdout
    # the bold family falls back to the shipped model, with a line saying so
    assert f"WARNING {folder} has no cohort_bold.json.gz" in user.stdout + user.stderr
    rows = list(csv.DictReader((out / "group_T1w.tsv").open(), delimiter="\t"))
    assert {r["grade"] for r in rows} <= {"Medium", "Bad"}
    assert {r["cohort_model"] for r in rows} == {OFFSET_ID}


def test_group_reads_the_model_folder_from_the_runs_provenance(tmp_path):
    """``participant --model M`` then ``group`` without flags: M's cohort models."""
    folder = offset_model_folder(tmp_path / "model")
    out = tmp_path / "out"
    _study(out, model=str(folder))
    res = run_cli(tmp_path / "bids", out, "group", "--no-reports")
    assert res.returncode == 0, res.stdout + res.stderr
    assert {g["model_id"] for g in _grades(out)} == {OFFSET_ID}
    assert {g["label"] for g in _grades(out)} <= {"Medium", "Bad"}
    assert f"cohort models from {folder}, the --model the runs were graded with" in res.stdout


def test_model_folder_without_cohort_files_keeps_the_shipped_model(tmp_path):
    """(c) a classifier-only folder (an older train): shipped cohort models, said on a line."""
    folder = tmp_path / "classifier_only"
    folder.mkdir()
    out = tmp_path / "out"
    _study(out)
    res = run_cli(tmp_path / "bids", out, "group", "--no-reports", "--model", folder)
    assert res.returncode == 0, res.stdout + res.stderr
    shipped_id = load_cohort_model("anat").model_id
    assert {g["model_id"] for g in _grades(out)} == {shipped_id}
    assert {g["cohort"]["model"] for g in _grades(out)} == {SHIPPED}
    assert (f"WARNING {folder} has no cohort_anat.json.gz (train --labels writes it): anat "
            f"cohorts are graded by the shipped cohort model {shipped_id}") \
        in res.stdout + res.stderr


def test_runs_graded_with_different_folders_use_the_shipped_model(tmp_path):
    folder = offset_model_folder(tmp_path / "model")
    out = tmp_path / "out"
    docs = _study(out, model=str(folder))
    docs[0]["provenance"]["settings"]["grading"]["model"] = str(tmp_path / "other")
    _write_outputs(out, docs[:1])
    res = run_cli(tmp_path / "bids", out, "group", "--no-reports")
    assert res.returncode == 0, res.stdout + res.stderr
    warning = [line for line in (res.stdout + res.stderr).splitlines()
               if "graded with different --model folders" in line]
    assert len(warning) == 1
    assert f"{folder}: 11 run(s), {tmp_path / 'other'}: 1 run(s)" in warning[0]
    assert {g["model_id"] for g in _grades(out)} == {load_cohort_model("anat").model_id}
    # the flag decides then
    res = run_cli(tmp_path / "bids", out, "group", "--no-reports", "--model", folder)
    assert res.returncode == 0 and {g["model_id"] for g in _grades(out)} == {OFFSET_ID}
    assert "different --model folders" not in res.stdout + res.stderr


def test_a_recorded_folder_that_is_gone_keeps_the_shipped_model(tmp_path):
    folder = offset_model_folder(tmp_path / "model")
    out = tmp_path / "out"
    _study(out, model=str(folder))
    shutil.rmtree(folder)
    res = run_cli(tmp_path / "bids", out, "group", "--no-reports")
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"graded with --model {folder}, which is not a folder here" in res.stdout + res.stderr
    assert {g["model_id"] for g in _grades(out)} == {load_cohort_model("anat").model_id}


def test_group_model_flag_errors_are_one_line(tmp_path):
    out = tmp_path / "out"
    _study(out)
    res = run_cli(tmp_path / "bids", out, "group", "--model", tmp_path / "nowhere")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"mmrqa: error: {tmp_path / 'nowhere'}: --model is not a folder (the dataset grade "
        "reads cohort_anat.json.gz and cohort_bold.json.gz from a model folder that train "
        "--labels wrote)"]
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / MODEL_FILES["anat"]).write_bytes(b"not gzip")
    res = run_cli(tmp_path / "bids", out, "group", "--model", broken)
    assert res.returncode == 2 and len(res.stderr.strip().splitlines()) == 1
    assert f"{broken / MODEL_FILES['anat']}: not a readable cohort model" in res.stderr


@pytest.mark.parametrize("grading, expected", [
    ({"grader": "classifier", "model": "/m"}, "/m"),
    ({"grader": "llava", "model": "/llava"}, None),  # a multimodal model, not metric models
    ({"grader": "classifier"}, None),
])
def test_model_folder_of_runs(grading, expected):
    docs = [{"provenance": {"settings": {"grading": grading}}}] * 3
    assert model_folder_of_runs(docs) == (expected, None)
    assert model_folder_of_runs([]) == (None, None)


def test_cohort_summaries_name_the_cohort_model(tmp_path):
    """The group report's cohort records say which cohort model graded each cohort."""
    from mmrqa_bids.cohorts.dataset import cohort_summaries, grade_cohorts
    from mmrqa_bids.cohorts.grouping import assign_cohorts, parse_cohort_by

    docs = _study(tmp_path / "out")
    cohorts = assign_cohorts(docs, parse_cohort_by("protocol"))
    folder = offset_model_folder(tmp_path / "model")
    [user] = cohort_summaries(grade_cohorts(cohorts, cohort_models(folder)))
    assert user["model_id"] == OFFSET_ID and user["model"] == str(folder / MODEL_FILES["anat"])
    [shipped] = cohort_summaries(grade_cohorts(cohorts))
    assert shipped["model_id"] == load_cohort_model("anat").model_id
    assert shipped["model"] == SHIPPED
    small_docs = docs[:MIN_COHORT_SIZE - 1]
    [small] = cohort_summaries(grade_cohorts(assign_cohorts(small_docs,
                                                            parse_cohort_by("protocol"))))
    assert small["model_id"] is None and small["model"] is None


def test_a_multimodal_graders_model_is_not_read_as_a_cohort_model_folder(tmp_path):
    """``group --grader llava --model HUB_ID`` (the participant level's flags repeated):
    the hub id is a multimodal model, not a folder of metric models; the shipped cohort
    models grade, as before the group level read ``--model``."""
    out = tmp_path / "out"
    _study(out)
    res = run_cli(tmp_path / "bids", out, "group", "--no-reports", "--grader", "llava",
                  "--model", "llava-hf/llava-onevision-qwen2-0.5b-ov-hf")
    assert res.returncode == 0, res.stdout + res.stderr
    assert {g["model_id"] for g in _grades(out)} == {load_cohort_model("anat").model_id}
    assert "dataset grades by the shipped cohort models: " in res.stdout
