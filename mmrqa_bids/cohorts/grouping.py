"""Cohorts: the runs of a dataset that should look alike, and so can grade each other.

A cohort is one suffix acquired with one protocol. The protocol of a run is read from what
mmrqa already records about it (its derivative JSON: suffix, ``acq-``-like entities, the
voxel size and matrix of the image as loaded) and from its BIDS sidecar, found with the BIDS
inheritance principle (:func:`read_sidecar`): the sequence, repetition / echo / inversion
time, flip angle, field strength and scanner model, where the sidecar has them.

Grouping options (``--cohort-by``, :func:`parse_cohort_by`):

``protocol`` (default)
    suffix x protocol, as above.
``suffix``
    one cohort per suffix, whatever the protocol (for a dataset whose sidecars differ in
    fields that do not matter to it).
``FILE.tsv``
    an explicit assignment: a tab-separated file with the columns ``bids_name`` and
    ``cohort``; every assessed run must be listed (a run that is not is an error, never a
    silent default). Cohort labels never mix suffixes: the label is taken per suffix.

The cohort id is stable (the same protocol gives the same id on every machine and rerun)
and filename-safe (letters, digits, ``.``, ``-``): readable parts (suffix, entities, voxel
size, matrix) and a short hash of the whole protocol.
"""
from __future__ import annotations

import csv
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from mmrqa_bids.io import read_json_object

#: Entities that change what an image looks like, and so split cohorts (run, session and
#: task do not: they name repetitions of one protocol).
PROTOCOL_ENTITIES = ("acquisition", "ceagent", "reconstruction", "direction", "echo", "part")
#: Sidecar fields that define a protocol (BIDS names), where present.
SIDECAR_FIELDS = ("Manufacturer", "ManufacturersModelName", "MagneticFieldStrength",
                  "ScanningSequence", "SequenceVariant", "SequenceName", "PulseSequenceType",
                  "RepetitionTime", "EchoTime", "InversionTime", "FlipAngle")
#: Voxel sizes are compared to this many mm (scanners write 0.9999998 for 1 mm).
VOXEL_DECIMALS = 1
#: Timing parameters (s) and angles (deg) are compared to this many significant digits.
SIGNIFICANT_DIGITS = 3
COHORT_BY_CHOICES = ("protocol", "suffix")


class CohortError(ValueError):
    """A cohort assignment that cannot be used (bad override file, unlisted run)."""


class SourceMissing(CohortError):
    """A run JSON that records no protocol, whose source image is gone (moved dataset)."""


@dataclass(frozen=True)
class CohortBy:
    """How runs are grouped: ``mode`` is ``protocol``, ``suffix`` or ``file`` (then
    ``assignment`` maps bids_name -> user label)."""

    mode: str = "protocol"
    assignment: Mapping[str, str] | None = None
    source: str | None = None  # the override file, for messages and provenance

    def describe(self) -> str:
        return f"file {self.source}" if self.mode == "file" else self.mode


def round_significant(value: float, digits: int = SIGNIFICANT_DIGITS) -> float:
    """``value`` to ``digits`` significant digits (0 stays 0): 2.2999 -> 2.3, 0.00298 -> 0.00298."""
    if value == 0 or not math.isfinite(value):
        return float(value)
    return float(f"{value:.{digits}g}")


def _sidecar_value(value: Any) -> Any:
    """A sidecar field comparable across runs: numbers rounded, strings stripped, lists kept."""
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return round_significant(float(value))
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, list):
        return [_sidecar_value(v) for v in value]
    return None


def cohort_protocol(doc: Mapping[str, Any], sidecar: Mapping[str, Any] | None) -> dict[str, Any]:
    """The cohort key of one run: its suffix, protocol entities, voxel size and spatial
    matrix (from ``doc['bids_meta']``, the derivative JSON) and the sidecar's protocol fields.

    Voxel sizes are rounded to ``VOXEL_DECIMALS`` mm, timings and angles to
    ``SIGNIFICANT_DIGITS`` significant digits; the time axis of a bold run (its number of
    volumes) is not part of the protocol. Absent fields are left out, so runs with and
    without a field are different protocols (never guessed equal).
    """
    meta = doc["bids_meta"]
    protocol: dict[str, Any] = {"suffix": meta["suffix"]}
    for key in PROTOCOL_ENTITIES:
        if meta.get(key) not in (None, "", "n/a"):
            protocol[key] = str(meta[key])
    zooms = meta.get("voxel_size_mm")
    if zooms:
        protocol["voxel_size_mm"] = [round(float(z), VOXEL_DECIMALS) + 0.0 for z in zooms[:3]]
    shape = meta.get("shape")
    if shape:
        protocol["matrix"] = [int(n) for n in shape[:3]]
    for key in SIDECAR_FIELDS:
        value = _sidecar_value((sidecar or {}).get(key))
        if value not in (None, "", []):
            protocol[key] = value
    return protocol


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", text)


