"""Graders: the embedded metric classifier (default) and the multimodal LLM backends."""
from __future__ import annotations

import importlib
from types import ModuleType

from mmrqa_bids.grading.base import (LABELS, Grade, Grader, GraderError, GradeRequest)
from mmrqa_bids.settings import Grading
from mmrqa_bids.vocabulary import GRADERS

__all__ = ["LABELS", "Grade", "Grader", "GraderError", "GradeRequest", "check_grader",
           "make_grader"]


def _backend(name: str) -> tuple[str, str]:
    """(module, class) of a grader in :data:`mmrqa_bids.vocabulary.GRADERS`."""
    if name not in GRADERS:
        raise GraderError(f"unknown grader {name!r}")
    module, cls = GRADERS[name].split(":")
    return module, cls


def _import_backend(name: str) -> ModuleType:
    """The backend module of a grader; a missing optional dependency is a GraderError."""
    module, _ = _backend(name)
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise GraderError(f"grader {name!r} needs the [llm] extra "
                          f"(pip install 'mmrqa[llm]'): {exc}") from exc


def check_grader(settings: Grading) -> None:
    """Cheap validation before the workflow starts (paths, URLs); no model is loaded.

    Raises GraderError with a one-line message; each backend module may define
    ``check(settings)``.
    """
    check = getattr(_import_backend(settings.grader), "check", None)
    if check is not None:
        check(settings)


def make_grader(settings: Grading) -> Grader:
    """Build the grader named in the settings. Heavy ML imports happen only here, lazily."""
    module, cls = _backend(settings.grader)
    return getattr(importlib.import_module(module), cls).from_settings(settings)
