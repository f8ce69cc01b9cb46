"""Template narratives grounded in the metric values (used by the classifier grader).

The three MMRQA sections (``classification``: grade, signal effects, usability;
``artifact``: type, cause, visible features; ``analysis``: downstream usability and
protocol advice) are rendered from ``templates/narrative/classifier.j2``. Every number in
the text is formatted by :func:`format_value`, so a test (or a reader) can find the exact
metric value in the sentence.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from mmrqa_bids.resources import template_env
from mmrqa_bids.vocabulary import family_of


#: Cause, visible features and protocol advice of each of :data:`mmrqa_bids.vocabulary.ARTIFACTS`
#: (this order is the one the MLLM prompts list the types in).
ARTIFACT_FACTS: dict[str, dict[str, str]] = {
    "motion": {
        "cause": "subject movement during acquisition corrupts k-space lines (inconsistent phase)",
        "features": "ringing and ghost copies of edges along the phase-encoding direction, blurred tissue boundaries",
        "protocol": "Re-acquire with head padding and instructions; consider PROPELLER/BLADE or prospective motion correction (navigators).",
    },
    "ghosting": {
        "cause": "periodic signal inconsistencies (Nyquist/N/2 ghosts from eddy currents, or pulsation)",
        "features": "faint shifted copies of the head in the background along the phase-encoding axis",
        "protocol": "Check the phase-encoding direction and gradient calibration; saturation bands reduce flow ghosts.",
    },
    "noise": {
        "cause": "low signal relative to thermal noise (coil, voxel size, acceleration)",
        "features": "grainy tissue, poor grey/white contrast, bright speckle in the background",
        "protocol": "Use a head coil with more channels, larger voxels or more averages; avoid excessive acceleration.",
    },
    "blur": {
        "cause": "loss of high spatial frequencies (low-pass filtering, long echo trains, slight motion)",
        "features": "soft grey/white boundaries and reduced sharpness",
        "protocol": "Review the reconstruction filter and echo-train length.",
    },
    "spike": {
        "cause": "a single corrupted k-space point (RF spike from electrostatic discharge or hardware)",
        "features": "a herringbone stripe pattern over the whole image",
        "protocol": "Report to the site physicist; inspect the scanner room for sources of discharge.",
    },
    "inhomogeneity": {
        "cause": "a smooth bias field from coil sensitivity or B1 inhomogeneity",
        "features": "slowly varying brightness across the head",
        "protocol": "Enable prescan normalisation; apply N4 bias-field correction before analysis.",
    },
    "aliasing": {
        "cause": "a field of view smaller than the object along the phase-encoding axis",
        "features": "wrap-around of the nose or occiput onto the opposite side of the image",
        "protocol": "Enlarge the field of view or use phase oversampling.",
    },
}

#: Protocol advice for a bold run (an EPI time series) where it differs from a structural
#: scan's (:data:`ARTIFACT_FACTS`): PROPELLER does not exist for EPI, and an EPI's ghosts and
#: blur have causes of their own.
BOLD_PROTOCOL: dict[str, str] = {
    "motion": "Re-acquire with head padding and instructions; consider prospective motion correction or real-time motion feedback. In analysis, regress the motion parameters and censor (scrub) high-motion volumes.",
    "ghosting": "Check the EPI phase-correction (reference) scan and the gradient calibration; Nyquist ghosts grow with eddy currents and field drift.",
    "noise": "Use a head coil with more channels, larger voxels or multi-echo EPI; avoid excessive in-plane or multiband acceleration.",
    "blur": "Shorten the EPI readout (in-plane acceleration, partial Fourier with care) and review the reconstruction filter.",
}

#: (usability sentence, usability advice) per family and grade.
USABILITY: dict[str, dict[str, tuple[str, str]]] = {
    "anat": {
        "Good": ("Signal and contrast support quantitative analysis.",
                 "Suitable for segmentation, morphometry and registration without special handling."),
        "Medium": ("Signal or contrast is degraded but anatomy remains identifiable.",
                   "Usable for visual reading and robust pipelines; check segmentations and consider excluding it from sensitive morphometry."),
        "Bad": ("Signal quality is compromised to a degree that affects anatomy.",
                "Not recommended for quantitative analysis; re-acquisition is advised."),
    },
    "bold": {
        "Good": ("Temporal and spatial signal support functional analysis.",
                 "Suitable for task and resting-state analysis (registration to the anatomy, time-series modelling) without special handling."),
        "Medium": ("The time series or the mean image is degraded, but the brain's signal remains usable.",
                   "Usable with care: inspect the mean EPI and the carpet plot, check the registration to the anatomy, and include motion and physiological confound regressors."),
        "Bad": ("The time series is compromised to a degree that affects the brain's signal.",
                "Not recommended for functional analysis; exclude the run or re-acquire it."),
    },
}


def usability(label: str, suffix: str) -> tuple[str, str]:
    """(usability sentence, usability advice) of a grade for a run of this suffix."""
    return USABILITY[family_of(suffix)][label]


def artifact_facts(artifact: str | None, suffix: str) -> dict[str, str]:
    """Cause, visible features and protocol advice of an artifact for a run of this suffix
    ({} for no or an unknown artifact)."""
    facts = dict(ARTIFACT_FACTS.get(artifact or "", {}))
    if facts and family_of(suffix) == "bold" and artifact in BOLD_PROTOCOL:
        facts["protocol"] = BOLD_PROTOCOL[artifact]
    return facts


ARTIFACT_NAMES = {
    "motion": "motion", "ghosting": "ghosting", "noise": "noise", "blur": "blurring",
    "spike": "spike (herringbone)", "inhomogeneity": "intensity inhomogeneity (bias field)",
    "aliasing": "aliasing (wrap-around)",
}


@dataclass(frozen=True)
class Driver:
    """A metric that drove the decision: its value, the range over clean training runs
    (5th-95th percentile) and its robust distance from them (z, IQR units)."""

    name: str
    value: float
    low: float
    high: float
    z: float

    @property
    def direction(self) -> str:
        if self.value > self.high:
            return "above"
        if self.value < self.low:
            return "below"
        return "within"


def format_value(value: float) -> str:
    """Three significant digits, no exponent for everyday magnitudes (``12.3``, ``0.0451``)."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.3g}"
    return f"{float(f'{value:.3g}'):g}"


