"""The MMRQA answer format: :func:`format_answer` writes it (training targets),
:func:`parse_answer` reads a model's text back into a validated :class:`Grade`.

Format (one key per line; the three narrative sections may run over several lines)::

    Grade: Medium
    Artifacts: motion (0.72); noise (0.20)
    Classification: ...
    Artifact: ...
    Analysis: ...

``Artifacts:`` is ``none`` for a clean run. Keys are matched case-insensitively and may be
wrapped in markdown emphasis (``**Grade:**``), which chat models often add. An answer
without a grade among Good/Medium/Bad, or without one of the three sections, is not a
grade: it is returned with ``label=None``, the reason in ``parse_error`` and the raw text,
and is never replaced by a guess.
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping, Sequence

from mmrqa_bids.grading.base import LABELS, NARRATIVE_SECTIONS, Grade, confidence_from

_KEYS = ("grade", "artifacts") + NARRATIVE_SECTIONS
_KEY_RE = re.compile(
    r"^[ \t>#*_-]*(?P<key>grade|artifacts|classification|artifact|analysis)[ \t*_]*:[ \t*_]*",
    re.IGNORECASE | re.MULTILINE)
_LABEL_RE = re.compile(r"\b(good|medium|bad)\b", re.IGNORECASE)
_ARTIFACT_RE = re.compile(r"^\s*(?P<type>[A-Za-z][A-Za-z _/-]*?)\s*(?:\(\s*(?P<p>[0-9.]+)\s*\))?\s*$")


def format_answer(label: str, artifacts: Sequence[Mapping[str, Any]],
                  narrative: Mapping[str, str]) -> str:
    """The answer text a model should produce for this grade (the training target)."""
    if label not in LABELS:
        raise ValueError(f"grade label must be one of {LABELS}, got {label!r}")
    missing = [s for s in NARRATIVE_SECTIONS if not str(narrative.get(s, "")).strip()]
    if missing:
        raise ValueError(f"narrative section(s) missing: {', '.join(missing)}")
    arts = "; ".join(f"{a['type']} ({float(a['likelihood']):.2f})" for a in artifacts) or "none"
    lines = [f"Grade: {label}", f"Artifacts: {arts}"]
    lines += [f"{s.capitalize()}: {' '.join(str(narrative[s]).split())}" for s in NARRATIVE_SECTIONS]
    return "\n".join(lines)


def split_sections(text: str) -> dict[str, str]:
    """Key -> text up to the next key (first occurrence of each key wins)."""
    matches = list(_KEY_RE.finditer(text))
    sections: dict[str, str] = {}
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        key = match.group("key").lower()
        sections.setdefault(key, " ".join(text[match.end():end].replace("*", " ").split()))
    return sections


def parse_artifacts(value: str) -> list[dict[str, Any]]:
    """``"motion (0.7); noise (0.2)"`` -> ``[{"type": "motion", "likelihood": 0.7}, ...]``,
    most likely first; ``none`` -> ``[]``. A missing likelihood is recorded as ``None``."""
    items: list[dict[str, Any]] = []
    for part in re.split(r"[;,]", value):
        match = _ARTIFACT_RE.match(part)
        if not match or match.group("type").strip().lower() in ("none", "no artifact", "n/a", ""):
            continue
        p = match.group("p")
        likelihood = min(max(float(p), 0.0), 1.0) if p and _is_number(p) else None
        items.append({"type": match.group("type").strip().lower(), "likelihood": likelihood})
    return sorted(items, key=lambda a: -(a["likelihood"] if a["likelihood"] is not None else -1))


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def normalise_probabilities(scores: Mapping[str, float] | None) -> dict[str, float]:
    """Label probabilities summing to 1 (empty when the backend gave none)."""
    if not scores:
        return {}
    clean = {k: max(float(v), 0.0) for k, v in scores.items() if k in LABELS and math.isfinite(float(v))}
    total = sum(clean.values())
    return {k: clean.get(k, 0.0) / total for k in LABELS} if total > 0 else {}


def failed_grade(reason: str, raw: str | None = None) -> Grade:
    """A run the grader could not grade: no label, empty narrative sections, the reason and
    whatever the model said."""
    return Grade(label=None, probabilities={}, confidence=0.0, artifacts=[],
                 narrative=dict.fromkeys(NARRATIVE_SECTIONS, ""), raw=raw, parse_error=reason)


def parse_answer(text: str, label_probabilities: Mapping[str, float] | None = None) -> Grade:
    """Model text -> :class:`Grade`; ``label=None`` with ``parse_error`` when it does not parse.

    ``label_probabilities`` are the backend's probabilities of the three labels at the
    label position (from the label-token logits); without them the grade carries no
    probabilities and a confidence of 0 rather than an invented one.
    """
    raw = text if isinstance(text, str) else ""
    sections = split_sections(raw)
    problems = []
    label = None
    grade_text = sections.get("grade")
    if grade_text is None:
        problems.append("no 'Grade:' line")
    else:
        found = _LABEL_RE.search(grade_text)
        if found is None:
            problems.append(f"grade {grade_text[:40]!r} is not Good, Medium or Bad")
        else:
            label = found.group(1).capitalize()
    missing = [s for s in NARRATIVE_SECTIONS if not sections.get(s)]
    if missing:
        problems.append("missing section(s): " + ", ".join(missing))
    if problems:
        return failed_grade("unparseable answer: " + "; ".join(problems), raw)
    probabilities = normalise_probabilities(label_probabilities)
    return Grade(label=label, probabilities=probabilities,
                 confidence=confidence_from(probabilities),
                 artifacts=parse_artifacts(sections.get("artifacts", "none")),
                 narrative={s: sections[s] for s in NARRATIVE_SECTIONS}, raw=raw)
