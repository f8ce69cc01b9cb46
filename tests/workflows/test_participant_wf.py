"""The workflow graph, built without running a node."""
from dataclasses import replace
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
    assert {"inputnode", "run_wf.measure", "grade", "write", "outputnode"} <= names
    # One node per run: metrics and mosaics share the volume in memory (no mosaics node).
    assert not any(n.endswith("mosaics") for n in names)
    inputnode = wf.get_node("inputnode")
    assert [r["bids_name"] for r in inputnode.iterables[0][1]] == ["sub-01_T1w", "sub-02_T1w", "sub-03_T1w"]
    grade = wf.get_node("grade")
    assert grade.joinsource == "inputnode" and grade.joinfield == ["in_records"]
    assert grade.interface.inputs.grading["grader"] == "classifier"
    write = wf.get_node("write")
    assert not hasattr(write, "iterfield"), "derivatives are written by one node, not a MapNode"
    assert write.run_without_submitting and not grade.run_without_submitting
    assert wf.get_node("run_wf.measure").n_procs == 1


def test_no_reports_skips_report_mosaics(tmp_path):
    wf = init_run_wf(reports=False)
    assert wf.get_node("measure").inputs.report_views is False


def test_measure_node_reserves_its_threads(tmp_path):
    """MultiProc counts a run's BLAS/OpenMP threads against --nprocs (never above it)."""
    def n_procs(nprocs, omp):
        settings = _settings(tmp_path)
        settings = Settings(execution=replace(settings.execution, nprocs=nprocs,
                                              omp_nthreads=omp))
        runs = [RunSpec(Path("/d/sub-01/anat/sub-01_T1w.nii.gz"), "T1w", "anat",
                        {"subject": "01"})]
        return init_participant_wf(runs, settings).get_node("run_wf.measure").n_procs

    assert n_procs(4, 2) == 2
    assert n_procs(2, 8) == 2
    assert init_run_wf(reports=True, omp_nthreads=3).get_node("measure").n_procs == 3


def test_inu_method_reaches_the_measure_node(tmp_path):
    runs = [RunSpec(Path("/d/sub-01/anat/sub-01_T1w.nii.gz"), "T1w", "anat", {"subject": "01"})]
    default = _settings(tmp_path)
    n4 = replace(default, execution=replace(default.execution, inu_method="n4"))
    assert init_participant_wf(runs, default).get_node("run_wf.measure").inputs.inu_method == "polynomial"
    assert init_participant_wf(runs, n4).get_node("run_wf.measure").inputs.inu_method == "n4"
