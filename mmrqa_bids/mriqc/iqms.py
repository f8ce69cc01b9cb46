"""Reading MRIQC's image quality metrics (IQMs), whatever MRIQC version wrote them.

MRIQC writes, per run, ``sub-XX/[ses-YY/]<datatype>/<bids name>.json`` (IQMs at the top level,
plus ``bids_meta`` and ``provenance`` objects) and, per suffix, ``group_<suffix>.tsv`` (one row
per run, identified by ``bids_name``; versions before ``bids_name`` existed used
``subject_id``/``session_id``/``acq_id``/``run_id`` columns).

IQM names changed across versions. MRIQC 0.8-0.9 wrote ``qi1``, ``qi2``, ``snr`` and
``summary_<stat>_<roi>`` (e.g. ``summary_mean_bg``); later versions write ``qi_1``, ``qi_2``,
``snr_total`` and ``summary_<roi>_<stat>`` (``summary_bg_mean``), and added ``snrd_*`` and the
``median``/``mad``/``n`` summary statistics. :func:`canonical_iqms` maps the old names to the
current ones; what a version never computed stays missing and is reported as such.
"""
from __future__ import annotations

import csv
import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

# Old name -> current name (only names whose meaning is unchanged).
LEGACY_NAMES = {"qi1": "qi_1", "qi2": "qi_2", "snr": "snr_total", "fwhm": "fwhm_avg"}
_LEGACY_SUMMARY = re.compile(r"^summary_(mean|median|stdv|mad|k|p05|p95|n)_(bg|csf|gm|wm|fg)$")
# Columns of a group TSV that identify a run rather than measure it.
ID_COLUMNS = ("bids_name", "subject_id", "session_id", "task_id", "acq_id", "rec_id", "run_id")
_ID_ENTITIES = (("subject_id", "sub"), ("session_id", "ses"), ("task_id", "task"),
                ("acq_id", "acq"), ("rec_id", "rec"), ("run_id", "run"))


class MriqcError(ValueError):
    """MRIQC outputs that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class IqmRecord:
    """The IQMs of one run as MRIQC measured them, under the current MRIQC names."""

    bids_name: str
    iqms: dict[str, float]
    source: str
    mriqc_version: str | None = None
    renamed: dict[str, str] = field(default_factory=dict)  # old name -> current name


def canonical_name(name: str) -> str:
    """The current MRIQC name of an IQM (``summary_mean_bg`` -> ``summary_bg_mean``)."""
    name = name.strip()
    if name in LEGACY_NAMES:
        return LEGACY_NAMES[name]
    match = _LEGACY_SUMMARY.match(name)
    if match:
        return f"summary_{match.group(2)}_{match.group(1)}"
    return name


def canonical_iqms(values: Mapping[str, Any]) -> tuple[dict[str, float], dict[str, str]]:
    """Keep the finite numeric entries, under their current names.

    Returns ``(iqms, renamed)``; when an old and a new name are both present the new one wins.
    """
    iqms: dict[str, float] = {}
    renamed: dict[str, str] = {}
    for name, value in values.items():
        number = _number(value)
        if number is None or name in ID_COLUMNS:
            continue
        new = canonical_name(name)
        if new != name:
            if new in values:
                continue
            renamed[name] = new
        iqms[new] = number
    return iqms, renamed


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    else:
        try:
            number = float(str(value).strip())
        except ValueError:
            return None
    return number if math.isfinite(number) else None


def read_iqm_json(path: str | Path) -> IqmRecord:
    """One MRIQC per-run JSON document."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MriqcError(f"{path}: cannot read MRIQC IQMs ({exc.strerror or exc})") from exc
    except ValueError as exc:
        raise MriqcError(f"{path}: not valid JSON ({' '.join(str(exc).split())})") from exc
    if not isinstance(doc, dict):
        raise MriqcError(f"{path}: MRIQC IQM file must hold a JSON object")
    iqms, renamed = canonical_iqms(doc)
    if not iqms:
        raise MriqcError(f"{path}: no numeric IQMs found")
    provenance = doc.get("provenance") if isinstance(doc.get("provenance"), dict) else {}
    version = provenance.get("version") or doc.get("mriqc_version")
    name = path.name[:-len(".json")]
    return IqmRecord(bids_name=name, iqms=iqms, source=str(path),
                     mriqc_version=str(version) if version else None, renamed=renamed)


def row_bids_name(row: Mapping[str, str], suffix: str) -> str | None:
    """``bids_name`` of a group-TSV row, or one built from the old ``*_id`` columns."""
    name = (row.get("bids_name") or "").strip()
    if name:
        return name.removesuffix(".nii.gz").removesuffix(".nii")
    if not (row.get("subject_id") or "").strip():
        return None
    parts = []
    for column, key in _ID_ENTITIES:
        value = (row.get(column) or "").strip()
        if value and value.lower() not in ("n/a", "nan", "none", "single_session", "single_run"):
            value = value[len(key) + 1:] if value.startswith(f"{key}-") else value
            parts.append(f"{key}-{value}")
    return "_".join(parts + [suffix])


