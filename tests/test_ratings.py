"""The ratings TSV: written on either scale (grades or MRIQC's 1/0/-1), read back the same."""
from __future__ import annotations

import pytest

from mmrqa_bids.ratings import COLUMNS, RatingsError, read_ratings, ratings_tsv

ROWS = [{"participant_id": "sub-01", "session_id": "ses-a", "run_id": "run-1", "suffix": "T1w",
         "rating": "Good"},
        {"participant_id": "sub-02", "suffix": "T1w", "rating": "Medium", "artifact": "motion"},
        {"participant_id": "sub-03", "suffix": "bold", "rating": "Bad", "notes": "a\tjerk"}]


@pytest.mark.parametrize("scale, written", [("grades", ["Good", "Medium", "Bad"]),
                                            ("mriqc", ["1", "0", "-1"])])
def test_both_scales_round_trip(tmp_path, scale, written):
    text = ratings_tsv(ROWS, scale=scale)
    lines = [line.split("\t") for line in text.splitlines()]
    assert lines[0] == list(COLUMNS)
    assert [line[COLUMNS.index("rating")] for line in lines[1:]] == written
    path = tmp_path / "ratings.tsv"
    path.write_text(text)
    back = read_ratings(path)
    assert [r.rating for r in back] == ["Good", "Medium", "Bad"]
    assert (back[0].participant_id, back[0].session_id, back[0].run_id) == ("01", "a", "1")
    assert back[1].artifact == "motion" and back[2].notes == "a jerk"
    assert back[0].matches("sub-01_ses-a_run-1_T1w") and back[2].matches("sub-03_bold")


def test_mriqc_ratings_without_bids_name_column(tmp_path):
    path = tmp_path / "r.tsv"
    path.write_text("participant_id\tsession_id\trun_id\tsuffix\trating\n"
                    "01\tn/a\tn/a\tT1w\t1\nsub-02\tn/a\tn/a\tT1w\t-1\nsub-03\tn/a\tn/a\tT1w\t0.0\n")
    assert [r.rating for r in read_ratings(path)] == ["Good", "Bad", "Medium"]


def test_unknown_scale_and_bad_rating(tmp_path):
    with pytest.raises(ValueError, match="unknown rating scale"):
        ratings_tsv(ROWS, scale="stars")
    path = tmp_path / "r.tsv"
    path.write_text("participant_id\trating\nsub-01\t2\n")
    with pytest.raises(RatingsError, match=r"r.tsv:2: rating '2'"):
        read_ratings(path)
