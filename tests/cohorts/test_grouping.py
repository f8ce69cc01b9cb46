"""Cohort protocols, ids, BIDS sidecar inheritance and the --cohort-by override."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mmrqa_bids.cohorts.grouping import (CohortBy, CohortError, assign_cohorts, cohort_id,
                                         cohort_protocol, describe_protocol, parse_cohort_by,
                                         read_sidecar, run_protocol, sidecar_chain)


def _doc(name: str, suffix: str = "T1w", zooms=(1.0, 1.0, 1.0), shape=(176, 256, 256),
         **entities) -> dict:
    return {"bids_meta": {"bids_name": name, "suffix": suffix, "voxel_size_mm": list(zooms),
                          "shape": list(shape), **entities},
            "metrics": {}, "grade": {}}


def test_protocol_rounds_voxels_and_timings_and_drops_time_axis():
    doc = _doc("sub-01_bold", "bold", zooms=(2.9999998, 3.0000001, 3.4), shape=(64, 64, 40, 200))
    side = {"RepetitionTime": 2.00000001, "EchoTime": 0.0300004, "FlipAngle": 90,
            "SliceTiming": [0, 1], "TaskName": "rest"}
    protocol = cohort_protocol(doc, side)
    assert protocol == {"suffix": "bold", "voxel_size_mm": [3.0, 3.0, 3.4], "matrix": [64, 64, 40],
                        "RepetitionTime": 2.0, "EchoTime": 0.03, "FlipAngle": 90.0}
    # a run of the same protocol with fewer volumes and float noise lands in the same cohort
    other = cohort_protocol(_doc("sub-02_bold", "bold", zooms=(3.0, 3.0, 3.4),
                                 shape=(64, 64, 40, 150)),
                            {"RepetitionTime": 2.0, "EchoTime": 0.03, "FlipAngle": 90.0})
    assert cohort_id(protocol) == cohort_id(other)


def test_acq_entity_and_sidecar_fields_split_cohorts():
    base = cohort_protocol(_doc("a"), {"RepetitionTime": 2.3})
    acq = cohort_protocol(_doc("b", acquisition="fast"), {"RepetitionTime": 2.3})
    tr = cohort_protocol(_doc("c"), {"RepetitionTime": 2.4})
    grid = cohort_protocol(_doc("d", zooms=(0.8, 0.8, 0.8)), {"RepetitionTime": 2.3})
    ids = {cohort_id(p) for p in (base, acq, tr, grid)}
    assert len(ids) == 4
    # run, session and task are repetitions of one protocol, not new protocols
    same = cohort_protocol(_doc("e", run="2", session="b", task="x"), {"RepetitionTime": 2.3})
    assert cohort_id(same) == cohort_id(base)
    assert cohort_id(acq).startswith("T1w.acq-fast.1x1x1mm.176x256x256.")


def test_cohort_id_is_stable_and_filename_safe():
    protocol = {"suffix": "T1w", "acquisition": "mp/rage x", "voxel_size_mm": [1.0, 1.0, 1.2],
                "matrix": [176, 256, 256], "SequenceName": "*tfl3d1"}
    cid = cohort_id(protocol)
    assert cid == cohort_id(dict(reversed(list(protocol.items()))))  # key order irrelevant
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9.+-]*", cid)  # one file-name component
    assert cid.startswith("T1w.acq-mpragex.1x1x1.2mm.176x256x256.")
    assert len(cid.rsplit(".", 1)[1]) == 8


def _write(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj) if not isinstance(obj, str) else obj)
    return path


def test_sidecar_inheritance_principle(tmp_path):
    root = tmp_path / "ds"
    _write(root / "dataset_description.json", {"Name": "x", "BIDSVersion": "1.9.0"})
    _write(root / "T1w.json", {"RepetitionTime": 2.3, "FlipAngle": 9, "Manufacturer": "A"})
    _write(root / "acq-fast_T1w.json", {"RepetitionTime": 1.0})  # other acquisition: not ours
    _write(root / "sub-01" / "sub-01_T1w.json", {"FlipAngle": 8})
    image = root / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")
    _write(image.with_name("sub-01_T1w.json"), {"EchoTime": 0.003})
    _write(image.with_name("sub-01_T2w.json"), {"EchoTime": 0.1})  # other suffix
    chain = sidecar_chain(image, root)
    assert [p.relative_to(root).as_posix() for p in chain] == [
        "T1w.json", "sub-01/sub-01_T1w.json", "sub-01/anat/sub-01_T1w.json"]
    assert read_sidecar(image, root) == {"RepetitionTime": 2.3, "FlipAngle": 8,
                                         "Manufacturer": "A", "EchoTime": 0.003}


def test_unreadable_sidecar_names_the_file(tmp_path):
    image = tmp_path / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"")
    bad = _write(image.with_name("sub-01_T1w.json"), "{not json")
    with pytest.raises(CohortError, match=str(bad)):
        read_sidecar(image, tmp_path)


def test_run_protocol_prefers_the_recorded_one_and_needs_a_source(tmp_path):
    doc = _doc("sub-01_T1w", source=str(tmp_path / "missing.nii.gz"))
    with pytest.raises(CohortError, match="sub-01_T1w: source image .*missing.nii.gz not found"):
        run_protocol(doc)
    doc["bids_meta"]["protocol"] = {"suffix": "T1w", "matrix": [1, 2, 3]}
    assert run_protocol(doc) == {"suffix": "T1w", "matrix": [1, 2, 3]}


def test_run_protocol_reads_the_source_sidecar(tmp_path):
    root = tmp_path / "ds"
    _write(root / "dataset_description.json", {"Name": "x"})
    image = root / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    image.parent.mkdir(parents=True)
    image.write_bytes(b"x")
    _write(root / "T1w.json", {"MagneticFieldStrength": 3})
    doc = _doc("sub-01_T1w", source=str(image))
    assert run_protocol(doc)["MagneticFieldStrength"] == 3.0
    assert run_protocol(doc, bids_dir=root)["MagneticFieldStrength"] == 3.0


def test_assign_cohorts_by_protocol_and_by_suffix():
    docs = [_doc(f"sub-{i:02d}_T1w") for i in range(5)] + \
        [_doc("sub-09_T1w", zooms=(0.8, 0.8, 0.8))] + [_doc("sub-01_T2w", "T2w")]
    protocols = [cohort_protocol(d, {}) for d in docs]
    cohorts = assign_cohorts(docs, CohortBy("protocol"), protocols)
    sizes = sorted(len(c.docs) for c in cohorts.values())
    assert sizes == [1, 1, 5]
    big = max(cohorts.values(), key=lambda c: len(c.docs))
    assert big.members == tuple(f"sub-{i:02d}_T1w" for i in range(5))
    assert big.suffix == "T1w"
    by_suffix = assign_cohorts(docs, CohortBy("suffix"))
    assert sorted(len(c.docs) for c in by_suffix.values()) == [1, 6]
    assert all(c.protocol == {"suffix": c.suffix} for c in by_suffix.values())


def test_cohort_file_override(tmp_path):
    docs = [_doc("sub-01_T1w"), _doc("sub-02_T1w"), _doc("sub-01_T2w", "T2w")]
    tsv = tmp_path / "cohorts.tsv"
    tsv.write_text("bids_name\tcohort\nsub-01_T1w\tsiteA\nsub-02_T1w\tsiteB\nsub-01_T2w\tsiteA\n")
    by = parse_cohort_by(str(tsv))
    assert by.mode == "file" and by.describe() == f"file {tsv}"
    cohorts = assign_cohorts(docs, by)
    # the same label never mixes suffixes
    assert sorted(c.members for c in cohorts.values()) == [
        ("sub-01_T1w",), ("sub-01_T2w",), ("sub-02_T1w",)]
    assert "cohort 'siteA'" in describe_protocol(cohorts[sorted(cohorts)[0]].protocol)
    tsv.write_text("bids_name\tcohort\nsub-01_T1w\tsiteA\n")
    with pytest.raises(CohortError, match="run sub-02_T1w is not listed"):
        assign_cohorts(docs, parse_cohort_by(str(tsv)))


@pytest.mark.parametrize("text, message", [
    ("bids_name\tgroup\nx\ty\n", "needs the tab-separated columns bids_name and cohort"),
    ("bids_name\tcohort\nx\t\n", "line 2: empty bids_name or cohort"),
    ("bids_name\tcohort\nx\ta\nx\tb\n", "line 3: x is assigned to two cohorts"),
])
def test_bad_cohort_files(tmp_path, text, message):
    tsv = tmp_path / "c.tsv"
    tsv.write_text(text)
    with pytest.raises(CohortError, match=message):
        parse_cohort_by(str(tsv))


def test_unknown_cohort_by_value():
    with pytest.raises(CohortError, match="neither protocol nor suffix nor an existing TSV file"):
        parse_cohort_by("sequence")
    assert parse_cohort_by(None) == CohortBy("protocol")
