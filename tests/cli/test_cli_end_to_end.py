"""The real command line on a generated dataset, outputs read back."""
from __future__ import annotations

import csv
import json
import shutil
import tomllib

import nibabel as nb
import numpy as np
import pytest

from mmrqa_bids.testing.cli import run_cli

pytestmark = pytest.mark.slow
EXPECTED = ["sub-01_ses-1_T1w", "sub-01_ses-1_task-rest_bold", "sub-01_ses-2_run-01_T1w",
            "sub-01_ses-2_run-02_T1w", "sub-02_T1w", "sub-02_task-rest_bold"]


def read_tsv(path):
    with open(path) as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


@pytest.fixture(scope="module")
def processed(small_bids, tmp_path_factory):
    out = small_bids.parent / "derivatives_e2e"
    work = tmp_path_factory.mktemp("work")
    part = run_cli(small_bids, out, "participant", "--nprocs", "2", "-w", work)
    group = run_cli(small_bids, out, "group")
    return out, part, group


def test_participant_and_group_succeed(processed):
    out, part, group = processed
    assert part.returncode == 0, part.stderr + part.stdout
    assert group.returncode == 0, group.stderr + group.stdout
    for name in EXPECTED:
        assert f"[mmrqa] {name}: " in part.stdout  # one progress line per run
    assert "6 run(s) processed, 0 failed" in part.stdout


