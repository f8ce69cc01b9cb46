"""mmrqa's bold IQMs against nipype's implementations (what MRIQC runs for them) on real EPI
series that ship with the test environment, fed mmrqa's own inputs (#20 item 2).

The full comparison, MRIQC's ``qc`` functions included, is
``benchmarks/metrics_vs_mriqc_bold.py``; this pins the nipype half offline, in mmrqa's venv.
nipype's ``compute_dvars`` takes its lag-1 autocorrelation from nitime's ``AR_est_YW``; when
nitime is not installed it is replaced by the same Yule-Walker estimate for order 1 (r1 / r0
of the demeaned float32 series; it matched nitime 0.12 to 2.4e-7 on these two series).
"""
from __future__ import annotations

from pathlib import Path

import nibabel as nb
import nipype
import numpy as np
import pytest
from nipype.algorithms import confounds

from mmrqa_bids.metrics import functional, measure

NIPYPE_DATA = Path(nipype.__file__).parent / "testing" / "data"
SERIES = {"ds003": NIPYPE_DATA / "ds003_sub-01_mc.nii.gz",  # OpenNeuro ds003 sub-01, 20 vols
          "functional": Path(nb.__file__).parent / "tests" / "data" / "functional.nii"}
REL = 1e-4


def _yule_walker_lag1(x: np.ndarray, order: int) -> float:
    """nitime's ``AR_est_YW(x, 1)[0]``: r1 / r0 of a demeaned series."""
    assert order == 1
    return float(np.dot(x[1:], x[:-1]) / np.dot(x, x))


@pytest.fixture(params=sorted(SERIES))
def run(request, tmp_path, monkeypatch):
    """mmrqa's metrics of a real series, and the files nipype reads: the RAS series and
    mmrqa's head mask."""
    try:
        import nitime  # noqa: F401
    except ImportError:
        monkeypatch.setattr(confounds, "_AR_est_YW", _yule_walker_lag1)
    ras = nb.as_closest_canonical(nb.load(str(SERIES[request.param])))
    data = np.asarray(ras.dataobj, dtype=np.float32)
    zooms = tuple(float(z) for z in ras.header.get_zooms()[:3])
    m = measure(data, "bold", zooms)
    bold, mask = tmp_path / "bold.nii.gz", tmp_path / "mask.nii.gz"
    nb.save(nb.Nifti1Image(data, np.eye(4)), str(bold))
    nb.save(nb.Nifti1Image(m.head.astype(np.uint8), np.eye(4)), str(mask))
    monkeypatch.chdir(tmp_path)  # nipype's interfaces write into the working directory
    return {"data": data, "zooms": zooms, "m": m, "bold": str(bold), "mask": str(mask)}


def test_tsnr_is_nipypes_median_over_the_mask(run):
    res = confounds.TSNR(in_file=[run["bold"]]).run()
    tsnr = nb.load(res.outputs.tsnr_file).get_fdata()[run["m"].head]
    # 20 volumes: no voxel of the head has SD 0, where the two definitions part
    assert np.median(tsnr) == pytest.approx(run["m"].metrics["tsnr"], rel=REL)


def test_dvars_are_nipypes_compute_dvars(run):
    std, nstd, vstd = confounds.compute_dvars(run["bold"], run["mask"], remove_zerovariance=True,
                                              intensity_normalization=0)
    mm = run["m"].metrics
    assert mm["dvars_std"] == pytest.approx(std.mean(), rel=REL)
    assert mm["dvars_nstd"] == pytest.approx(nstd.mean(), rel=REL)
    assert mm["dvars_vstd"] == pytest.approx(vstd.mean(), rel=REL)
    # MRIQC's call keeps nipype's default scaling to a median of 1000: only nstd moves
    scaled = confounds.compute_dvars(run["bold"], run["mask"], remove_zerovariance=True)
    median = float(np.median(run["data"][run["m"].head]))
    assert scaled[1].mean() == pytest.approx(nstd.mean() * 1000.0 / median, rel=REL)
    assert scaled[0].mean() == pytest.approx(std.mean(), rel=REL)


def test_fd_is_nipypes_framewise_displacement(run, tmp_path):
    params = functional.realign(run["data"], run["m"].head, run["zooms"])
    np.savetxt(tmp_path / "par.txt", params)  # (wx, wy, wz, tx, ty, tz): FSL's order
    res = confounds.FramewiseDisplacement(in_file=str(tmp_path / "par.txt"),
                                          parameter_source="FSL", save_plot=False).run()
    fd = np.loadtxt(res.outputs.out_file, skiprows=1)
    mm = run["m"].metrics
    assert mm["fd_mean"] == pytest.approx(fd.mean(), rel=REL)
    num = int((fd > functional.FD_THRESHOLD_MM).sum())
    assert mm["fd_num"] == num
    # MRIQC's FunctionalQC: num * 100 / (len(fd) + 1), i.e. over T; mmrqa's over T - 1
    assert mm["fd_perc"] == pytest.approx(num * 100.0 / len(fd))
