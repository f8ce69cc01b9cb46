"""The embedded default grader: grades from the volume-wise metrics, no image model.

This first version scores runs with transparent thresholds on scale-free metrics
(``metric-thresholds-v0``); the trained scikit-learn model (issue 4) replaces it and keeps
this interface.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

from mmrqa_bids.grading.base import Grade, GradeRequest, confidence_from
from mmrqa_bids.grading.narrative import render_narrative
from mmrqa_bids.settings import Grading

MODEL_ID = "metric-thresholds-v0"
# (metric, good-at-or-above, bad-below) per run family; log-scale soft thresholds.
THRESHOLDS = {"anat": ("snr1", 15.0, 6.0), "func": ("tsnr", 30.0, 15.0)}


@dataclass
class ClassifierGrader:
    backend: str = "classifier"

    @classmethod
    def from_settings(cls, settings: Grading) -> "ClassifierGrader":
        return cls()

    def provenance(self) -> dict[str, Any]:
        return {"backend": self.backend, "model_id": MODEL_ID, "adapter": None,
                "adapter_checksum": None}

    def grade(self, requests: Sequence[GradeRequest]) -> list[Grade]:
        return [self._grade_one(r) for r in requests]

    def _grade_one(self, req: GradeRequest) -> Grade:
        family = "func" if req.suffix == "bold" else "anat"
        name, good_at, bad_below = THRESHOLDS[family]
        value = max(req.metrics[name], 1e-6)
        # Position on a log scale: 1 at the Good threshold, 0 at the Bad threshold.
        pos = (math.log(value) - math.log(bad_below)) / (math.log(good_at) - math.log(bad_below))
        scores = {"Good": 4 * (pos - 1), "Medium": -4 * abs(pos - 0.5) + 1, "Bad": -4 * pos}
        top = max(scores.values())
        exps = {k: math.exp(v - top) for k, v in scores.items()}
        total = sum(exps.values())
        probs = {k: v / total for k, v in exps.items()}
        label = max(probs, key=probs.get)
        conf = confidence_from(probs)
        artifact = "none" if label == "Good" else "noise"
        narrative = render_narrative(
            label=label, confidence=conf, metrics=req.metrics, drivers=[name],
            artifact_type=artifact, artifact_likelihood=1 - probs["Good"],
            signal_sentence=f"{name} is {value:.3g} (Good from {good_at:g}, Bad below {bad_below:g}).")
        artifacts = [] if artifact == "none" else [{"type": artifact, "likelihood": 1 - probs["Good"]}]
        return Grade(label=label, probabilities=probs, confidence=conf, artifacts=artifacts,
                     narrative=narrative)