def test_dataset_description(processed):
    desc = json.loads((processed[0] / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "mmrqa"


def test_per_run_json(processed, small_bids):
    out = processed[0]
    paths = {
        "sub-01_ses-1_T1w": out / "sub-01/ses-1/anat/sub-01_ses-1_T1w.json",
        "sub-01_ses-1_task-rest_bold": out / "sub-01/ses-1/func/sub-01_ses-1_task-rest_bold.json",
        "sub-01_ses-2_run-02_T1w": out / "sub-01/ses-2/anat/sub-01_ses-2_run-02_T1w.json",
        "sub-02_T1w": out / "sub-02/anat/sub-02_T1w.json",
    }
    for name, path in paths.items():
        doc = json.loads(path.read_text())
        assert set(doc) >= {"bids_meta", "metrics", "grade", "artifacts", "narrative", "provenance"}
        assert doc["bids_meta"]["bids_name"] == name
        assert doc["bids_meta"]["checksum"].startswith("sha256:")
        assert doc["grade"]["label"] in ("Good", "Medium", "Bad")
        probs = doc["grade"]["probabilities"]
        assert set(probs) == {"Good", "Medium", "Bad"} and abs(sum(probs.values()) - 1) < 1e-6
        assert doc["grade"]["confidence"] == pytest.approx(max(probs.values()))
        assert set(doc["narrative"]) == {"classification", "artifact", "analysis"}
        assert all(doc["narrative"][k].strip() for k in doc["narrative"])
        assert doc["provenance"]["backend"] == "classifier" and doc["provenance"]["model_id"]
        assert all(np.isfinite(v) for v in doc["metrics"].values())
        outside = doc["grade"]["outside_training"]  # metrics the model never saw so far out
        assert set(outside) <= set(doc["metrics"])
        assert ("Caution:" in doc["narrative"]["classification"]) == bool(outside)
    bold = json.loads(paths["sub-01_ses-1_task-rest_bold"].read_text())
    assert "tsnr" in bold["metrics"]
    # The degraded run is graded worse than its clean twin.
    clean = json.loads(paths["sub-02_T1w"].read_text())["grade"]["probabilities"]
    bad = json.loads(paths["sub-01_ses-2_run-02_T1w"].read_text())["grade"]["probabilities"]
    assert bad["Good"] < clean["Good"]


def test_reports_and_group_tables(processed):
    out = processed[0]
    for name in EXPECTED:
        html = (out / f"{name}.html").read_text()
        assert name in html and "<img" in html
    t1 = read_tsv(out / "group_T1w.tsv")
    bold = read_tsv(out / "group_bold.tsv")
    assert [r["bids_name"] for r in t1] == [n for n in EXPECTED if n.endswith("T1w")]
    assert len(bold) == 2
    for row in t1:
        assert row["grade"] in ("Good", "Medium", "Bad") and row["status"] == "ok"
        assert float(row["p_good"]) + float(row["p_medium"]) + float(row["p_bad"]) == pytest.approx(1, abs=1e-4)
        assert row["outside_training"] == "n/a" or set(row["outside_training"].split(",")) <= set(row)
    assert (out / "group_T1w.html").stat().st_size > 0
    logs = list((out / "logs").glob("settings_participant_*.toml"))
    assert logs and tomllib.loads(logs[0].read_text())["execution"]["nprocs"] == 2


# --- bad input -------------------------------------------------------------------------------

def _bad_dataset(small_bids, root):
    shutil.copytree(small_bids, root)
    anat = root / "sub-09" / "anat"
    anat.mkdir(parents=True)
    good = root / "sub-02" / "anat" / "sub-02_T1w.nii.gz"
    raw = good.read_bytes()
    (anat / "sub-09_run-01_T1w.nii.gz").write_bytes(raw[: len(raw) // 3])  # truncated
    affine = np.eye(4)
    nb.save(nb.Nifti1Image(np.ones((30, 30), np.float32), affine), str(anat / "sub-09_run-02_T1w.nii.gz"))
    nb.save(nb.Nifti1Image(np.ones((20, 20, 20, 2, 2), np.float32), affine), str(anat / "sub-09_run-03_T1w.nii.gz"))
    nb.save(nb.Nifti1Image(np.zeros((30, 30, 30), np.float32), affine), str(anat / "sub-09_run-04_T1w.nii.gz"))
    nan = np.asarray(nb.load(str(good)).dataobj, dtype=np.float32)
    nan[10, 10, 10] = np.nan
    nb.save(nb.Nifti1Image(nan, affine), str(anat / "sub-09_run-05_T1w.nii.gz"))
    return root


def test_bad_runs_fail_alone(small_bids, tmp_path):
    ds = _bad_dataset(small_bids, tmp_path / "ds")
    out = ds / "derivatives" / "mmrqa"  # the usual BIDS place, not indexed as input
    res = run_cli(ds, out, "participant", "--participant-label", "02", "09", "-w", tmp_path / "w")
    assert res.returncode == 1, res.stdout + res.stderr
    expected = {"run-01": "cannot read image", "run-02": "expected a 3-D image",
                "run-03": "expected a 3-D image", "run-04": "all zeros", "run-05": "NaN"}
    lines = [l for l in res.stdout.splitlines() if l.startswith("[mmrqa] FAILED")]
    assert len(lines) == 5
    for run, problem in expected.items():
        line = next(l for l in lines if f"sub-09_{run}_T1w.nii.gz" in l)
        assert problem in line
        assert (out / "logs" / "failed" / f"sub-09_{run}_T1w.json").is_file()
    assert (out / "sub-02" / "anat" / "sub-02_T1w.json").is_file()  # the others complete
    assert run_cli(ds, out, "group").returncode == 0
    rows = {r["bids_name"]: r for r in read_tsv(out / "group_T1w.tsv")}
    assert rows["sub-02_T1w"]["status"] == "ok"
    assert rows["sub-09_run-04_T1w"]["status"] == "failed"
    assert "all zeros" in rows["sub-09_run-04_T1w"]["error"]
    # Re-running into the same folder overwrites cleanly.
    again = run_cli(ds, out, "participant", "--participant-label", "02", "09", "-w", tmp_path / "w")
    assert again.returncode == 1
    assert json.loads((out / "sub-02" / "anat" / "sub-02_T1w.json").read_text())["grade"]["label"]
    assert not list(out.rglob("*.tmp"))


@pytest.mark.parametrize("case, message", [
    ("not_a_dir", "not a directory"),
    ("no_description", "no dataset_description.json"),
    ("unknown_participant", "participant label(s) not found: 77"),
    ("no_match", "no runs match"),
    ("output_is_input", "refusing to write into raw data"),
    ("output_not_writable", "not writable"),
])
def test_dataset_level_errors_exit_2(small_bids, tmp_path, case, message):
    bids, out, extra = small_bids, tmp_path / "out", []
    if case == "not_a_dir":
        bids = tmp_path / "file.txt"
        bids.write_text("x")
    elif case == "no_description":
        bids = tmp_path / "empty"
        bids.mkdir()
    elif case == "unknown_participant":
        extra = ["--participant-label", "77"]
    elif case == "no_match":
        extra = ["-m", "FLAIR"]
    elif case == "output_is_input":
        out = small_bids
    elif case == "output_not_writable":
        out = tmp_path / "blocker" / "out"
        (tmp_path / "blocker").write_text("a file where a folder should be")
    res = run_cli(bids, out, "participant", *extra)
    assert res.returncode == 2, res.stdout + res.stderr
    err = res.stderr.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mmrqa: error:") and message in err[0]
