"""The real command line: participant, then group, on a generated study whose T1w cohort is
large enough for dataset grades; the reference round trip through ``participant --reference``."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest

from cohort_study import DEGRADED, N_T1W, assert_group_rerun_changes_nothing, per_subject_study

from mmrqa_bids.cohorts.basis import PARTICIPANT_REASON
from mmrqa_bids.testing.cli import run_cli
from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

pytestmark = pytest.mark.slow


def _json(out: Path, name: str) -> dict:
    return json.loads((out / name.split("_")[0] / "anat" / f"{name}.json").read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("cohort_cli")
    # per-subject selection (as a SLURM array would): no join step, the absolute grade
    bids, out, part = per_subject_study(root, "out")
    assert "join step" not in part.stdout
    after_participant = _json(out, "sub-01_T1w")
    group = run_cli(bids, out, "group")
    assert group.returncode == 0, group.stdout + group.stderr
    return root, bids, out, after_participant, group

def test_participant_level_keeps_the_absolute_grade_and_says_so(study):
    """A --participant-label invocation (per-subject jobs) has seen part of the dataset only."""
    doc = study[3]
    assert doc["grade"]["basis"] == "model"
    assert doc["grade"]["basis_reason"] == PARTICIPANT_REASON
    assert doc["grade"]["model_grade"]["label"] == doc["grade"]["label"]
    assert doc["bids_meta"]["protocol"]["suffix"] == "T1w"
    assert doc["bids_meta"]["protocol"]["voxel_size_mm"] == [3.0, 3.0, 3.0]


def test_whole_dataset_participant_run_grades_against_cohorts_in_its_join_step(study):
    """No selection: the participant level's join step writes the dataset grades the group
    level would (run JSONs and individual reports, no group table); the group level after it
    then changes no run JSON."""
    root, bids, out, _, _ = study
    whole = root / "whole_out"
    part = run_cli(bids, whole, "participant", "--nprocs", "2", "-w", root / "work_whole")
    assert part.returncode == 0, part.stdout + part.stderr
    assert (f"join step: {N_T1W} of {N_T1W + 2} run(s) graded against their cohort in this "
            "dataset") in part.stdout
    docs = {f"sub-{i:02d}_T1w": _json(whole, f"sub-{i:02d}_T1w") for i in range(1, N_T1W + 1)}
    for doc in docs.values():
        assert doc["grade"]["basis"] == "dataset" and doc["grade"]["cohort"]["size"] == N_T1W
    every = [doc["grade"]["label"] for doc in docs.values()] + [
        _json(whole, f"sub-0{i}_T2w")["grade"]["label"] for i in (1, 2)]
    tally = ", ".join(f"{k}: {every.count(k)}" for k in sorted(set(every)))
    assert f"grades now {tally};" in part.stdout  # after the join, not the absolute tally
    assert docs[DEGRADED]["grade"]["label"] != "Good"
    assert _json(whole, "sub-01_T2w")["grade"]["basis"] == "model"  # cohort of 2: fallback
    assert 'data-basis="dataset"' in (whole / f"{DEGRADED}.html").read_text()
    assert not list(whole.glob("group_*"))  # the group table is the group level's
    # the same grades as participant-then-group
    for name, doc in docs.items():
        assert doc["grade"] == _json(out, name)["grade"]
    runs = sorted(whole.glob("sub-*/anat/*.json"))
    before = {p: p.read_bytes() for p in runs}
    group = run_cli(bids, whole, "group")
    assert group.returncode == 0, group.stdout + group.stderr
    assert [str(p.relative_to(whole)) for p in runs if p.read_bytes() != before[p]] == []


def test_group_level_writes_dataset_grades_everywhere(study):
    root, bids, out, _, group = study
    docs = {f"sub-{i:02d}_T1w": _json(out, f"sub-{i:02d}_T1w") for i in range(1, N_T1W + 1)}
    cohort_ids = {d["grade"]["cohort"]["id"] for d in docs.values()}
    assert len(cohort_ids) == 1
    for doc in docs.values():
        assert doc["grade"]["basis"] == "dataset" and doc["grade"]["cohort"]["size"] == N_T1W
    assert docs[DEGRADED]["grade"]["label"] != "Good"
    assert docs[DEGRADED]["grade"]["deviations"]
    good = [n for n, d in docs.items() if d["grade"]["label"] == "Good"]
    assert len(good) >= N_T1W - 2  # the clean runs of the study look like each other
    # the small T2w cohort keeps the absolute model's grade, flagged
    t2 = _json(out, "sub-01_T2w")
    assert t2["grade"]["basis"] == "model" and "fewer than" in t2["grade"]["basis_reason"]
    assert t2["narrative"]["classification"].startswith("Basis: the absolute metric model")
    # the console says which runs were compared with which
    assert f"{N_T1W} runs compared with each other: sub-01_T1w" in group.stdout
    rows = list(csv.DictReader((out / "group_T1w.tsv").open(), delimiter="\t"))
    assert {r["basis"] for r in rows} == {"dataset"} and {r["cohort_size"] for r in rows} == {str(N_T1W)}
    report = (out / f"{DEGRADED}.html").read_text()
    assert 'data-basis="dataset"' in report and f"the other {N_T1W - 1} runs" in report
    assert docs[DEGRADED]["narrative"]["classification"] in report.replace("&#39;", "'")
    t2_report = (out / "sub-01_T2w.html").read_text()
    assert 'data-basis="model" class="warn"' in t2_report
    html = (out / "group_T1w.html").read_text()
    assert 'id="cohorts-table"' in html and cohort_ids.pop() in html
    assert f"<code>{docs[DEGRADED]['grade']['model_id']}</code>" in html  # the cohort model
    assert 'data-basis="model"' in (out / "group_T2w.html").read_text()
    refs = sorted((out / "cohorts").glob("*.json"))
    assert [p.name.split("_")[0] for p in refs] == ["T1w"]


def test_group_rerun_is_idempotent(study):
    root, bids, out, _, _ = study
    assert_group_rerun_changes_nothing(bids, out)


def test_new_runs_graded_against_the_stored_reference(study):
    root, bids, out, _, _ = study
    new_bids, new_out = root / "new_bids", root / "new_out"
    build_dataset(new_bids, [RunPlan("20", "T1w", noise=0.012, gain=950.0),
                             RunPlan("21", "T1w", artifact="motion", severity=1.0, noise=0.05)],
                  voxel_size=3.0, seed=9)
    res = run_cli(new_bids, new_out, "participant", "--reference", out, "-w", root / "work2")
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 run(s) graded against the stored cohort references" in res.stdout
    clean, bad = _json(new_out, "sub-20_T1w"), _json(new_out, "sub-21_T1w")
    ref_id = _json(out, "sub-01_T1w")["grade"]["cohort"]["id"]
    for doc in (clean, bad):
        assert doc["grade"]["basis"] == "dataset"
        assert doc["grade"]["cohort"]["id"] == ref_id and doc["grade"]["cohort"]["by"] == "reference"
        assert doc["grade"]["cohort"]["size"] == N_T1W
        assert f"relative to the {N_T1W} T1w runs of the reference cohort" in doc["narrative"]["classification"]
    assert clean["grade"]["label"] == "Good" and bad["grade"]["label"] != "Good"
    assert 'data-basis="dataset"' in (new_out / "sub-21_T1w.html").read_text()
    # one reference file works as well as the folder
    ref_file = next((out / "cohorts").glob("T1w_*.json"))
    res = run_cli(new_bids, root / "new_out2", "participant", "--reference", ref_file,
                  "--participant-label", "20", "-w", root / "work3")
    assert res.returncode == 0, res.stdout + res.stderr
    assert _json(root / "new_out2", "sub-20_T1w")["grade"]["basis"] == "dataset"


def test_no_matching_cohort_is_a_one_line_error(study):
    root, bids, out, _, _ = study
    other = root / "other_bids"
    build_dataset(other, [RunPlan("30", "T1w")], voxel_size=4.0, seed=2)
    res = run_cli(other, root / "other_out", "participant", "--reference", out, "-w", root / "work4")
    assert res.returncode == 2
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmrqa: error: sub-30_T1w: no stored cohort "
                                                   "reference matches its protocol")
    assert "differs in matrix, voxel_size_mm" in lines[0]
    assert not list((root / "other_out").glob("sub-*"))  # nothing measured
    bad = root / "not_a_reference.json"
    bad.write_text("{}")
    res = run_cli(other, root / "other_out", "participant", "--reference", bad, "-w", root / "work4")
    assert res.returncode == 2 and f"{bad}: not a usable cohort reference" in res.stderr


def test_multimodal_prompt_gets_the_cohort_context(study):
    """With --reference, an MLLM grader's prompt says how the run stands in its cohort."""
    from mmrqa_bids.bids import RunSpec
    from mmrqa_bids.grading.base import GradeRequest
    from mmrqa_bids.grading.prompts import user_prompt
    from mmrqa_bids.reference_grades import prompt_contexts

    root, bids, out, _, _ = study
    doc = _json(out, DEGRADED)
    meta = doc["bids_meta"]
    run = RunSpec(path=Path(meta["source"]), suffix="T1w", datatype="anat",
                  entities={"subject": meta["subject"]})
    record = {"run": run.to_dict(), "shape": meta["shape"], "zooms": meta["voxel_size_mm"],
              "metrics": doc["metrics"]}
    context = prompt_contexts([record], out)[DEGRADED]
    assert context.startswith(f"compared with the {N_T1W} T1w runs of the reference cohort: ")
    assert "robust SD" in context and "(typical " in context
    request = GradeRequest(bids_name=DEGRADED, suffix="T1w", metrics=doc["metrics"],
                           cohort_context=context)
    assert f"Against the study's other runs of this protocol: {context}" in user_prompt(request)
    plain = user_prompt(GradeRequest(bids_name=DEGRADED, suffix="T1w", metrics=doc["metrics"]))
    assert "Against the study" not in plain and "\n\n\n" not in plain