def read_group_tsv(path: str | Path, suffix: str | None = None) -> list[IqmRecord]:
    """Every row of an MRIQC ``group_<suffix>.tsv``."""
    path = Path(path)
    suffix = suffix or path.stem.removeprefix("group_")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise MriqcError(f"{path}: cannot read MRIQC group table ({exc.strerror or exc})") from exc
    reader = csv.DictReader(text.splitlines(), delimiter="\t")
    columns = reader.fieldnames or []
    if "bids_name" not in columns and "subject_id" not in columns:
        raise MriqcError(f"{path}: not an MRIQC group table (no 'bids_name' or 'subject_id' column)")
    records = []
    for lineno, row in enumerate(reader, start=2):
        name = row_bids_name(row, suffix)
        if name is None:
            raise MriqcError(f"{path}:{lineno}: row without a run name")
        iqms, renamed = canonical_iqms(row)
        records.append(IqmRecord(bids_name=name, iqms=iqms, source=f"{path}:{lineno}",
                                 renamed=renamed))
    if not records:
        raise MriqcError(f"{path}: MRIQC group table has no rows")
    return records


def run_json_path(mriqc_dir: str | Path, bids_name: str, datatype: str,
                  entities: Mapping[str, str]) -> Path:
    """``MRIQC_OUT/sub-XX/[ses-YY/]<datatype>/<bids name>.json``."""
    parts = [f"sub-{entities['subject']}"]
    if entities.get("session"):
        parts.append(f"ses-{entities['session']}")
    return Path(mriqc_dir, *parts, datatype, f"{bids_name}.json")


def find_run_iqms(mriqc_dir: str | Path, bids_name: str, suffix: str, datatype: str,
                  entities: Mapping[str, str]) -> IqmRecord | None:
    """MRIQC's IQMs for one run: its JSON if present, else its row of ``group_<suffix>.tsv``.

    Returns None when MRIQC did not process the run; raises :class:`MriqcError` when MRIQC's
    file for it exists but is unusable (corrupt JSON, broken table).
    """
    path = run_json_path(mriqc_dir, bids_name, datatype, entities)
    legacy = Path(mriqc_dir) / "derivatives" / f"{bids_name}.json"
    for candidate in (path, legacy):
        if candidate.is_file():
            return read_iqm_json(candidate)
    table = Path(mriqc_dir) / f"group_{suffix}.tsv"
    if table.is_file():
        for record in read_group_tsv(table, suffix):
            if record.bids_name == bids_name:
                return record
    return None


def collect_mriqc(mriqc_dir: str | Path, suffix: str) -> tuple[list[IqmRecord], list[str]]:
    """All runs of one suffix in an MRIQC output folder, and one error line per unusable file.

    ``group_<suffix>.tsv`` when present (MRIQC's group level ran); otherwise every per-run
    JSON ``sub-*/**/*_<suffix>.json`` (a corrupt one is reported and skipped). Raises
    :class:`MriqcError` when there is neither.
    """
    mriqc_dir = Path(mriqc_dir)
    if not mriqc_dir.is_dir():
        raise MriqcError(f"{mriqc_dir}: MRIQC output folder does not exist")
    table = mriqc_dir / f"group_{suffix}.tsv"
    if table.is_file():
        return read_group_tsv(table, suffix), []
    paths = _run_jsons(mriqc_dir, suffix)
    if not paths:
        raise MriqcError(f"{mriqc_dir}: no MRIQC outputs for {suffix} (neither group_{suffix}.tsv "
                         f"nor sub-*/**/*_{suffix}.json nor derivatives/sub-*_{suffix}.json)")
    records, errors = [], []
    for path in paths:
        try:
            records.append(read_iqm_json(path))
        except MriqcError as exc:
            errors.append(str(exc))
    return records, errors


def _run_jsons(mriqc_dir: Path, suffix: str) -> list[Path]:
    """Per-run JSONs: ``sub-*/**/`` (MRIQC >= 0.10, BIDS-derivatives layout) or flat in
    ``derivatives/`` (the layout of earlier versions)."""
    found = set(mriqc_dir.glob(f"sub-*/**/*_{suffix}.json"))
    found |= set(mriqc_dir.glob(f"derivatives/sub-*_{suffix}.json"))
    return sorted(p for p in found if p.is_file())


def available_suffixes(mriqc_dir: str | Path, candidates: Iterable[str]) -> list[str]:
    mriqc_dir = Path(mriqc_dir)
    return [s for s in candidates
            if (mriqc_dir / f"group_{s}.tsv").is_file() or _run_jsons(mriqc_dir, s)]
