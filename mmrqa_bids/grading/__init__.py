"""Graders: the embedded metric classifier (default) and the multimodal LLM backends."""
from __future__ import annotations

from mmrqa_bids.grading.base import (LABELS, Grade, Grader, GraderError, GradeRequest)
from mmrqa_bids.settings import Grading

__all__ = ["LABELS", "Grade", "Grader", "GraderError", "GradeRequest", "make_grader"]


def make_grader(settings: Grading) -> Grader:
    """Build the grader named in the settings. Heavy ML imports happen only here, lazily."""
    if settings.grader == "classifier":
        from mmrqa_bids.grading.classifier import ClassifierGrader
        return ClassifierGrader.from_settings(settings)
    if settings.grader == "llava":
        from mmrqa_bids.grading.llava import LlavaGrader  # noqa: F401  (needs the [llm] extra)
        return LlavaGrader.from_settings(settings)
    if settings.grader == "openai":
        from mmrqa_bids.grading.openai_server import OpenAIGrader
        return OpenAIGrader.from_settings(settings)
    raise GraderError(f"unknown grader {settings.grader!r}")