def test_reference_refuses_graph_plugins(study):
    """SLURMGraph and friends return before any run is written: nothing to grade then."""
    root, bids, out, _, _ = study
    res = run_cli(bids, root / "graph_out", "participant", "--reference", out,
                  "--plugin", "SLURMGraph", "-w", root / "work5")
    assert res.returncode == 2
    assert "--reference needs a plugin that waits for the runs, not SLURMGraph" in res.stderr


def test_reference_grades_use_the_model_folders_cohort_model(study):
    """(b) ``participant --reference OUT --model M``: the new runs' dataset grades are read by
    M's cohort model (here the shipped one with +50 on its at_least_medium head, so the clean
    run that the shipped model grades Good is Medium or Bad), and the run records it."""
    from mmrqa_bids.grading.classifier import model_paths
    from test_user_cohort_model import OFFSET_ID, offset_model_folder

    root, bids, out, _, _ = study
    folder = offset_model_folder(root / "user_model")
    for path in model_paths(None).values():  # the metric classifier: the shipped one
        shutil.copyfile(path, folder / path.name)
    new_bids = root / "model_bids"
    build_dataset(new_bids, [RunPlan("20", "T1w", noise=0.012, gain=950.0)], voxel_size=3.0,
                  seed=9)
    res = run_cli(new_bids, root / "model_out", "participant", "--reference", out,
                  "--model", folder, "-w", root / "work6")
    assert res.returncode == 0, res.stdout + res.stderr
    doc = _json(root / "model_out", "sub-20_T1w")
    assert doc["grade"]["basis"] == "dataset" and doc["grade"]["label"] != "Good"
    assert doc["grade"]["model_id"] == OFFSET_ID
    assert doc["grade"]["cohort"]["model"] == str(folder / "cohort_anat.json.gz")
    assert doc["provenance"]["settings"]["grading"]["model"] == str(folder)
    assert f"dataset grades of anat cohorts by cohort model {OFFSET_ID} from {folder}" \
        in res.stdout
    assert f"cohort model {OFFSET_ID}" in res.stdout
