"""Template narratives grounded in the metric values (used by the classifier grader)."""
from __future__ import annotations

from typing import Any

from mmrqa_bids.resources import template_env

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

USABILITY = {
    "Good": ("Signal and contrast support quantitative analysis.",
             "Suitable for segmentation, morphometry and registration without special handling."),
    "Medium": ("Signal or contrast is degraded but anatomy remains identifiable.",
               "Usable for visual reading and robust pipelines; check segmentations and consider excluding it from sensitive morphometry."),
    "Bad": ("Signal quality is compromised to a degree that affects anatomy.",
            "Not recommended for quantitative analysis; re-acquisition is advised."),
}


def describe_metrics(metrics: dict[str, float], names: list[str]) -> str:
    return ", ".join(f"{n} = {metrics[n]:.3g}" for n in names if n in metrics) or "the metrics"


def render_narrative(*, label: str, confidence: float, metrics: dict[str, float],
                     drivers: list[str], artifact_type: str, artifact_likelihood: float,
                     signal_sentence: str) -> dict[str, str]:
    facts = ARTIFACT_FACTS.get(artifact_type, {})
    context: dict[str, Any] = {
        "label": label,
        "confidence": confidence,
        "signal_sentence": signal_sentence,
        "usability_sentence": USABILITY[label][0],
        "usability_advice": USABILITY[label][1],
        "protocol_advice": facts.get("protocol", "No protocol change is indicated.") if label != "Good"
        else "No protocol change is indicated.",
        "artifact_type": artifact_type,
        "artifact_likelihood": artifact_likelihood,
        "artifact_cause": facts.get("cause", ""),
        "artifact_features": facts.get("features", ""),
        "drivers": describe_metrics(metrics, drivers),
    }
    module = template_env(html=False).get_template("narrative/classifier.j2").make_module(context)
    return {
        "classification": str(module.classification()).strip(),
        "artifact": str(module.artifact()).strip(),
        "analysis": str(module.analysis()).strip(),
    }
