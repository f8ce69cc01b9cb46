"""Dataset grades at the group level: basis, narrative, small-cohort fallback, idempotent
reruns, stored references and guard rails (on synthetic run JSONs: no images needed)."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from mmrqa_bids.cohorts.basis import (PARTICIPANT_REASON, model_grade, with_dataset_basis,
                                      with_model_basis)
from mmrqa_bids.cohorts.narrative import PROVISIONAL, render_dataset_narrative
from mmrqa_bids.cohorts.reference import CohortReference
from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE, Deviation, RelativeGrade, family_features
from mmrqa_bids.derivatives import DerivativesLayout
from mmrqa_bids.group import run_group
from mmrqa_bids.testing.synthetic_runs import run_doc as _doc

FEATURES = family_features("anat")
#: T2w runs of the fixture: a cohort one run too small for a dataset grade
N_T2W = MIN_COHORT_SIZE - 1


def _metrics(rng, shift: float = 0.0) -> dict:
    """Every cohort feature near 1 (spread 0.02), moved by ``shift`` in spreads."""
    return {f: float(1.0 + 0.02 * (rng.standard_normal() + shift)) for f in FEATURES}


def _write_outputs(out: Path, docs: list[dict]) -> None:
    for doc in docs:
        path = out / f"sub-{doc['bids_meta']['subject']}" / "anat" / f"{doc['bids_meta']['bids_name']}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(doc))


def _read(out: Path, name: str) -> dict:
    sub = name.split("_")[0]
    return json.loads((out / sub / "anat" / f"{name}.json").read_text())


@pytest.fixture()
def study(tmp_path) -> Path:
    """12 T1w runs of one protocol (2 degraded, graded Bad by the absolute model too, and 3
    clean ones the absolute model calls Bad) and N_T2W T2w runs (a cohort too small)."""
    rng = np.random.default_rng(0)
    docs = []
    for i in range(12):
        degraded = i in (3, 7)
        label = "Bad" if degraded or i in (0, 1, 2) else "Good"
        docs.append(_doc(f"sub-{i:02d}_T1w", _metrics(rng, 15.0 if degraded else 0.0), label))
    docs += [_doc(f"sub-{i:02d}_T2w", _metrics(rng), "Medium", suffix="T2w") for i in range(N_T2W)]
    out = tmp_path / "out"
    _write_outputs(out, docs)
    return out


def test_group_level_grades_against_the_cohort(study, capsys):
    run_group(study, ("T1w", "T2w"), reports=False)
    console = capsys.readouterr().out
    clean, degraded = _read(study, "sub-05_T1w"), _read(study, "sub-07_T1w")
    for doc in (clean, degraded):
        grade = doc["grade"]
        assert grade["basis"] == "dataset" and grade["basis_reason"] is None
        assert grade["cohort"]["size"] == 12 and grade["cohort"]["by"] == "protocol"
        assert grade["cohort"]["id"].startswith("T1w.1x1x1mm.176x256x256.")
        assert grade["model_grade"]["model_id"] == "absolute-model"
    assert clean["grade"]["label"] == "Good" and degraded["grade"]["label"] == "Bad"
    # a clean run the absolute model called Bad is Good against its own dataset, and says so
    fooled = _read(study, "sub-00_T1w")
    assert fooled["grade"]["label"] == "Good" and fooled["grade"]["model_grade"]["label"] == "Bad"
    assert "absolute metric model, which knows no other run of this dataset, graded it Bad" \
        in fooled["narrative"]["classification"]
    # the degraded run's narrative names its deviations against the other 11 runs
    text = degraded["narrative"]["classification"]
    assert "relative to the other 11 T1w runs of this protocol" in text
    top = degraded["grade"]["deviations"][0]
    assert f"{top['metric']} = " in text and "robust SD above the other 11 T1w runs" in text
    assert degraded["artifacts"] == [{"type": "noise", "likelihood": 0.6}]  # artifact model's
    assert "Most likely artifact (artifact model): noise" in degraded["narrative"]["artifact"]
    # the cohort is printed with its members, and the small cohort's fallback is flagged
    assert "12 runs compared with each other: sub-00_T1w" in console
    assert f"{N_T2W} run(s), fewer than {MIN_COHORT_SIZE}: no dataset grade" in console


def test_small_cohort_keeps_the_model_grade_flagged(study):
    run_group(study, ("T1w", "T2w"), reports=False)
    doc = _read(study, "sub-01_T2w")
    grade = doc["grade"]
    assert grade["basis"] == "model" and grade["label"] == "Medium"
    assert grade["basis_reason"] == (f"its cohort has {N_T2W} runs, fewer than the "
                                     f"{MIN_COHORT_SIZE} a dataset grade needs")
    assert grade["cohort"]["size"] == N_T2W
    assert doc["narrative"]["classification"].startswith(
        f"Basis: the absolute metric model, not the dataset (its cohort has {N_T2W} runs")
    assert doc["narrative"]["artifact"] == "model artifact text"
    rows = list(csv.DictReader((study / "group_T2w.tsv").open(), delimiter="\t"))
    assert {(r["basis"], r["cohort_size"], r["model_grade"]) for r in rows} == {("model", str(N_T2W), "Medium")}


def test_group_tsv_has_basis_and_cohort_columns(study):
    run_group(study, ("T1w", "T2w"), reports=False)
    rows = {r["bids_name"]: r for r in csv.DictReader((study / "group_T1w.tsv").open(), delimiter="\t")}
    assert rows["sub-07_T1w"]["basis"] == "dataset" and rows["sub-07_T1w"]["grade"] == "Bad"
    assert rows["sub-00_T1w"]["grade"] == "Good" and rows["sub-00_T1w"]["model_grade"] == "Bad"
    assert {r["cohort_size"] for r in rows.values()} == {"12"}
    assert len({r["cohort"] for r in rows.values()}) == 1


def test_group_rerun_is_idempotent(study):
    run_group(study, ("T1w", "T2w"), reports=False)
    files = sorted(p for p in study.rglob("*") if p.is_file() and not p.name.startswith("."))
    first = {p: p.read_bytes() for p in files}
    run_group(study, ("T1w", "T2w"), reports=False)
    assert sorted(p for p in study.rglob("*") if p.is_file() and not p.name.startswith(".")) == files
    changed = [str(p.relative_to(study)) for p in files if p.read_bytes() != first[p]]
    assert changed == []


def test_reference_stored_and_stale_ones_removed(study):
    layout = DerivativesLayout(study)
    stale = layout.cohort_reference("T1w", "T1w.old.00000000")
    stale.parent.mkdir(parents=True)
    stale.write_text("{}")
    run_group(study, ("T1w", "T2w"), reports=False)
    refs = layout.cohort_references()
    assert len(refs) == 1 and refs[0].name.startswith("T1w_T1w.1x1x1mm.")  # none for T2w (small)
    ref = CohortReference.from_dict(json.loads(refs[0].read_text()))
    assert ref.n == 12 and ref.members == tuple(f"sub-{i:02d}_T1w" for i in range(12))
    assert ref.protocol == _read(study, "sub-00_T1w")["bids_meta"]["protocol"]


def test_cohort_by_suffix_and_by_file(study, tmp_path):
    run_group(study, ("T1w", "T2w"), reports=False, cohort_by="suffix")
    assert _read(study, "sub-00_T1w")["grade"]["cohort"]["protocol"] == {"suffix": "T1w"}
    tsv = tmp_path / "cohorts.tsv"
    tsv.write_text("bids_name\tcohort\n" + "".join(
        f"sub-{i:02d}_T1w\t{'a' if i < 12 - N_T2W else 'b'}\n" for i in range(12))
        + "".join(f"sub-{i:02d}_T2w\ta\n" for i in range(N_T2W)))
    run_group(study, ("T1w", "T2w"), reports=False, cohort_by=str(tsv))
    assert _read(study, "sub-00_T1w")["grade"]["basis"] == "dataset"
    assert _read(study, "sub-00_T1w")["grade"]["cohort"]["size"] == 12 - N_T2W
    assert _read(study, "sub-11_T1w")["grade"]["basis"] == "model"  # cohort 'b': too small


def test_guard_rail_warning_on_a_bimodal_cohort(tmp_path, capsys):
    """Two protocols mixed under one cohort (half the runs far from the other half in every
    metric): the group report and the console warn that the reference may be wrong."""
    from mmrqa_bids.cohorts.relative import BIMODAL_MIN_RUNS
    rng = np.random.default_rng(1)
    n = max(BIMODAL_MIN_RUNS, MIN_COHORT_SIZE, 12)
    docs = [_doc(f"sub-{i:02d}_T1w", _metrics(rng, 0.0 if i < n // 2 else 40.0)) for i in range(n)]
    out = tmp_path / "out"
    _write_outputs(out, docs)
    run_group(out, ("T1w",), reports=True)
    console = capsys.readouterr().out
    assert "[mmrqa] WARNING Cohort T1w." in console and "two distinct groups" in console
    html = (out / "group_T1w.html").read_text()
    assert 'class="warn cohort-warning"' in html and "two distinct groups" in html
    assert _read(out, "sub-00_T1w")["grade"]["cohort_warnings"]


def test_basis_is_applied_from_the_kept_model_grade():
    doc = _doc("sub-01_T1w", {"efc": 0.66}, "Bad")
    participant = with_model_basis(doc, PARTICIPANT_REASON, flag_narrative=False)
    assert participant["grade"]["basis"] == "model"
    assert participant["grade"]["basis_reason"] == PARTICIPANT_REASON
    assert participant["narrative"] == doc["narrative"]  # not flagged: not a fallback
    rel = RelativeGrade(label="Good", probabilities={"Good": 0.9, "Medium": 0.08, "Bad": 0.02},
                        confidence=0.9, deviations=(), model_id="relative-model")
    cohort = {"id": "T1w.x.00000000", "size": 30, "by": "protocol", "protocol": {}}
    once = with_dataset_basis(participant, rel, cohort)
    twice = with_dataset_basis(once, rel, cohort)
    assert once == twice and once["grade"]["label"] == "Good"
    assert model_grade(twice)["label"] == "Bad" and model_grade(twice)["narrative"] == doc["narrative"]
    back = with_model_basis(twice, "its cohort has 3 runs")
    assert back["grade"]["label"] == "Bad"
    assert back["narrative"]["classification"] == (
        "Basis: the absolute metric model, not the dataset (its cohort has 3 runs). "
        f"{PROVISIONAL.format(others=MIN_COHORT_SIZE - 1)} Grade: Bad from the metric model.")
    assert "compared with at least 2 other runs of its protocol" in \
        back["narrative"]["classification"]


def test_narrative_names_the_metric_and_the_cohort_range():
    dev = Deviation(metric="efc", value=0.66, z=3.1, centre=0.55, low=0.52, high=0.58)
    text = render_dataset_narrative(
        label="Medium", confidence=0.7, deviations=[dev.__dict__], artifacts=[], suffix="T1w",
        size=30, member=True, cohort_id="T1w.c.1", model_id="m")
    assert "efc = 0.66, 3.1 robust SD above the other 29 T1w runs of this protocol " \
           "(typical 0.52 to 0.58)" in text["classification"]
    new = render_dataset_narrative(
        label="Good", confidence=0.9, deviations=[], artifacts=[], suffix="bold", size=30,
        member=False, cohort_id="bold.c.1", model_id="m")
    assert "relative to the 30 bold runs of the reference cohort" in new["classification"]
    assert "no metric sets this run apart" in new["classification"]


def test_cohort_that_cannot_be_a_reference_keeps_the_model_grade_flagged(tmp_path, capsys):
    """Enough runs, but none of the metrics the relative grade reads: not a silent fallback."""
    rng = np.random.default_rng(2)
    docs = [_doc(f"sub-{i:02d}_T1w", {"not_a_cohort_metric": float(rng.random())}, "Medium")
            for i in range(MIN_COHORT_SIZE + 2)]
    out = tmp_path / "out"
    _write_outputs(out, docs)
    run_group(out, ("T1w",), reports=False)
    grade = _read(out, "sub-00_T1w")["grade"]
    assert grade["basis"] == "model" and grade["label"] == "Medium"
    assert grade["basis_reason"].startswith(f"its cohort of {MIN_COHORT_SIZE + 2} runs could not "
                                            "be used as a reference: ")
    assert "no dataset grade (" in capsys.readouterr().out
    assert not DerivativesLayout(out).cohort_references()


def test_group_keeps_grades_given_against_a_stored_reference(tmp_path):
    """New runs graded with participant --reference into their own folder: a group level
    there (a cohort of 2) keeps their dataset grades instead of falling back."""
    rel = RelativeGrade(label="Good", probabilities={"Good": 0.9, "Medium": 0.08, "Bad": 0.02},
                        confidence=0.9, deviations=(), model_id="relative-model")
    cohort = {"id": "T1w.x.00000000", "size": 30, "by": "reference", "protocol": {}}
    rng = np.random.default_rng(3)
    docs = [with_dataset_basis(_doc(f"sub-{i:02d}_T1w", _metrics(rng), "Bad"), rel, cohort,
                               member=False) for i in range(2)]
    out = tmp_path / "out"
    _write_outputs(out, docs)
    run_group(out, ("T1w",), reports=False)
    grade = _read(out, "sub-00_T1w")["grade"]
    assert grade["basis"] == "dataset" and grade["label"] == "Good"
    assert grade["cohort"] == cohort


def test_a_value_every_other_run_shares_reads_as_such():
    dev = Deviation(metric="qi_1", value=0.0026, z=10.0, centre=0.0, low=-2e-9, high=2e-9)
    text = render_dataset_narrative(
        label="Bad", confidence=0.9, deviations=[dev.__dict__], artifacts=[], suffix="T1w",
        size=10, member=True, cohort_id="T1w.c.1", model_id="m")["classification"]
    assert "qi_1 = 0.0026, more than 10 robust SD above the other 9 T1w runs of this protocol " \
           "(typical 0 in every run)" in text
