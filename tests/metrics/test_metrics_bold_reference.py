"""mmrqa's bold IQMs against nipype's implementations (what MRIQC runs for them) on real EPI
series that ship with the test environment, fed mmrqa's own inputs (#20 item 2): ``tsnr``
(nipype ``TSNR`` + MRIQC's median over the mask), ``dvars_*`` (``ComputeDVARS`` with MRIQC's
defaults, intensities scaled to an in-mask median of 1000), ``fd_*`` (``FramewiseDisplacement``
+ MRIQC ``FunctionalQC``'s count and percentage over T volumes).

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
from mmrqa_bids.train.metric_model.sources import epi_path

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


def _nipype_tsnr(bold: str, head: np.ndarray) -> float:
    """MRIQC's tsnr: nipype's TSNR map (0 where SD <= 1e-3), median over the mask."""
    res = confounds.TSNR(in_file=[bold]).run()
    return float(np.median(nb.load(res.outputs.tsnr_file).get_fdata()[head]))


def test_tsnr_is_nipypes_median_over_the_mask(run):
    assert run["m"].metrics["tsnr"] == pytest.approx(_nipype_tsnr(run["bold"], run["m"].head),
                                                     rel=REL)


@pytest.fixture(scope="module")
def example4d():
    """nibabel's example4d (2 volumes of a real run), RAS, and mmrqa's measure of it."""
    ras = nb.as_closest_canonical(nb.load(str(epi_path())))
    data = np.asarray(ras.dataobj, dtype=np.float32)
    return data, measure(data, "bold", tuple(float(z) for z in ras.header.get_zooms()[:3]))


def test_tsnr_counts_constant_voxels_as_zero_as_nipype(example4d, tmp_path, monkeypatch):
    """example4d: 3470 of its 100886 head voxels have the same value in both volumes; nipype's
    map is 0 there and MRIQC's median counts them (mmrqa left them out before: 121.0 against
    116.1)."""
    data, m = example4d
    ts = data[m.head].astype(np.float64)
    assert (ts.std(axis=1) <= functional.TSNR_SD_MIN).sum() > 1000
    nb.save(nb.Nifti1Image(data, np.eye(4)), str(tmp_path / "bold.nii.gz"))
    monkeypatch.chdir(tmp_path)
    assert m.metrics["tsnr"] == pytest.approx(_nipype_tsnr(str(tmp_path / "bold.nii.gz"),
                                                           m.head), rel=REL)


def test_gcor_and_aor_are_nan_on_a_two_volume_run(example4d):
    """2 volumes: the quadratic trend fits every series; gcor was 0.98 from rounding residue.
    The other bold features that are defined stay finite; dvars_* are NaN (IQR 0)."""
    _, m = example4d
    assert np.isnan(m.metrics["gcor"]) and np.isnan(m.metrics["aor"])
    assert np.isfinite([m.metrics[k] for k in ("tsnr", "fd_mean", "fd_perc", "gsr_y")]).all()
    assert np.isnan([m.metrics[k] for k in ("dvars_std", "dvars_nstd", "dvars_vstd")]).all()


def test_dvars_are_nipypes_compute_dvars_as_mriqc_calls_it(run):
    """ComputeDVARS(save_all=True) with its defaults, as MRIQC's workflow: remove_zerovariance,
    variance_tol 1e-7, intensities scaled to an in-mask median of 1000; mean of each column."""
    res = confounds.ComputeDVARS(in_file=run["bold"], in_mask=run["mask"], save_all=True,
                                 save_plot=False).run()
    std, nstd, vstd = np.loadtxt(res.outputs.out_all, skiprows=1, usecols=range(3)).mean(axis=0)
    mm = run["m"].metrics
    assert mm["dvars_std"] == pytest.approx(std, rel=REL)
    assert mm["dvars_nstd"] == pytest.approx(nstd, rel=REL)
    assert mm["dvars_vstd"] == pytest.approx(vstd, rel=REL)
    # the scaling only moves nstd: unscaled, it is nipype's intensity_normalization=0 times
    # 1000 / the in-mask median
    raw = confounds.compute_dvars(run["bold"], run["mask"], remove_zerovariance=True,
                                  intensity_normalization=0)
    median = float(np.median(run["data"][run["m"].head]))
    assert mm["dvars_nstd"] == pytest.approx(raw[1].mean() * 1000.0 / median, rel=REL)
    assert mm["dvars_std"] == pytest.approx(raw[0].mean(), rel=REL)


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
    # MRIQC's FunctionalQC: num * 100 / (len(fd) + 1), i.e. over the T volumes
    assert mm["fd_perc"] == pytest.approx(num * 100.0 / (len(fd) + 1))
    assert len(fd) + 1 == run["data"].shape[3]
