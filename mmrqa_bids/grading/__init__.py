"""Graders: the embedded metric classifier (default) and the multimodal LLM backends."""
from __future__ import annotations

from mmrqa_bids.grading.base import (LABELS, Grade, Grader, GraderError, GradeRequest)
from mmrqa_bids.settings import Grading

__all__ = ["LABELS", "Grade", "Grader", "GraderError", "GradeRequest", "check_grader",
           "make_grader"]


GRADER_MODULES = {
    "classifier": "mmrqa_bids.grading.classifier",
    "llava": "mmrqa_bids.grading.llava",
    "openai": "mmrqa_bids.grading.openai_server",
}


def check_grader(settings: Grading) -> None:
    """Cheap validation before the workflow starts (paths, URLs); no model is loaded.

    Raises GraderError with a one-line message; each backend module may define
    ``check(settings)``.
    """
    import importlib

    if settings.grader not in GRADER_MODULES:
        raise GraderError(f"unknown grader {settings.grader!r}")
    try:
        module = importlib.import_module(GRADER_MODULES[settings.grader])
    except ImportError as exc:
        raise GraderError(f"grader {settings.grader!r} needs the [llm] extra "
                          f"(pip install 'mmrqa[llm]'): {exc}") from exc
    check = getattr(module, "check", None)
    if check is not None:
        check(settings)


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
