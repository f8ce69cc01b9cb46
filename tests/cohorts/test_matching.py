"""Matching a new run's protocol to stored cohort references (participant --reference)."""
from __future__ import annotations

import json

import pytest

from mmrqa_bids.cohorts.grouping import CohortError, cohort_id
from mmrqa_bids.cohorts.matching import load_references, match_reference, reference_files
from mmrqa_bids.cohorts.reference import build_reference

T1 = {"suffix": "T1w", "voxel_size_mm": [1.0, 1.0, 1.0], "matrix": [176, 256, 256],
      "RepetitionTime": 2.3}


def _ref(protocol):
    rows = [{"efc": 0.5 + 0.01 * i, "cjv": 0.4 + 0.01 * i} for i in range(8)]
    return build_reference(rows, cohort_id=cohort_id(protocol), protocol=protocol,
                           members=[f"sub-{i:02d}_{protocol['suffix']}" for i in range(8)])


def test_exact_protocol_first_then_suffix_only():
    exact, by_suffix = _ref(T1), _ref({"suffix": "T1w"})
    assert match_reference(dict(T1), [by_suffix, exact], "r") is exact
    other = {**T1, "RepetitionTime": 2.0}
    assert match_reference(other, [by_suffix, exact], "r") is by_suffix


def test_no_match_names_the_closest_cohort_and_the_fields():
    stored = [_ref(T1), _ref({**T1, "matrix": [160, 240, 240], "RepetitionTime": 1.9})]
    new = {**T1, "voxel_size_mm": [0.8, 0.8, 0.8]}
    with pytest.raises(CohortError, match=rf"sub-09_T1w: no stored cohort reference matches its "
                                          rf"protocol \(.*\); the closest, {stored[0].cohort_id}, "
                                          rf"differs in voxel_size_mm"):
        match_reference(new, stored, "sub-09_T1w")
    with pytest.raises(CohortError, match="no stored cohort reference of suffix bold"):
        match_reference({"suffix": "bold"}, stored, "sub-09_bold")


def test_references_from_a_cohort_file_are_not_matched_by_protocol():
    labelled = _ref({"suffix": "T1w", "label": "siteA"})
    with pytest.raises(CohortError, match="no stored cohort reference of suffix T1w"):
        match_reference(dict(T1), [labelled], "r")


def test_reference_files_and_loading(tmp_path):
    ref = _ref(T1)
    path = tmp_path / "T1w_x.json"
    path.write_text(json.dumps(ref.to_dict()))
    assert reference_files(path) == [path]
    assert load_references([path])[0] == ref
    with pytest.raises(CohortError, match="no cohort references found"):
        reference_files(tmp_path, [])
    with pytest.raises(CohortError, match="neither a cohort reference file nor a folder"):
        reference_files(tmp_path / "missing")
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(CohortError, match=f"{bad}: not a usable cohort reference"):
        load_references([bad])
