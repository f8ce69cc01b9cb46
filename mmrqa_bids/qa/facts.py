"""What is known about one training example, and how its metrics compare to clean runs.

The answers of every QA source are grounded in these facts only: the expert (or simulated)
label, the artifact when one is known, and the metric values with their deviation from the
runs rated Good in the same training set. Nothing here is invented from outside the data.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import median
from typing import Iterable, Mapping

from mmrqa_bids.grading.narrative import ARTIFACT_FACTS

#: +1 when a higher value means better quality, -1 when lower is better (MRQy/MRIQC
#: definitions). Metrics not listed are described as higher/lower than usual, without a
#: judgement.
METRIC_DIRECTION: dict[str, int] = {
    **{name: +1 for name in (
        "snr1", "snr", "snr_total", "snr_csf", "snr_gm", "snr_wm", "snrd_total", "snrd_csf",
        "snrd_gm", "snrd_wm", "cnr", "fber", "tsnr", "wm2max", "mrqy_SNR1", "mrqy_SNR2",
        "mrqy_SNR3", "mrqy_SNR4", "mrqy_CNR", "mrqy_FBER", "mrqy_PSNR")},
    **{name: -1 for name in (
        "cjv", "efc", "qi_1", "fwhm_avg", "inu_range", "dvars_std", "dvars_vstd", "fd_mean",
        "fd_perc", "aor", "gcor", "mrqy_CJV", "mrqy_EFC")},
}

#: Spellings of artifact names found in rating files and in the artifacts module, mapped to
#: the vocabulary of :data:`mmrqa_bids.grading.narrative.ARTIFACT_FACTS`.
ARTIFACT_ALIASES: dict[str, str] = {
    "ghost": "ghosting", "ghosts": "ghosting", "nyquist": "ghosting",
    "bias": "inhomogeneity", "biasfield": "inhomogeneity", "bias_field": "inhomogeneity",
    "bias field": "inhomogeneity", "inu": "inhomogeneity",
    "wrap": "aliasing", "wraparound": "aliasing", "wrap-around": "aliasing",
    "rician": "noise", "gaussian": "noise", "snr": "noise",
    "spikes": "spike", "smoothing": "blur", "blurring": "blur", "movement": "motion",
}
#: z beyond which a metric is said to deviate from the runs rated Good.
DEVIATION_Z = 2.0


def normalise_artifact(name: str | None) -> str | None:
    """Map a free-text artifact name onto the shared vocabulary; ``None`` for none/unknown
    spellings of "no artifact". An unknown name is kept (lower case) rather than guessed."""
    if name is None:
        return None
    key = " ".join(str(name).strip().lower().split())
    if key in ("", "none", "n/a", "no", "clean"):
        return None
    key = ARTIFACT_ALIASES.get(key, key)
    return key if key in ARTIFACT_FACTS else ARTIFACT_ALIASES.get(key.replace(" ", ""), key)


@dataclass(frozen=True)
class Reference:
    """Robust location and scale of one metric over the runs rated Good.

    scale = 1.4826 * MAD (the normal-consistent median absolute deviation), floored at 1% of
    |median| so that a near-constant metric does not make every difference look huge.
    """
    median: float
    scale: float
    n: int


@dataclass(frozen=True)
class Deviation:
    """z = (value - median) / scale against the runs rated Good."""
    name: str
    value: float
    median: float
    z: float
    direction: int  # METRIC_DIRECTION, 0 when unknown

    @property
    def worse(self) -> bool | None:
        """Does the deviation point to lower quality? ``None`` without a known direction."""
        return None if self.direction == 0 else (self.z * self.direction) < 0


def metric_reference(good_metrics: Iterable[Mapping[str, float]]) -> dict[str, Reference]:
    """Per-metric :class:`Reference` over the metrics of the runs rated Good (finite values)."""
    values: dict[str, list[float]] = {}
    for metrics in good_metrics:
        for name, value in metrics.items():
            if isinstance(value, (int, float)) and math.isfinite(float(value)):
                values.setdefault(name, []).append(float(value))
    out = {}
    for name, vals in values.items():
        med = median(vals)
        mad = median(abs(v - med) for v in vals)
        out[name] = Reference(median=med, scale=max(1.4826 * mad, 0.01 * abs(med), 1e-12),
                              n=len(vals))
    return out


def deviations(metrics: Mapping[str, float], reference: Mapping[str, Reference],
               top: int = 3, min_z: float = DEVIATION_Z) -> tuple[Deviation, ...]:
    """The ``top`` metrics furthest from the Good runs (|z| >= ``min_z``), largest first.

    Only metrics with a known quality direction are considered when any has deviated, so
    that the text names quality metrics rather than intensity statistics.
    """
    devs = []
    for name, value in metrics.items():
        ref = reference.get(name)
        if ref is None or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            continue
        z = (float(value) - ref.median) / ref.scale
        if abs(z) >= min_z:
            devs.append(Deviation(name, float(value), ref.median, z,
                                  METRIC_DIRECTION.get(name, 0)))
    directed = [d for d in devs if d.direction != 0]
    chosen = directed or devs
    return tuple(sorted(chosen, key=lambda d: -abs(d.z))[:top])


@dataclass(frozen=True)
class QAFacts:
    """One training example as the QA sources see it."""

    example_id: str
    suffix: str
    label: str  # Good / Medium / Bad
    metrics: dict[str, float]
    artifact: str | None = None  # normalised type, None when clean or not named
    severity: str | None = None  # simulated artifacts only: mild / moderate / severe
    origin: str = "expert"  # "expert" (rated run) or "simulated" (degraded copy)
    notes: str | None = None  # the rater's notes, given to an LLM source as context only
    deviations: tuple[Deviation, ...] = field(default=())

    def key_metrics(self, names: Iterable[str] = ("snr1", "snr_total", "cnr", "cjv", "efc",
                                                   "fber", "tsnr", "dvars_std", "fd_mean"),
                    limit: int = 3) -> list[tuple[str, float]]:
        """A few quality metrics present in this run, for sentences that cite values."""
        out = [(n, float(self.metrics[n])) for n in names if n in self.metrics]
        return out[:limit]
