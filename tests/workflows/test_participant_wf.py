"""The workflow graph, built without running a node."""
from pathlib import Path

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.settings import Execution, Settings
from mmrqa_bids.workflows.participant import init_participant_wf, init_run_wf


def _settings(tmp_path, reports=True):
    return Settings(execution=Execution(bids_dir=tmp_path, output_dir=tmp_path / "out",
                                        analysis_level="participant", work_dir=tmp_path / "w",
                                        reports=reports))


def test_participant_wf_structure(tmp_path):
    runs = [RunSpec(Path(f"/d/sub-0{i}/anat/sub-0{i}_T1w.nii.gz"), "T1w", "anat", {"subject": f"0{i}"})
            for i in (1, 2, 3)]
    wf = init_participant_wf(runs, _settings(tmp_path))
    names = set(wf.list_node_names())
    assert {"inputnode", "run_wf.measure", "run_wf.mosaics", "grade", "write", "outputnode"} <= names
    inputnode = wf.get_node("inputnode")
    assert [r["bids_name"] for r in inputnode.iterables[0][1]] == ["sub-01_T1w", "sub-02_T1w", "sub-03_T1w"]
    grade = wf.get_node("grade")
    assert grade.joinsource == "inputnode" and grade.joinfield == ["in_records"]
    assert grade.interface.inputs.grading["grader"] == "classifier"
    assert wf.get_node("write").iterfield == ["in_record"]


def test_no_reports_skips_report_mosaics(tmp_path):
    wf = init_run_wf(reports=False)
    assert wf.get_node("mosaics").inputs.report_views is False