def describe_metrics(metrics: dict[str, float], names: list[str]) -> str:
    return ", ".join(f"{n} = {format_value(metrics[n])}" for n in names if n in metrics) \
        or "the metrics"


def render_narrative(*, label: str, confidence: float, drivers: Sequence[Driver],
                     artifacts: Sequence[dict[str, Any]], model_id: str,
                     suffix: str = "T1w", outside: Sequence[Driver] = ()) -> dict[str, str]:
    """The three narrative sections for one graded run.

    ``drivers``: the metrics furthest from clean acquisitions (most deviant first);
    ``artifacts``: ``[{"type", "likelihood"}]``, most likely first (may be empty);
    ``outside``: metrics outside every training run's range (low/high = that range).
    """
    main = artifacts[0] if artifacts else None
    facts = artifact_facts(main["type"], suffix) if main else {}
    sentence, advice = usability(label, suffix)
    context: dict[str, Any] = {
        "label": label,
        "confidence": confidence,
        "suffix": suffix,
        "model_id": model_id,
        "drivers": [{"name": d.name, "value": format_value(d.value), "low": format_value(d.low),
                     "high": format_value(d.high), "direction": d.direction} for d in drivers],
        "deviant": [d.name for d in drivers if d.direction != "within"],
        "outside": [{"name": d.name, "value": format_value(d.value), "low": format_value(d.low),
                     "high": format_value(d.high)} for d in outside],
        "usability_sentence": sentence,
        "usability_advice": advice,
        "main_artifact": None if main is None else {
            "type": main["type"], "name": ARTIFACT_NAMES.get(main["type"], main["type"]),
            "likelihood": main["likelihood"], "cause": facts.get("cause", "unknown"),
            "features": facts.get("features", "unknown"),
            "protocol": facts.get("protocol", "No protocol change is indicated.")},
        "others": [{"name": ARTIFACT_NAMES.get(a["type"], a["type"]),
                    "likelihood": a["likelihood"]} for a in artifacts[1:]],
    }
    module = template_env(html=False).get_template("narrative/classifier.j2").make_module(context)
    return {
        "classification": " ".join(str(module.classification()).split()),
        "artifact": " ".join(str(module.artifact()).split()),
        "analysis": " ".join(str(module.analysis()).split()),
    }
