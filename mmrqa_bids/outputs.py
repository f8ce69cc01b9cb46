"""The per-run derivative document (BIDS-derivatives JSON) and dataset-level files."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmrqa_bids import __version__
from mmrqa_bids.io import atomic_write_json

FAILED_DIR = Path("logs") / "failed"


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


DERIVATIVE_KEYS = frozenset({"bids_meta", "grade", "metrics"})


def derivative_paths(output_dir: Path) -> list[Path]:
    """Candidate per-run derivative JSONs under ``OUT/sub-*`` (sidecars of other tools too)."""
    return sorted(Path(output_dir).glob("sub-*/**/*.json"))


def read_derivative(path: Path) -> dict[str, Any] | None:
    """A per-run derivative document, or None for a JSON that is not one.

    Raises OSError/ValueError when the file cannot be read or parsed; callers decide whether
    that skips the run (group level) or stops (evaluation).
    """
    doc = json.loads(Path(path).read_text())
    return doc if isinstance(doc, dict) and DERIVATIVE_KEYS <= doc.keys() else None


def write_dataset_description(output_dir: Path, bids_dir: Path) -> None:
    desc = {
        "Name": "mmrqa - MRI quality assessment",
        "BIDSVersion": "1.9.0",
        "DatasetType": "derivative",
        "GeneratedBy": [{"Name": "mmrqa", "Version": __version__,
                         "CodeURL": "https://github.com/mmrqa/mmrqa"}],
        "SourceDatasets": [{"URL": bids_dir.resolve().as_uri()}],
    }
    atomic_write_json(output_dir / "dataset_description.json", desc)


def failure_path(output_dir: Path, bids_name: str) -> Path:
    return output_dir / FAILED_DIR / f"{bids_name}.json"


def read_failures(output_dir: Path) -> list[dict[str, Any]]:
    folder = output_dir / FAILED_DIR
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []
