from pathlib import Path

import pytest

from mmrqa_bids.bids import (DatasetError, RunSpec, check_dataset, collect_runs,
                             parse_entities, same_label, strip_prefix)


def names(runs):
    return [r.bids_name for r in runs]


def collect(bids, out=None, **kw):
    kw.setdefault("modalities", ("T1w", "T2w", "FLAIR", "bold"))
    return collect_runs(bids, out or bids / "derivatives" / "mmrqa", **kw)


def test_collects_every_run(small_bids):
    assert names(collect(small_bids)) == [
        "sub-01_ses-1_T1w", "sub-01_ses-1_task-rest_bold", "sub-01_ses-2_run-01_T1w",
        "sub-01_ses-2_run-02_T1w", "sub-02_T1w", "sub-02_task-rest_bold"]


@pytest.mark.parametrize("label", ["02", "sub-02"])
def test_participant_label_with_or_without_prefix(small_bids, label):
    assert names(collect(small_bids, participant_label=[label])) == ["sub-02_T1w", "sub-02_task-rest_bold"]


def test_session_run_task_and_modality_filters(small_bids):
    assert names(collect(small_bids, session_id=["ses-2"], run_id=["2"])) == ["sub-01_ses-2_run-02_T1w"]
    assert names(collect(small_bids, run_id=["run-01"])) == ["sub-01_ses-2_run-01_T1w"]
    assert names(collect(small_bids, modalities=("bold",), task_id=["rest"])) == [
        "sub-01_ses-1_task-rest_bold", "sub-02_task-rest_bold"]


def test_bids_filter_file_entities(small_bids):
    runs = collect(small_bids, modalities=("T1w",), bids_filters={"t1w": {"session": "1"}})
    assert names(runs) == ["sub-01_ses-1_T1w"]


def test_unknown_participant_is_an_error(small_bids):
    with pytest.raises(DatasetError, match="participant label\\(s\\) not found: 99"):
        collect(small_bids, participant_label=["sub-99"])


def test_no_matching_runs_is_an_error(small_bids):
    with pytest.raises(DatasetError, match="no runs match"):
        collect(small_bids, modalities=("FLAIR",))


def test_derivatives_and_output_dir_are_not_indexed(small_bids, tmp_path):
    import shutil
    ds = tmp_path / "ds"
    shutil.copytree(small_bids, ds)
    # Outputs that look like inputs, in the usual and in an unusual place.
    for out in (ds / "derivatives" / "mmrqa" / "sub-01" / "anat", ds / "qc" / "sub-03" / "anat"):
        out.mkdir(parents=True)
        shutil.copy(ds / "sub-02" / "anat" / "sub-02_T1w.nii.gz", out / "sub-01_T1w.nii.gz")
    assert len(collect(ds, out=ds / "qc")) == 6


def test_check_dataset_errors(tmp_path, small_bids):
    with pytest.raises(DatasetError, match="does not exist"):
        check_dataset(tmp_path / "missing", tmp_path / "out")
    (tmp_path / "file").write_text("x")
    with pytest.raises(DatasetError, match="not a directory"):
        check_dataset(tmp_path / "file", tmp_path / "out")
    with pytest.raises(DatasetError, match="no dataset_description.json"):
        check_dataset(tmp_path, tmp_path / "out")
    with pytest.raises(DatasetError, match="refusing to write into raw data"):
        check_dataset(small_bids, small_bids)


def test_runspec_round_trip():
    run = RunSpec(path=Path("/d/sub-01/ses-2/anat/sub-01_ses-2_run-01_T1w.nii.gz"), suffix="T1w",
                  datatype="anat", entities={"subject": "01", "session": "2", "run": "01"})
    assert RunSpec.from_dict(run.to_dict()) == run


def test_label_helpers():
    assert strip_prefix("sub-01", "sub") == "01" and strip_prefix("01", "sub") == "01"
    assert same_label("01", "1") and not same_label("01", "2") and same_label("a", "a")
    assert parse_entities("sub-01_ses-x_task-rest_run-2_bold.nii.gz") == {
        "subject": "01", "session": "x", "task": "rest", "run": "2"}
