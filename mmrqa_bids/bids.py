"""Finding the runs to assess in a BIDS dataset (their outputs: :mod:`mmrqa_bids.derivatives`)."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from mmrqa_bids.vocabulary import ENTITY_KEYS, ENTITY_ORDER, datatype_of

NIFTI_EXTENSIONS = (".nii", ".nii.gz")


class DatasetError(Exception):
    """The dataset or the selection cannot be processed at all (exit code 2)."""


@dataclass(frozen=True)
class RunSpec:
    """One imaging run to assess."""

    path: Path
    suffix: str
    datatype: str
    entities: dict[str, str] = field(default_factory=dict, hash=False, compare=False)

    @property
    def bids_name(self) -> str:
        name = self.path.name
        for ext in (".nii.gz", ".nii"):
            if name.endswith(ext):
                return name[: -len(ext)]
        return name

    @property
    def subject(self) -> str:
        return self.entities["subject"]

    def to_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "suffix": self.suffix, "datatype": self.datatype,
                "entities": dict(self.entities), "bids_name": self.bids_name}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RunSpec":
        return cls(path=Path(data["path"]), suffix=data["suffix"], datatype=data["datatype"],
                   entities=dict(data["entities"]))


def strip_prefix(value: str | int, prefix: str) -> str:
    """``sub-01`` -> ``01``; ``01`` -> ``01``."""
    text = str(value).strip()
    return text[len(prefix) + 1:] if text.startswith(f"{prefix}-") else text


def same_label(a: str | int, b: str | int) -> bool:
    """Compare entity labels, treating ``run-01``, ``01`` and ``1`` as the same run."""
    a, b = str(a), str(b)
    if a.isdigit() and b.isdigit():
        return int(a) == int(b)
    return a == b


def parse_entities(filename: str) -> dict[str, str]:
    """Entities from a BIDS file name (``sub-01_ses-1_run-2_T1w.nii.gz``)."""
    keys = {v: k for k, v in ENTITY_KEYS.items()}
    stem = re.sub(r"(\.nii(\.gz)?|\.json|\.html)$", "", Path(filename).name)
    out: dict[str, str] = {}
    for part in stem.split("_")[:-1]:
        if "-" in part:
            key, value = part.split("-", 1)
            if key in keys:
                out[keys[key]] = value
    return out


def check_dataset(bids_dir: Path, output_dir: Path) -> None:
    """Dataset-level checks that end the run with exit code 2."""
    if not bids_dir.exists():
        raise DatasetError(f"{bids_dir}: BIDS directory does not exist")
    if not bids_dir.is_dir():
        raise DatasetError(f"{bids_dir}: not a directory")
    if not (bids_dir / "dataset_description.json").is_file():
        raise DatasetError(f"{bids_dir}: not a BIDS dataset (no dataset_description.json)")
    try:
        json.loads((bids_dir / "dataset_description.json").read_text())
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{bids_dir / 'dataset_description.json'}: invalid JSON ({exc})") from exc
    if output_dir.resolve() == bids_dir.resolve():
        raise DatasetError(f"{output_dir}: OUTPUT_DIR is the BIDS directory; refusing to write into raw data")


def collect_runs(bids_dir: Path, output_dir: Path, *, modalities: Iterable[str],
                 participant_label: Iterable[str] = (), session_id: Iterable[str] = (),
                 run_id: Iterable[str] = (), task_id: Iterable[str] = (),
                 bids_filters: dict[str, dict[str, Any]] | None = None) -> list[RunSpec]:
    """Index the dataset with pybids (no validation, no metadata) and select the runs.

    Derivatives, sourcedata, code and the output folder are never indexed, so an
    OUTPUT_DIR under ``BIDS_DIR/derivatives`` works and indexing stays cheap.
    """
    from bids.layout import BIDSLayout, BIDSLayoutIndexer

    subjects = [strip_prefix(s, "sub") for s in participant_label]
    ignore = [re.compile(r"^/(code|derivatives|sourcedata|stimuli|models)/"), re.compile(r"/\.")]
    try:
        rel_out = output_dir.resolve().relative_to(bids_dir.resolve())
        ignore.append(re.compile(rf"^/{re.escape(str(rel_out))}/"))
    except ValueError:
        pass
    if subjects:
        # Skip other subjects' folders at indexing time: the cost that hurts on large datasets.
        wanted = "|".join(re.escape(s) for s in subjects)
        ignore.append(re.compile(rf"^/sub-(?!({wanted})/)[^/]+/"))
    indexer = BIDSLayoutIndexer(validate=False, index_metadata=False, ignore=ignore)
    layout = BIDSLayout(str(bids_dir), indexer=indexer, derivatives=False)
    if subjects:
        missing = sorted(set(subjects) - set(layout.get_subjects()))
        if missing:
            raise DatasetError(f"{bids_dir}: participant label(s) not found: {', '.join(missing)}")

    filters = {k.lower(): v for k, v in (bids_filters or {}).items()}
    runs: list[RunSpec] = []
    for suffix in modalities:
        datatype = datatype_of(suffix)
        query = {"suffix": suffix, "datatype": datatype, "extension": list(NIFTI_EXTENSIONS),
                 "return_type": "object"}
        query.update(filters.get(suffix.lower(), {}))
        if subjects:
            query["subject"] = subjects
        for bf in layout.get(**query):
            entities = {k: str(v) for k, v in bf.get_entities().items()
                        if k in ENTITY_KEYS}
            runs.append(RunSpec(path=Path(bf.path), suffix=suffix, datatype=datatype,
                                entities=entities))
    runs = [r for r in runs
            if _matches(r, "session", session_id, "ses")
            and _matches(r, "run", run_id, "run")
            and _matches(r, "task", task_id, "task")]
    runs.sort(key=lambda r: str(r.path))
    if not runs:
        raise DatasetError(f"{bids_dir}: no runs match the selection "
                           f"(modalities {', '.join(modalities)}"
                           + (f", participants {', '.join(subjects)}" if subjects else "") + ")")
    return runs


def _matches(run: RunSpec, entity: str, wanted: Iterable[str], prefix: str) -> bool:
    wanted = [strip_prefix(w, prefix) for w in wanted]
    if not wanted:
        return True
    value = run.entities.get(entity)
    return value is not None and any(same_label(value, w) for w in wanted)


def entity_string(entities: dict[str, str]) -> str:
    return "_".join(f"{ENTITY_KEYS[k]}-{entities[k]}" for k in ENTITY_ORDER if k in entities)