def _protocol_parts(protocol: Mapping[str, Any], text: Callable[[str], str], label: str,
                    mm: str) -> list[str]:
    """The entities, cohort label, voxel size and matrix of ``protocol`` in the order ids and
    descriptions name them; ``text`` formats a free value, ``label``/``mm`` their wording."""
    from mmrqa_bids.bids import ENTITY_KEYS
    parts = [f"{ENTITY_KEYS[k]}-{text(str(protocol[k]))}" for k in PROTOCOL_ENTITIES
             if k in protocol]
    if "label" in protocol:
        parts.append(label.format(text(str(protocol["label"]))))
    if "voxel_size_mm" in protocol:
        parts.append("x".join(f"{v:g}" for v in protocol["voxel_size_mm"]) + mm)
    if "matrix" in protocol:
        parts.append("x".join(str(n) for n in protocol["matrix"]))
    return parts


def cohort_id(protocol: Mapping[str, Any]) -> str:
    """A stable, filename-safe id: ``<suffix>[.<entity>-<value>...][.<voxel>mm][.<matrix>]``
    then the first 8 hex digits of the SHA-1 of the protocol as canonical JSON (sorted keys),
    e.g. ``T1w.acq-mprage.1x1x1mm.176x256x256.3f2a9c1b``."""
    digest = hashlib.sha1(json.dumps(dict(protocol), sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).hexdigest()[:8]
    parts = [_slug(str(protocol.get("suffix", "run"))),
             *_protocol_parts(protocol, _slug, "label-{}", "mm")]
    return ".".join(p for p in parts if p) + f".{digest}"


# --------------------------------------------------------------------------------------
# BIDS sidecars (inheritance principle)


def _name_entities(stem: str) -> tuple[dict[str, str], str]:
    """``sub-01_acq-x_T1w`` -> ({"sub": "01", "acq": "x"}, "T1w")."""
    parts = stem.split("_")
    ents = dict(p.split("-", 1) for p in parts[:-1] if "-" in p)
    return ents, parts[-1]


def sidecar_chain(image: Path, root: Path) -> list[Path]:
    """The JSON sidecars that apply to ``image``, outermost first (BIDS inheritance
    principle): in the image's folder and each parent up to the dataset ``root``, a
    ``.json`` file with the image's suffix whose entities are a subset of the image's.
    Where one folder holds several, the most specific one (most entities) applies."""
    image, root = Path(image), Path(root)
    stem = re.sub(r"\.nii(\.gz)?$", "", image.name)
    ents, suffix = _name_entities(stem)
    folders = [image.parent]
    try:
        rel = image.parent.resolve().relative_to(root.resolve())
        folders = [root]
        for part in rel.parts:
            folders.append(folders[-1] / part)
    except ValueError:
        pass  # image outside root: only its own folder
    chain = []
    for folder in folders:
        best = None
        for cand in sorted(folder.glob(f"*_{suffix}.json")) + sorted(folder.glob(f"{suffix}.json")):
            c_ents, c_suffix = _name_entities(cand.name[:-5])
            if c_suffix != suffix or any(ents.get(k) != v for k, v in c_ents.items()):
                continue
            if best is None or len(c_ents) > len(_name_entities(best.name[:-5])[0]):
                best = cand
        if best is not None:
            chain.append(best)
    return chain


def read_sidecar(image: Path, root: Path) -> dict[str, Any]:
    """The merged sidecar metadata of ``image`` (inner files override outer ones); ``{}``
    when there is none. Raises :class:`CohortError` naming a sidecar that is not a JSON object."""
    merged: dict[str, Any] = {}
    for path in sidecar_chain(image, root):
        merged.update(read_json_object(path, "BIDS sidecar", CohortError))
    return merged


def dataset_root(image: Path) -> Path | None:
    """The nearest folder above ``image`` holding ``dataset_description.json``."""
    for folder in Path(image).resolve().parents:
        if (folder / "dataset_description.json").is_file():
            return folder
    return None


def run_protocol(doc: Mapping[str, Any], bids_dir: Path | None = None) -> dict[str, Any]:
    """The protocol of a run's derivative document: the one recorded at the participant
    level (``bids_meta.protocol``) when present, else computed from the document and the
    sidecar of its source image (``bids_dir``, or the dataset the source lies in).
    Raises :class:`CohortError` when the source image is gone and nothing was recorded."""
    recorded = doc["bids_meta"].get("protocol")
    if isinstance(recorded, dict) and recorded:
        return dict(recorded)
    source = Path(doc["bids_meta"].get("source") or "")
    if not source.is_file():
        raise SourceMissing(f"{doc['bids_meta']['bids_name']}: source image {source} not found and "
                          "no protocol recorded in its derivative JSON; rerun the participant "
                          "level or pass --cohort-by suffix")
    root = bids_dir if bids_dir is not None and _under(source, bids_dir) else dataset_root(source)
    return cohort_protocol(doc, read_sidecar(source, root or source.parent))


def _under(path: Path, folder: Path) -> bool:
    try:
        Path(path).resolve().relative_to(Path(folder).resolve())
        return True
    except ValueError:
        return False


# --------------------------------------------------------------------------------------
# Assignment


def parse_cohort_by(value: str | Path | None) -> CohortBy:
    """``protocol`` | ``suffix`` | a TSV file (columns ``bids_name``, ``cohort``).
    Raises :class:`CohortError` naming the file and the problem."""
    text = str(value or "protocol")
    if text in COHORT_BY_CHOICES:
        return CohortBy(mode=text)
    path = Path(text)
    if not path.is_file():
        raise CohortError(f"{path}: --cohort-by is neither {' nor '.join(COHORT_BY_CHOICES)} "
                          "nor an existing TSV file")
    try:
        with path.open(newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise CohortError(f"{path}: cannot read the cohort file ({exc})") from exc
    if not rows or not {"bids_name", "cohort"} <= set(rows[0]):
        raise CohortError(f"{path}: a cohort file needs the tab-separated columns bids_name "
                          "and cohort")
    assignment: dict[str, str] = {}
    for i, row in enumerate(rows, start=2):
        name, label = (row.get("bids_name") or "").strip(), (row.get("cohort") or "").strip()
        if not name or not label:
            raise CohortError(f"{path}: line {i}: empty bids_name or cohort")
        if assignment.get(name, label) != label:
            raise CohortError(f"{path}: line {i}: {name} is assigned to two cohorts")
        assignment[name] = label
    return CohortBy(mode="file", assignment=assignment, source=str(path))


def cohort_key(doc: Mapping[str, Any], protocol: Mapping[str, Any], by: CohortBy) -> dict[str, Any]:
    """The protocol that defines a run's cohort under ``by`` (what :func:`cohort_id` hashes)."""
    suffix = doc["bids_meta"]["suffix"]
    if by.mode == "protocol":
        return dict(protocol)
    if by.mode == "suffix":
        return {"suffix": suffix}
    name = doc["bids_meta"]["bids_name"]
    if not by.assignment or name not in by.assignment:
        raise CohortError(f"{by.source}: run {name} is not listed (every assessed run needs a "
                          "cohort)")
    return {"suffix": suffix, "label": by.assignment[name]}


@dataclass(frozen=True)
class Cohort:
    """A group of runs to compare: its id, the key that defines it, and its members
    (derivative documents, sorted by bids_name)."""

    cohort_id: str
    protocol: dict[str, Any]
    docs: tuple[Mapping[str, Any], ...]

    @property
    def suffix(self) -> str:
        return str(self.protocol["suffix"])

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(d["bids_meta"]["bids_name"] for d in self.docs)


def assign_cohorts(docs: Iterable[Mapping[str, Any]], by: CohortBy = CohortBy(),
                   protocols: Sequence[Mapping[str, Any]] | None = None,
                   bids_dir: Path | None = None, notes: list[str] | None = None
                   ) -> dict[str, Cohort]:
    """Cohort id -> :class:`Cohort`, sorted by id; members sorted by name.

    ``protocols`` (one per document, in order) skips reading them (:func:`run_protocol`).
    A run JSON without a recorded protocol whose source image is gone is grouped by what
    its JSON holds (suffix, entities, voxel size, matrix: no sidecar fields), and a line
    saying so is appended to ``notes``.
    """
    docs = list(docs)
    if protocols is None:
        protocols, missing = [], []
        for doc in docs:
            if by.mode != "protocol":
                protocols.append({})
                continue
            try:
                protocols.append(run_protocol(doc, bids_dir))
            except SourceMissing:
                protocols.append(cohort_protocol(doc, None))
                missing.append(doc["bids_meta"]["bids_name"])
        if missing and notes is not None:
            notes.append(f"{len(missing)} run(s) ({', '.join(missing[:3])}"
                         f"{', ...' if len(missing) > 3 else ''}) record no protocol and their "
                         "source images are gone: grouped by suffix, entities, voxel size and "
                         "matrix only, without their sidecars' sequence parameters")
    groups: dict[str, tuple[dict[str, Any], list[Mapping[str, Any]]]] = {}
    for doc, protocol in zip(docs, protocols):
        key = cohort_key(doc, protocol, by)
        groups.setdefault(cohort_id(key), (key, []))[1].append(doc)
    return {cid: Cohort(cid, key, tuple(sorted(members, key=lambda d: d["bids_meta"]["bids_name"])))
            for cid, (key, members) in sorted(groups.items())}


def protocol_difference(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The keys on which two protocols differ (sorted), for "no cohort matches" messages."""
    return sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))


def describe_protocol(protocol: Mapping[str, Any]) -> str:
    """One line: ``T1w, acq-mprage, 1x1x1 mm, 176x256x256, RepetitionTime 2.3, ...``."""
    parts = [str(protocol.get("suffix", "?")), *_protocol_parts(protocol, str, "cohort '{}'", " mm")]
    parts += [f"{k} {protocol[k]}" for k in SIDECAR_FIELDS if k in protocol]
    return ", ".join(parts)
