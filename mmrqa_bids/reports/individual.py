"""The individual (per-run) HTML report: one self-contained file, images embedded.

The metrics table sits between two HTML comments (:data:`METRICS_START`,
:data:`METRICS_END`) so that the group level can re-render it with each value's percentile
in the dataset (:func:`inject_dataset_context`) without the mosaics, which live only in the
participant level's working directory. The grade header with the assessment, and the QA
dialogue, sit between markers of their own, so that the group level writes the dataset grade
and its basis into the report the same way (:func:`inject_grade`). Everything user- or model-provided is autoescaped,
so those markers cannot be forged by a narrative or a file name.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import re
from pathlib import Path
from typing import Any, Mapping

from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.reports.mosaics import VIEWS
from mmrqa_bids.reports.stats import MIN_RUNS_FOR_OUTLIERS, ROBUST_Z_CUTOFF
from mmrqa_bids.resources import template_env
from mmrqa_bids.vocabulary import ENTITY_ORDER, LABELS, NARRATIVE_SECTIONS, SECTION_TITLES

# The three questions every grader answers (as in the MLLM graders' prompt), shown with the
# narrative as a question/answer dialogue.
QA_QUESTIONS = {
    "classification": "What is the quality grade of this run (Good, Medium or Bad), and which "
                      "features of the image and the metrics support it?",
    "artifact": "Which artifact dominates, if any, what causes it and how does it appear here?",
    "analysis": "Can this run be used for analysis, and what should change in the acquisition "
                "protocol?",
}
METRICS_START = "<!-- mmrqa:metrics -->"
METRICS_END = "<!-- /mmrqa:metrics -->"
GRADE_START, GRADE_END = "<!-- mmrqa:grade -->", "<!-- /mmrqa:grade -->"
DIALOGUE_START, DIALOGUE_END = "<!-- mmrqa:dialogue -->", "<!-- /mmrqa:dialogue -->"

DatasetContext = Mapping[str, Mapping[str, Any]]  # metric -> percentile, robust_z, outlier, median, n


def _data_uri(path: str | Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


def _signed(value: float) -> str:
    """``+1.2`` / ``-0.4``; never ``-0.0``."""
    text = f"{value:+.1f}"
    return "+0.0" if text == "-0.0" else text


def _metrics_context(document: dict[str, Any], context: DatasetContext | None) -> dict[str, Any]:
    n = max((c.get("n", 0) for c in (context or {}).values()), default=0)
    shown = {name: {**c, "z_text": _signed(float(c["robust_z"]))} for name, c in (context or {}).items()}
    return {
        "meta": document["bids_meta"],
        "metrics": list(document.get("metrics", {}).items()),
        "context": shown or None,
        "context_n": n,
        "context_date": _dt.date.today().isoformat(),
        "cutoff": ROBUST_Z_CUTOFF,
        "min_runs": MIN_RUNS_FOR_OUTLIERS,
    }


def _grade_context(document: dict[str, Any]) -> dict[str, Any]:
    """What the grade header, the assessment and the QA dialogue show: the grade, its basis
    (``dataset``: the cohort it was graded against; ``model``: why), the narrative."""
    meta = {"source": None, "checksum": None, "shape": None, "voxel_size_mm": None,
            **document["bids_meta"]}
    grade = document.get("grade") or {}
    prov = {"software": "mmrqa", "version": "", "backend": None, "model_id": None,
            "adapter": None, "adapter_checksum": None, **(document.get("provenance") or {})}
    probs = grade.get("probabilities") or {}
    model = grade.get("model_grade") or {}
    basis = grade.get("basis") or "model"
    cohort = grade.get("cohort") or None
    return dict(
        meta=meta,
        parse_error=document.get("parse_error"),
        label=grade.get("label"),
        confidence=float(grade.get("confidence") or 0.0),
        probabilities=[(k, float(probs[k])) for k in LABELS if isinstance(probs.get(k), (int, float))],
        entities=[(k, meta[k]) for k in ENTITY_ORDER if meta.get(k) not in (None, "")],
        prov=prov,
        basis=basis,
        basis_reason=grade.get("basis_reason"),
        cohort=cohort,
        cohort_member=bool(cohort) and cohort.get("by") != "reference",
        grade_model_id=grade.get("model_id") if basis == "dataset" else None,
        model_label=model.get("label"),
        model_confidence=float(model.get("confidence") or 0.0),
        cohort_warnings=list(grade.get("cohort_warnings") or []),
        answerer="dataset grade" if basis == "dataset" else (prov.get("backend") or "grader"),
        artifacts=[a for a in document.get("artifacts") or [] if isinstance(a, dict)],
        narrative=document.get("narrative") or {},
        sections=[(k, SECTION_TITLES[k]) for k in NARRATIVE_SECTIONS],
        dialogue=[(k, SECTION_TITLES[k], QA_QUESTIONS[k]) for k in NARRATIVE_SECTIONS],
    )


def render_individual(document: dict[str, Any], mosaic_paths: Mapping[str, str],
                      context: DatasetContext | None = None) -> str:
    """The report of one run from its derivative document and its mosaic PNGs
    (``mllm`` is skipped: it is the grader's input, not a report figure)."""
    images = {name: _data_uri(p) for name, p in mosaic_paths.items()
              if name != "mllm" and Path(p).is_file()}
    shown = _grade_context(document)
    settings = shown["prov"].get("settings")
    return template_env(html=True).get_template("report/individual.html.j2").render(
        **shown,
        raw_answer=document.get("raw_answer"),
        images=images,
        views=[v for v in VIEWS if v in images],
        timings=sorted((shown["prov"].get("timings_s") or {}).items()),
        settings_json=json.dumps(settings, indent=2, sort_keys=True, default=str) if settings else "",
        **{k: v for k, v in _metrics_context(document, context).items() if k != "meta"},
    )


def render_metrics_table(document: dict[str, Any], context: DatasetContext | None) -> str:
    """Only the metrics table (what the group level swaps into an existing report)."""
    return template_env(html=True).get_template("report/_metrics.html.j2").render(
        **_metrics_context(document, context))


def write_individual(path: Path, document: dict[str, Any], mosaic_paths: Mapping[str, str],
                     context: DatasetContext | None = None) -> Path:
    return atomic_write_text(path, render_individual(document, mosaic_paths, context))


def _replace_between(html: str, start_marker: str, end_marker: str, content: str) -> str | None:
    """``html`` with what lies between the two markers replaced (None when they are not
    there exactly once, in order)."""
    start, end = html.find(start_marker), html.find(end_marker)
    if start < 0 or end < start or html.count(start_marker) != 1:
        return None
    return html[:start + len(start_marker)] + "\n" + content + "\n" + html[end:]


def _with_grade(html: str, document: dict[str, Any]) -> str | None:
    """``html`` with the grade header, assessment, QA dialogue and title re-rendered from
    ``document``; None when a marker is missing."""
    env = template_env(html=True)
    shown = _grade_context(document)
    html = _replace_between(html, GRADE_START, GRADE_END,
                            env.get_template("report/_grade.html.j2").render(**shown))
    html = html and _replace_between(html, DIALOGUE_START, DIALOGUE_END,
                                     env.get_template("report/_dialogue.html.j2").render(**shown))
    if html is None:
        return None
    title = env.from_string("<title>mmrqa: {{ name }} ({{ label or 'unparsed' }})</title>").render(
        name=shown["meta"]["bids_name"], label=shown["label"])
    return re.sub(r"<title>.*?</title>", lambda _: title, html, count=1, flags=re.S)


def inject_grade(path: Path, document: dict[str, Any],
                 context: DatasetContext | None = None) -> bool:
    """Re-render the grade header, assessment, QA dialogue and title of the report at
    ``path`` from ``document`` (the group level's dataset grade and its basis), and with
    ``context`` the metrics table too (:func:`inject_dataset_context`), in one rewrite.
    Returns False (and leaves the file alone) when the report does not exist or lacks the
    markers; an unchanged report is not rewritten."""
    path = Path(path)
    try:
        old = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    html = _with_grade(old, document)
    if html is not None and context is not None:
        html = _replace_between(html, METRICS_START, METRICS_END,
                                render_metrics_table(document, context))
    if html is None:
        return False
    if html != old:
        atomic_write_text(path, html)
    return True


def inject_dataset_context(path: Path, document: dict[str, Any], context: DatasetContext) -> bool:
    """Replace the metrics table of the report at ``path`` with one that shows the dataset
    context. Returns False (and leaves the file alone) when the report does not exist or
    was not written by this version of mmrqa (no markers)."""
    path = Path(path)
    try:
        html = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return False
    start, end = html.find(METRICS_START), html.find(METRICS_END)
    if start < 0 or end < start or html.count(METRICS_START) != 1:
        return False
    table = render_metrics_table(document, context)
    new = html[:start + len(METRICS_START)] + "\n" + table + "\n" + html[end:]
    atomic_write_text(path, new)
    return True
