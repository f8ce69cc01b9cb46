"""Group level: gather every run's derivative into ``group_<suffix>.tsv`` and its report."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from mmrqa_bids.bids import DatasetError
from mmrqa_bids.io import atomic_write_text
from mmrqa_bids.outputs import derivative_paths, read_derivative, read_failures

ENTITY_COLUMNS = ("subject", "session", "task", "acquisition", "run")
FIXED_COLUMNS = ("bids_name", *ENTITY_COLUMNS, "status", "grade", "p_good", "p_medium",
                 "p_bad", "confidence", "artifact", "outside_training", "grader", "error")


def collect_documents(output_dir: Path) -> list[dict[str, Any]]:
    """Every per-run derivative JSON under ``OUT/sub-*``; unreadable ones are skipped."""
    docs = []
    for path in derivative_paths(output_dir):
        try:
            doc = read_derivative(path)
        except (OSError, ValueError) as exc:
            print(f"[mmrqa] WARNING {path}: unreadable derivative ({exc}); skipped", flush=True)
            continue
        if doc is not None:
            doc["_path"] = str(path)
            docs.append(doc)
    return docs


def document_row(doc: dict[str, Any]) -> dict[str, Any]:
    meta, grade = doc["bids_meta"], doc["grade"]
    probs = grade.get("probabilities") or {}
    arts = doc.get("artifacts") or []
    row: dict[str, Any] = {
        "bids_name": meta["bids_name"],
        **{k: meta.get(k, "n/a") for k in ENTITY_COLUMNS},
        "status": "ok" if grade.get("label") else "unparsed",
        "grade": grade.get("label") or "n/a",
        "p_good": probs.get("Good", "n/a"),
        "p_medium": probs.get("Medium", "n/a"),
        "p_bad": probs.get("Bad", "n/a"),
        "confidence": grade.get("confidence", "n/a"),
        "artifact": arts[0]["type"] if arts else "none",
        "outside_training": ",".join(grade.get("outside_training") or []) or "n/a",
        "grader": doc.get("provenance", {}).get("backend", "n/a"),
        "error": doc.get("parse_error") or "n/a",
    }
    row.update(doc["metrics"])
    return row


def failure_row(fail: dict[str, Any]) -> dict[str, Any]:
    return {"bids_name": fail["bids_name"], **{k: fail.get(k, "n/a") for k in ENTITY_COLUMNS},
            "status": "failed", "grade": "n/a", "p_good": "n/a", "p_medium": "n/a",
            "p_bad": "n/a", "confidence": "n/a", "artifact": "n/a", "outside_training": "n/a",
            "grader": "n/a", "error": fail["error"]}


def group_tables(output_dir: Path, docs: list[dict[str, Any]] | None = None
                 ) -> dict[str, list[dict[str, Any]]]:
    """Suffix -> one row per run (derivative documents and failures), sorted by name."""
    tables: dict[str, list[dict[str, Any]]] = {}
    for doc in collect_documents(output_dir) if docs is None else docs:
        tables.setdefault(doc["bids_meta"]["suffix"], []).append(document_row(doc))
    for fail in read_failures(output_dir):
        tables.setdefault(fail["suffix"], []).append(failure_row(fail))
    for rows in tables.values():
        rows.sort(key=lambda r: r["bids_name"])
    return tables


def to_tsv(rows: list[dict[str, Any]]) -> str:
    metric_cols = sorted({k for r in rows for k in r} - set(FIXED_COLUMNS))
    columns = list(FIXED_COLUMNS) + metric_cols
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, delimiter="\t", lineterminator="\n",
                            restval="n/a")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _fmt(v) for k, v in row.items()})
    return buf.getvalue()


def _fmt(value: Any) -> Any:
    return f"{value:.6g}" if isinstance(value, float) else value


def run_group(output_dir: Path, modalities: tuple[str, ...], reports: bool = True) -> dict[str, Path]:
    """Write ``group_<suffix>.tsv`` (and ``.html``) for each suffix with runs; with reports,
    also show each run's percentiles within the dataset in its individual report."""
    docs = collect_documents(output_dir)
    tables = {s: rows for s, rows in group_tables(output_dir, docs).items() if s in modalities}
    if not tables:
        raise DatasetError(f"{output_dir}: no participant-level outputs found; run the participant level first")
    written = {}
    for suffix, rows in tables.items():
        tsv = output_dir / f"group_{suffix}.tsv"
        atomic_write_text(tsv, to_tsv(rows))
        written[f"{suffix}.tsv"] = tsv
        if reports:
            written[f"{suffix}.html"] = _write_reports(output_dir, suffix, rows,
                                                       [d for d in docs if d["bids_meta"]["suffix"] == suffix])
    return written


def _write_reports(output_dir: Path, suffix: str, rows: list[dict[str, Any]],
                   docs: list[dict[str, Any]]) -> Path:
    """The group report, and the dataset context injected into each individual report."""
    from mmrqa_bids.reports import stats
    from mmrqa_bids.reports.group import NON_METRIC_COLUMNS, write_group_report
    from mmrqa_bids.reports.individual import inject_dataset_context

    measured = [r for r in rows if r.get("status") != "failed"]
    context = stats.dataset_context(measured, stats.metric_names(measured, exclude=NON_METRIC_COLUMNS))
    path = write_group_report(output_dir, suffix, rows, context)
    for doc in docs:
        name = doc["bids_meta"]["bids_name"]
        if not inject_dataset_context(output_dir / f"{name}.html", doc, context.get(name, {})):
            print(f"[mmrqa] WARNING {output_dir / f'{name}.html'}: no individual report to update "
                  "with dataset percentiles (participant level run with --no-reports?)", flush=True)
    return path
