"""mmrqa-mriqc's dataset grades: each run against the other runs of its cohort."""
from __future__ import annotations

import csv
import json

from mriqc_testdata import write_site

from mmrqa_bids.cli.mriqc import main
from mmrqa_bids.cohorts.relative import MIN_COHORT_SIZE
from mmrqa_bids.mriqc.cohorts import iqm_protocol
from mmrqa_bids.mriqc.iqms import IqmRecord


def _rows(path):
    return {r["bids_name"]: r for r in csv.DictReader(path.read_text().splitlines(), delimiter="\t")}


def _one_grid(root):
    """The jittered fixture varies the image grid per run; a real site's protocol does not."""
    for path in root.glob("sub-*/anat/*.json"):
        doc = json.loads(path.read_text())
        doc.update({f"spacing_{a}": 1.0 for a in "xyz"} | {f"size_{a}": 176 for a in "xyz"})
        path.write_text(json.dumps(doc))


def test_protocol_from_the_iqm_table():
    rec = IqmRecord(bids_name="sub-01_acq-fast_run-2_T1w", source="x",
                    iqms={"spacing_x": 0.99999, "spacing_y": 1.0, "spacing_z": 1.2,
                          "size_x": 176.0, "size_y": 256.0, "size_z": 256.0, "cjv": 0.4})
    assert iqm_protocol(rec, "T1w") == {"suffix": "T1w", "acquisition": "fast",
                                        "voxel_size_mm": [1.0, 1.0, 1.2], "matrix": [176, 256, 256]}
    bare = IqmRecord(bids_name="sub-01_T1w", source="x", iqms={"cjv": 0.4})
    assert iqm_protocol(bare, "T1w") == {"suffix": "T1w"}


def test_site_graded_against_itself_with_the_iqm_model_kept(tmp_path, capsys):
    mriqc, out = tmp_path / "mriqc", tmp_path / "out"
    write_site(mriqc, 14)
    _one_grid(mriqc)
    assert main([str(mriqc), str(out)]) == 0
    rows = _rows(out / "group_T1w.tsv")
    assert {r["basis"] for r in rows.values()} == {"dataset"}
    assert {r["cohort_size"] for r in rows.values()} == {"14"}
    assert all(r["model_grade"] in ("Good", "Medium", "Bad") for r in rows.values())
    console = capsys.readouterr().out
    assert "14 runs compared with each other: sub-01_T1w" in console
    assert 'data-basis="dataset"' in (out / "group_T1w.html").read_text()


def test_cohort_file_splits_sites_and_small_ones_keep_the_model_grade(tmp_path):
    mriqc, out = tmp_path / "mriqc", tmp_path / "out"
    small = MIN_COHORT_SIZE - 1
    names = write_site(mriqc, small + MIN_COHORT_SIZE)
    _one_grid(mriqc)
    sites = tmp_path / "sites.tsv"
    sites.write_text("bids_name\tcohort\n" + "".join(
        f"{n}\t{'siteB' if i < small else 'siteA'}\n" for i, n in enumerate(names)))
    assert main([str(mriqc), str(out), "--cohort-by", str(sites)]) == 0
    rows = _rows(out / "group_T1w.tsv")
    b = [rows[n] for n in names[:small]]
    assert {r["basis"] for r in b} == {"model"} and {r["cohort_size"] for r in b} == {str(small)}
    assert all(r["grade"] == r["model_grade"] for r in b)  # the fallback is the IQM model's
    a = [rows[n] for n in names[small:]]
    assert {r["basis"] for r in a} == {"dataset"}
    sites.write_text("bids_name\tcohort\nsub-01_T1w\tsiteA\n")
    assert main([str(mriqc), str(out), "--cohort-by", str(sites)]) == 2


def test_cohort_by_none_keeps_the_iqm_model_grade(tmp_path, capsys):
    mriqc, out = tmp_path / "mriqc", tmp_path / "out"
    write_site(mriqc, MIN_COHORT_SIZE + 4)
    _one_grid(mriqc)
    assert main([str(mriqc), str(out / "rel")]) == 0
    relative = _rows(out / "rel" / "group_T1w.tsv")
    assert main([str(mriqc), str(out / "abs"), "--cohort-by", "none"]) == 0
    rows = _rows(out / "abs" / "group_T1w.tsv")
    assert set(rows) == set(relative)
    assert {r["basis"] for r in rows.values()} == {"model"}
    assert {r["cohort"] for r in rows.values()} == {""}
    # the IQM model's grade, which the dataset-graded table keeps as model_grade
    assert {n: r["grade"] for n, r in rows.items()} == \
        {n: r["model_grade"] for n, r in relative.items()}
    assert all(r["grade"] == r["model_grade"] for r in rows.values())
    assert f"--cohort-by none: {MIN_COHORT_SIZE + 4} run(s) keep the IQM model's grade" \
        in capsys.readouterr().out
