import json
from pathlib import Path

import pytest

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.derivatives import (FIXED_COLUMNS, DerivativesLayout, group_tables,
                                    read_derivative, to_tsv, write_dataset_description, write_run)

RUN = RunSpec(path=Path("/d/sub-01/ses-2/anat/sub-01_ses-2_run-01_T1w.nii.gz"), suffix="T1w",
              datatype="anat", entities={"subject": "01", "session": "2", "run": "01"})


def _record(run: RunSpec, **extra) -> dict:
    grade = {"label": "Good", "probabilities": {"Good": 0.7, "Medium": 0.2, "Bad": 0.1},
             "confidence": 0.7, "artifacts": [{"type": "noise", "likelihood": 0.3}],
             "narrative": {"classification": "c", "artifact": "a", "analysis": "u"}}
    return {"run": run.to_dict(), "grade": grade, "metrics": {"snr": 12.5, "efc": 0.4},
            "grader": {"backend": "classifier"}, **extra}


def test_every_path_is_named_by_the_layout():
    out = DerivativesLayout(Path("/o"))
    assert out.run_json(RUN) == Path("/o/sub-01/ses-2/anat/sub-01_ses-2_run-01_T1w.json")
    bold = RunSpec(path=Path("/d/sub-02/func/sub-02_task-x_bold.nii.gz"), suffix="bold",
                   datatype="func", entities={"subject": "02", "task": "x"})
    assert out.run_json(bold) == Path("/o/sub-02/func/sub-02_task-x_bold.json")
    assert out.run_report(RUN.bids_name) == Path("/o/sub-01_ses-2_run-01_T1w.html")
    assert out.group_table("T1w") == Path("/o/group_T1w.tsv")
    assert out.group_report("bold") == Path("/o/group_bold.html")
    assert out.failure("sub-01_T1w") == Path("/o/logs/failed/sub-01_T1w.json")
    assert out.settings_file("group", "20260101T000000") == \
        Path("/o/logs/settings_group_20260101T000000.toml")
    assert out.model("mmrqa-x-lora") == Path("/o/models/mmrqa-x-lora")
    assert out.dataset_description == Path("/o/dataset_description.json")
    assert out.cohort_reference("T1w", "a1b2c3") == Path("/o/cohorts/T1w_a1b2c3.json")


def test_report_links_are_relative_and_quoted():
    out = DerivativesLayout(Path("/o"))
    assert out.report_href("sub-01_T1w") == "sub-01_T1w.html"
    assert out.report_href("sub-01_acq-<a b>_T1w") == "sub-01_acq-%3Ca%20b%3E_T1w.html"


@pytest.mark.parametrize("cohort_id", ["../x", "a/b", "", "a_b"])
def test_cohort_ids_must_be_file_name_safe(cohort_id):
    with pytest.raises(ValueError, match="file-name safe"):
        DerivativesLayout(Path("/o")).cohort_reference("T1w", cohort_id)


def test_cohort_references_are_listed_per_suffix(tmp_path):
    out = DerivativesLayout(tmp_path)
    for suffix, cid in (("T1w", "a"), ("T1w", "b"), ("bold", "a")):
        path = out.cohort_reference(suffix, cid)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("{}")
    assert [p.name for p in out.cohort_references("T1w")] == ["T1w_a.json", "T1w_b.json"]
    assert len(out.cohort_references()) == 3


def test_write_run_then_failure_removes_stale_outputs(tmp_path):
    out = DerivativesLayout(tmp_path)
    path, status = write_run(_record(RUN), out, {"k": 1}, reports=False)
    assert (Path(path), status) == (out.run_json(RUN), "Good")
    doc = read_derivative(out.run_json(RUN))
    assert doc["grade"]["label"] == "Good" and doc["provenance"]["settings"] == {"k": 1}
    out.run_report(RUN.bids_name).write_text("old report")
    path, status = write_run(_record(RUN, error="cannot read image"), out, {}, reports=False)
    assert (Path(path), status) == (out.failure(RUN.bids_name), "failed")
    assert not out.run_json(RUN).exists() and not out.run_report(RUN.bids_name).exists()
    assert json.loads(out.failure(RUN.bids_name).read_text())["error"] == "cannot read image"
    # A later success removes the failure record.
    write_run(_record(RUN), out, {}, reports=False)
    assert not out.failure(RUN.bids_name).exists() and out.run_json(RUN).is_file()


def test_group_tables_and_tsv(tmp_path):
    out = DerivativesLayout(tmp_path)
    write_dataset_description(out, tmp_path)
    write_run(_record(RUN), out, {}, reports=False)
    bad = RunSpec(path=Path("/d/sub-02/anat/sub-02_T1w.nii.gz"), suffix="T1w", datatype="anat",
                  entities={"subject": "02"})
    write_run(_record(bad, error="image is all zeros"), out, {}, reports=False)
    (tmp_path / "sub-01" / "other.json").write_text('{"not": "a derivative"}')
    rows = group_tables(out)["T1w"]
    assert [(r["bids_name"], r["status"]) for r in rows] == [
        ("sub-01_ses-2_run-01_T1w", "ok"), ("sub-02_T1w", "failed")]
    lines = to_tsv(rows).splitlines()
    assert lines[0].split("\t") == [*FIXED_COLUMNS, "efc", "snr"]
    assert lines[1].split("\t")[FIXED_COLUMNS.index("p_good")] == "0.7"
    assert lines[2].split("\t")[-2:] == ["n/a", "n/a"]
