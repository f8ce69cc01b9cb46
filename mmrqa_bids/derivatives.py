"""The derivatives folder: where every output lives, and the documents written there.

:class:`DerivativesLayout` is the one place that names a path under OUTPUT_DIR; every other
module asks it. The layout (MRIQC's, where MRIQC has the same file)::

    OUTPUT_DIR/
      dataset_description.json                       BIDS-derivatives description
      sub-<l>/[ses-<l>/]<datatype>/<bids name>.json  run JSON, one per graded run
      <bids name>.html                               run report (individual HTML)
      group_<suffix>.tsv  group_<suffix>.html        group table and group report
      cohorts/<suffix>_<cohort id>.json              a cohort's reference statistics
      logs/settings_<level>_<UTC stamp>.toml         settings of each invocation; crash files
      logs/failed/<bids name>.json                   failure record of a run that failed
      models/<name>/                                 what the train level fits

Run reports sit beside the group reports, so a group report links to them by name.
Also here: the run JSON's content (:func:`derivative_document`), the participant level's
writer (:func:`write_run`) and the group tables read back from the run JSONs.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import logging
import re
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from mmrqa_bids import __version__
from mmrqa_bids.bids import RunSpec
from mmrqa_bids.io import atomic_write_json, atomic_write_text
from mmrqa_bids.records import failed

DERIVATIVE_KEYS = frozenset({"bids_meta", "grade", "metrics"})
ENTITY_COLUMNS = ("subject", "session", "task", "acquisition", "run")
FIXED_COLUMNS = ("bids_name", *ENTITY_COLUMNS, "status", "grade", "p_good", "p_medium",
                 "p_bad", "confidence", "basis", "cohort", "cohort_size", "cohort_model",
                 "model_grade", "artifact", "outside_training", "grader", "error")
# A cohort id becomes part of a file name: one path component, no separators.
_FILE_SAFE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9.+-]*$")
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DerivativesLayout:
    """Every path under one OUTPUT_DIR (``root``)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def dataset_description(self) -> Path:
        return self.root / "dataset_description.json"

    def run_json(self, run: RunSpec) -> Path:
        """``OUT/sub-XX/[ses-YY/]<datatype>/<bids name>.json`` (MRIQC's layout)."""
        parts = [f"sub-{run.subject}"]
        if "session" in run.entities:
            parts.append(f"ses-{run.entities['session']}")
        return Path(self.root, *parts, run.datatype, f"{run.bids_name}.json")

    def run_jsons(self) -> list[Path]:
        """Candidate run JSONs under ``OUT/sub-*`` (sidecars of other tools too)."""
        return sorted(self.root.glob("sub-*/**/*.json"))

    def run_report(self, bids_name: str) -> Path:
        return self.root / f"{bids_name}.html"

    def report_href(self, bids_name: str) -> str:
        """The link from a group report (in ``OUT``) to a run's report (URL-quoted)."""
        return quote(self.run_report(bids_name).relative_to(self.root).as_posix())

    def group_table(self, suffix: str) -> Path:
        return self.root / f"group_{suffix}.tsv"

    def group_report(self, suffix: str) -> Path:
        return self.root / f"group_{suffix}.html"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def settings_file(self, level: str, stamp: str) -> Path:
        return self.logs / f"settings_{level}_{stamp}.toml"

    @property
    def failed_dir(self) -> Path:
        return self.logs / "failed"

    def failure(self, bids_name: str) -> Path:
        return self.failed_dir / f"{bids_name}.json"

    @property
    def models(self) -> Path:
        return self.root / "models"

    def model(self, name: str) -> Path:
        return self.models / name

    @property
    def cohorts(self) -> Path:
        return self.root / "cohorts"

    def cohort_reference(self, suffix: str, cohort_id: str) -> Path:
        """``OUT/cohorts/<suffix>_<cohort id>.json``; the id must be file-name safe."""
        if not _FILE_SAFE.match(cohort_id):
            raise ValueError(f"cohort id {cohort_id!r} is not file-name safe "
                             "(letters, digits, '.', '+', '-')")
        return self.cohorts / f"{suffix}_{cohort_id}.json"

    def cohort_references(self, suffix: str | None = None) -> list[Path]:
        """The stored cohort references (of one suffix, or all)."""
        return sorted(self.cohorts.glob(f"{suffix}_*.json" if suffix else "*.json"))


