"""The stable names of every metric :func:`mmrqa_bids.metrics.compute` returns.

Names follow MRIQC (Esteban et al., PLoS One 2017) where the definition matches, and MRQy
(Sadri et al., Med Phys 2020) with an ``mrqy_`` prefix for the slice-wise MRQy set.

``ANAT_FEATURES`` / ``FUNC_FEATURES`` are the metrics the graders should use: every one of
them is free of the intensity scale (gain, dtype), so a model trained on them does not
depend on the scanner's arbitrary units. The other metrics (means, ranges, percentiles in
scanner units, voxel counts) are reported but are not grading features.

The ``mrqy_*`` set is not among the features: it reproduces MRQy 0.0.3, whose per-slice
foreground thresholds w1 I + w2 255 equalise(I) mix the image's units with a fixed 0-255
scale, so even its ratio metrics change with the gain (measured on ROBEX's subject against
the same image at a tenth of its gain: SNR1 x0.71 and CV x0.90 at its own gain, x0.52 and
x0.64 at 8 times it). The shipped ``classifier_anat`` was retrained without them
(``mmrqa-metric-hgb-anat-r10-5aadc8a4``).
"""
from __future__ import annotations

TISSUES = ("csf", "gm", "wm")
SUMMARY_STATS = ("mean", "median", "stdv", "mad", "p05", "p95", "k", "n")

MRQY_NAMES = ("MEAN", "RNG", "VAR", "CV", "CPP", "PSNR", "SNR1", "SNR2", "SNR3", "SNR4",
              "CNR", "CVP", "CJV", "EFC", "FBER")
#: MRQy metrics whose per-slice formula is a ratio (free of the intensity scale for a given
#: foreground; MRQy's foreground itself depends on the scale, see above).
MRQY_SCALE_FREE = ("CV", "PSNR", "SNR1", "SNR2", "SNR3", "SNR4", "CNR", "CVP", "CJV", "EFC",
                   "FBER")

ANAT_FEATURES: tuple[str, ...] = (
    "snr_total", "snr_csf", "snr_gm", "snr_wm",
    "snrd_total", "snrd_csf", "snrd_gm", "snrd_wm",
    "cnr", "cjv", "efc", "fber", "wm2max",
    "inu_med", "inu_range", "qi_1", "fwhm_avg",
    "icvs_csf", "icvs_gm", "icvs_wm",
    "summary_bg_k", "summary_csf_k", "summary_gm_k", "summary_wm_k",
)

FUNC_FEATURES: tuple[str, ...] = (
    "tsnr", "dvars_std", "dvars_vstd", "gsr_x", "gsr_y", "aor", "gcor",
    "fd_mean", "fd_perc", "efc", "fber", "snr", "fwhm_avg",
)


def _summary(regions: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"summary_{r}_{s}" for r in regions for s in SUMMARY_STATS)


#: Every key of ``compute(img, suffix)`` for an anatomical run (T1w, T2w, FLAIR, ...).
#: ``snr1`` is MRQy's SNR1 over the whole volume (quoted in the QA pairs' key metrics);
#: graders train on ``ANAT_FEATURES`` (``mrqy_SNR1``/``snr_total``), not on it.
ANAT_METRICS: tuple[str, ...] = tuple(dict.fromkeys(
    ANAT_FEATURES + ("fwhm_x", "fwhm_y", "fwhm_z", "snr1", "fov_edge", "head_edge")
    + _summary(("bg",) + TISSUES) + tuple(f"mrqy_{n}" for n in MRQY_NAMES)))

#: Every key of ``compute(img, suffix)`` for a bold run.
FUNC_METRICS: tuple[str, ...] = tuple(dict.fromkeys(
    FUNC_FEATURES + ("dvars_nstd", "fd_num", "fwhm_x", "fwhm_y", "fwhm_z",
                     "qi_1", "inu_med", "inu_range", "fov_edge", "head_edge")
    + _summary(("fg", "bg")) + tuple(f"mrqy_{n}" for n in MRQY_NAMES)))
