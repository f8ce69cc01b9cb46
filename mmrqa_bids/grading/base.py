"""The grading contract every backend (metric classifier, LLaVA, OpenAI server) fulfils."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

from mmrqa_bids.vocabulary import LABELS, NARRATIVE_SECTIONS  # noqa: F401 (re-exported)


@dataclass(frozen=True)
class GradeRequest:
    """What a grader sees of one run."""

    bids_name: str
    suffix: str
    metrics: dict[str, float]
    mosaic: Path | None = None  # PNG slice mosaic for image-reading graders
    entities: dict[str, str] = field(default_factory=dict)
    #: the run against its study's other runs of the same protocol (``participant
    #: --reference``), quoted in the multimodal graders' prompt; None: no cohort known
    cohort_context: str | None = None


@dataclass(frozen=True)
class Grade:
    label: str | None  # None when a model answer could not be parsed
    probabilities: dict[str, float]
    confidence: float
    artifacts: list[dict[str, Any]]  # [{"type": ..., "likelihood": ...}], most likely first
    narrative: dict[str, str]  # classification / artifact / analysis
    raw: str | None = None  # the model's raw answer (MLLM graders)
    parse_error: str | None = None
    #: metrics outside every run the metric model was trained on (the grade extrapolates)
    outside_training: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.label is not None and self.label not in LABELS:
            raise ValueError(f"grade label must be one of {LABELS}, got {self.label!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Grader(Protocol):
    """Grades runs in batches; the model is loaded once per grader instance."""

    backend: str

    def grade(self, requests: Sequence[GradeRequest]) -> list[Grade]:
        ...

    def provenance(self) -> dict[str, Any]:
        """Backend, model id, adapter checksum and anything needed to reproduce a grade."""
        ...


class GraderError(Exception):
    """The grader cannot be set up (bad model path, unreachable server...): exit code 2."""


def confidence_from(probabilities: dict[str, float]) -> float:
    return float(max(probabilities.values())) if probabilities else 0.0