# --------------------------------------------------------------------------- run JSON
def derivative_document(record: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """Compose the per-run JSON from a graded run record."""
    grade = record["grade"]
    run = record["run"]
    return {
        "bids_meta": {
            "bids_name": run["bids_name"],
            "suffix": run["suffix"],
            "datatype": run["datatype"],
            **run["entities"],
            "source": run["path"],
            "checksum": record.get("checksum"),
            "shape": record.get("shape"),
            "voxel_size_mm": record.get("zooms"),
        },
        "metrics": record["metrics"],
        # why a metric is null (not computable for this image) or in scaled units
        **({"metric_notes": record["metric_notes"]} if record.get("metric_notes") else {}),
        "grade": {
            "label": grade["label"],
            "probabilities": grade["probabilities"],
            "confidence": grade["confidence"],
            # metrics outside every run the metric model was trained on (an extrapolation)
            "outside_training": grade.get("outside_training", []),
        },
        "artifacts": grade["artifacts"],
        "narrative": grade["narrative"],
        "raw_answer": grade.get("raw"),
        "parse_error": grade.get("parse_error"),
        "provenance": {
            "software": "mmrqa",
            "version": __version__,
            **record.get("grader", {}),
            "mriqc": record.get("mriqc"),
            "timings_s": record.get("timings", {}),
            "settings": settings,
        },
    }


def read_derivative(path: Path) -> dict[str, Any] | None:
    """A per-run derivative document, or None for a JSON that is not one.

    Raises OSError/ValueError when the file cannot be read or parsed; callers decide whether
    that skips the run (group level) or stops (evaluation).
    """
    doc = json.loads(Path(path).read_text())
    return doc if isinstance(doc, dict) and DERIVATIVE_KEYS <= doc.keys() else None


def write_dataset_description(layout: DerivativesLayout, bids_dir: Path) -> Path:
    """Write the description, or merge into a valid existing one (never clobbered: another
    version's ``GeneratedBy`` entry and other sources are kept). Callers hold the output
    folder's lock (:func:`mmrqa_bids.io.folder_lock`) so concurrent runs do not interleave."""
    generated = {"Name": "mmrqa", "Version": __version__,
                 "CodeURL": "https://github.com/mmrqa/mmrqa"}
    source = {"URL": bids_dir.resolve().as_uri()}
    desc = {
        "Name": "mmrqa - MRI quality assessment",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [generated],
        "SourceDatasets": [source],
    }
    try:
        old = json.loads(layout.dataset_description.read_text())
    except (OSError, ValueError):
        old = None
    if isinstance(old, dict) and isinstance(old.get("GeneratedBy", []), list) \
            and isinstance(old.get("SourceDatasets", []), list):
        merged = {**desc, **old}
        merged["GeneratedBy"] = list(old.get("GeneratedBy", []))
        if not any(isinstance(g, dict) and g.get("Name") == "mmrqa"
                   and g.get("Version") == __version__ for g in merged["GeneratedBy"]):
            merged["GeneratedBy"].append(generated)
        merged["SourceDatasets"] = list(old.get("SourceDatasets", []))
        if source not in merged["SourceDatasets"]:
            merged["SourceDatasets"].append(source)
        if merged == old:
            return layout.dataset_description
        desc = merged
    return atomic_write_json(layout.dataset_description, desc)


FAILURE_KEYS = frozenset({"bids_name", "suffix", "error"})


def read_failures(layout: DerivativesLayout) -> list[dict[str, Any]]:
    """The readable failure records (:func:`unreadable_outputs` lists the others)."""
    out = []
    for path in sorted(layout.failed_dir.glob("*.json")) if layout.failed_dir.is_dir() else []:
        try:
            fail = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if _failure_problem(fail) is None:
            out.append(fail)
    return out


def _failure_problem(fail: Any) -> str | None:
    if not isinstance(fail, dict) or not FAILURE_KEYS <= fail.keys():
        return f"not a failure record (needs {', '.join(sorted(FAILURE_KEYS))})"
    if not all(isinstance(fail[k], str) for k in FAILURE_KEYS):
        return "bids_name, suffix and error must be strings"
    return None


def document_problem(doc: Any) -> str | None:
    """Why a parsed run JSON cannot be tabulated (None when it can)."""
    if not isinstance(doc, dict):
        return "not a JSON object"
    meta, grade, metrics = doc.get("bids_meta"), doc.get("grade"), doc.get("metrics")
    if not isinstance(meta, dict) or not isinstance(meta.get("bids_name"), str) \
            or not isinstance(meta.get("suffix"), str):
        return "bids_meta must be an object with bids_name and suffix"
    if not isinstance(grade, dict):
        return "grade must be an object"
    if not isinstance(metrics, dict):
        return f"metrics must be an object, not {type(metrics).__name__}"
    return None


def unreadable_outputs(layout: DerivativesLayout, modalities: Iterable[str] | None = None,
                       known: Iterable[str] = ()) -> list[dict[str, Any]]:
    """Run JSONs and failure records that cannot be read or are malformed, as group-table
    rows with status ``unreadable`` naming the file and the problem (one line). ``known``:
    paths the caller has just read as valid documents, not parsed again."""
    wanted = set(modalities) if modalities is not None else None
    known = set(known)
    rows = []
    for path in layout.run_jsons():
        if str(path) in known:
            continue
        try:
            doc = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            problem = f"cannot parse ({_one_line(exc)})"
        else:
            if not (isinstance(doc, dict) and DERIVATIVE_KEYS & doc.keys()):
                continue  # a JSON of another tool (a sidecar): not ours
            problem = document_problem(doc)
        if problem:
            rows.append(_unreadable_row(path, problem))
    failed_files = sorted(layout.failed_dir.glob("*.json")) if layout.failed_dir.is_dir() else []
    for path in failed_files:
        try:
            problem = _failure_problem(json.loads(path.read_text()))
        except (OSError, ValueError) as exc:
            problem = f"cannot parse ({_one_line(exc)})"
        if problem:
            rows.append(_unreadable_row(path, problem))
    return [r for r in rows if wanted is None or r["suffix"] in wanted]


def _unreadable_row(path: Path, problem: str) -> dict[str, Any]:
    name = path.stem
    entities = dict(part.split("-", 1) for part in name.split("_")[:-1] if "-" in part)
    keys = {"sub": "subject", "ses": "session", "task": "task", "acq": "acquisition", "run": "run"}
    return {"bids_name": name, "suffix": name.rsplit("_", 1)[-1],
            **{col: entities.get(short, "n/a") for short, col in keys.items()},
            "status": "unreadable", "grade": "n/a", "p_good": "n/a", "p_medium": "n/a",
            "p_bad": "n/a", "confidence": "n/a", "basis": "n/a", "cohort": "n/a",
            "cohort_size": "n/a", "cohort_model": "n/a", "model_grade": "n/a",
            "artifact": "n/a",
            "outside_training": "n/a", "grader": "n/a", "error": f"{path}: {problem}"}


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


def write_run(record: dict[str, Any], layout: DerivativesLayout, settings: dict[str, Any],
              reports: bool) -> tuple[str, str]:
    """Write one graded run's derivative JSON (and report), or its failure record.

    Returns ``(path written, status)``; status is the grade label, ``"unparsed"`` or
    ``"failed"``.
    """
    from mmrqa_bids.redaction import redact, redact_text

    run = RunSpec.from_dict(record["run"])
    fail_json = layout.failure(run.bids_name)
    if failed(record):
        error = redact_text(record["error"])
        fail = {"bids_name": run.bids_name, "suffix": run.suffix, "source": str(run.path),
                "stage": record.get("stage", "measure"), "error": error,
                **{k: v for k, v in run.entities.items()}}
        if record.get("traceback"):  # an unexpected error: its traceback in a crash file
            fail["crash_file"] = str(_write_crash_file(layout, run.bids_name, fail["stage"],
                                                       redact_text(record["traceback"])))
        atomic_write_json(fail_json, fail)
        # Outputs of an earlier successful run of this file would now be stale.
        for stale in (layout.run_json(run), layout.run_report(run.bids_name)):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                stale.unlink()
        logger.warning("FAILED %s: %s", run.path, error)
        return str(fail_json), "failed"
    # every recorded string (URLs, settings, a server's error text) through one redaction
    doc = redact(participant_basis(derivative_document(record, settings)))
    target = layout.run_json(run)
    atomic_write_json(target, doc)
    fail_json.unlink(missing_ok=True)
    if reports:
        # imported here: the report renderer pulls in the metrics and scipy.stats, which the
        # group level's tables and the CLI's other paths do not need
        from mmrqa_bids.reports.individual import write_individual
        write_individual(layout.run_report(run.bids_name), doc, record.get("mosaics", {}))
    label = doc["grade"]["label"] or "unparsed"
    logger.info("%s: %s (confidence %.2f)", run.bids_name, label, doc["grade"]["confidence"])
    return str(target), label


def _write_crash_file(layout: DerivativesLayout, bids_name: str, stage: str, text: str) -> Path:
    """``logs/crash-<UTC stamp>-<bids name>-<stage>.txt`` (Nipype's crash files' folder)."""
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-%f")
    return atomic_write_text(layout.logs / f"crash-{stamp}-{bids_name}-{stage}.txt", text)


def participant_basis(doc: dict[str, Any]) -> dict[str, Any]:
    """A participant-level run JSON: the absolute model's grade with basis ``model`` (the
    group level grades it against its cohort), and the run's cohort protocol recorded, so
    that the group level needs neither the raw dataset nor its sidecars again. A sidecar that
    cannot be read leaves the protocol out, with a warning (the group level then names it)."""
    from mmrqa_bids.cohorts.basis import PARTICIPANT_REASON, with_model_basis
    from mmrqa_bids.cohorts.grouping import CohortError, run_protocol

    try:
        doc["bids_meta"]["protocol"] = run_protocol(doc)
    except CohortError as exc:
        logger.warning("WARNING %s: cohort protocol not recorded (%s)",
                       doc["bids_meta"]["bids_name"], exc)
    return with_model_basis(doc, PARTICIPANT_REASON, flag_narrative=False)


# --------------------------------------------------------------------------- group tables
def collect_documents(layout: DerivativesLayout) -> list[dict[str, Any]]:
    """Every per-run derivative JSON under ``OUT/sub-*``; unreadable or malformed ones are
    left out here and tabulated as ``unreadable`` (:func:`unreadable_outputs`)."""
    docs = []
    for path in layout.run_jsons():
        try:
            doc = read_derivative(path)
        except (OSError, ValueError) as exc:
            logger.warning("WARNING %s: unreadable derivative (%s)", path, _one_line(exc))
            continue
        if doc is not None and document_problem(doc):
            logger.warning("WARNING %s: malformed derivative (%s)", path, document_problem(doc))
            continue
        if doc is not None:
            doc["_path"] = str(path)
            docs.append(doc)
    return docs


def document_row(doc: dict[str, Any]) -> dict[str, Any]:
    """A run JSON as a group-table row: the fixed columns, then every metric."""
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
        # the grade's basis: "dataset" (against its cohort) or "model" (the absolute model)
        "basis": grade.get("basis") or "model",
        "cohort": (grade.get("cohort") or {}).get("id", "n/a"),
        "cohort_size": (grade.get("cohort") or {}).get("size", "n/a"),
        # the cohort model that gave a dataset grade (a trained folder's or the shipped one)
        "cohort_model": ((grade.get("model_id") or "n/a") if grade.get("basis") == "dataset"
                         else "n/a"),
        "model_grade": (grade.get("model_grade") or {}).get("label") or grade.get("label") or "n/a",
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
            "p_bad": "n/a", "confidence": "n/a", "basis": "n/a", "cohort": "n/a",
            "cohort_size": "n/a", "cohort_model": "n/a", "model_grade": "n/a",
            "artifact": "n/a",
            "outside_training": "n/a",
            "grader": "n/a", "error": fail["error"]}


