"""MeasureRun on a real (small) image: metrics and mosaics from one node, nothing else."""
from pathlib import Path

import numpy as np

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.interfaces.measure import MeasureRun
from mmrqa_bids.io import load_image
from mmrqa_bids.metrics import measure
from mmrqa_bids.records import read_record
from mmrqa_bids.reports import mosaics


def _run(bids: Path) -> RunSpec:
    path = bids / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    return RunSpec(path, "T1w", "anat", {"subject": "02"})


def test_measure_run_renders_mosaics_in_the_same_node(small_bids, tmp_path):
    run = _run(small_bids)
    cwd = tmp_path / "node"
    cwd.mkdir()
    res = MeasureRun(run=run.to_dict(), report_views=True).run(cwd=str(cwd))
    record = read_record(res.outputs.out_record)
    assert record["error"] is None and record["metrics"]
    assert set(record["mosaics"]) == {"mllm", *mosaics.VIEWS, "background"}
    assert set(record["timings"]) == {"measure", "mosaics"}
    # No intermediate arrays on disk: the mosaics came from the in-memory volume and masks.
    assert not list(cwd.glob("*.npy")) and not list(cwd.glob("*.npz"))
    # ... and they are the mosaics of the measured reference volume.
    img, data = load_image(run.path, run.suffix)
    result = measure(data, run.suffix, img.header.get_zooms())
    expected = mosaics.mllm_mosaic(result.reference.astype(np.float32), result.head)
    assert Path(record["mosaics"]["mllm"]).read_bytes() == expected


def test_measure_run_without_report_views(small_bids, tmp_path):
    run = _run(small_bids)
    res = MeasureRun(run=run.to_dict(), report_views=False).run(cwd=str(tmp_path))
    assert set(read_record(res.outputs.out_record)["mosaics"]) == {"mllm"}


def test_measure_run_records_an_unreadable_file(tmp_path):
    bad = tmp_path / "sub-01_T1w.nii.gz"
    bad.write_bytes(b"not a nifti")
    run = RunSpec(bad, "T1w", "anat", {"subject": "01"})
    res = MeasureRun(run=run.to_dict()).run(cwd=str(tmp_path))
    record = read_record(res.outputs.out_record)
    assert record["error"] and "mosaics" not in record and "metrics" not in record


def test_measure_run_with_n4_changes_only_the_bias_field_metrics(small_bids, tmp_path):
    run = _run(small_bids)
    records = {}
    for method in ("polynomial", "n4"):
        cwd = tmp_path / method
        cwd.mkdir()
        res = MeasureRun(run=run.to_dict(), report_views=False, inu_method=method).run(cwd=str(cwd))
        records[method] = read_record(res.outputs.out_record)["metrics"]
    poly, n4 = records["polynomial"], records["n4"]
    changed = {k for k in poly if not np.isclose(poly[k], n4[k], rtol=1e-6, equal_nan=True)}
    assert changed and changed <= {"inu_med", "inu_range"}