def group_tables(layout: DerivativesLayout, docs: list[dict[str, Any]] | None = None,
                 unreadable: list[dict[str, Any]] | None = None
                 ) -> dict[str, list[dict[str, Any]]]:
    """Suffix -> one row per run (derivative documents and failures), sorted by name.
    ``unreadable``: the :func:`unreadable_outputs` rows when the caller has them (not
    changed here); read otherwise."""
    tables: dict[str, list[dict[str, Any]]] = {}
    docs = collect_documents(layout) if docs is None else docs
    for doc in docs:
        tables.setdefault(doc["bids_meta"]["suffix"], []).append(document_row(doc))
    for fail in read_failures(layout):
        tables.setdefault(fail["suffix"], []).append(failure_row(fail))
    if unreadable is None:  # the documents were just read as valid: only the others parsed
        unreadable = unreadable_outputs(layout, known=[d["_path"] for d in docs if "_path" in d])
    for row in unreadable:
        tables.setdefault(row["suffix"], []).append(
            {k: v for k, v in row.items() if k != "suffix"})
    for rows in tables.values():
        rows.sort(key=lambda r: r["bids_name"])
    return tables


def to_tsv(rows: list[dict[str, Any]]) -> str:
    """The group TSV: :data:`FIXED_COLUMNS`, then the metrics in name order; ``n/a`` where a
    row has no value; floats with 6 significant digits."""
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
