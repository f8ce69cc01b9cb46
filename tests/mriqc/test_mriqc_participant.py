import json
import shutil

import pytest
from mriqc_testdata import NEW_JSON

from mmrqa_bids.cli.run import main
from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset


@pytest.mark.slow
def test_participant_with_mriqc_dir(tmp_path, capsys):
    bids = tmp_path / "bids"
    build_dataset(bids, [RunPlan("01", "T1w"), RunPlan("02", "T1w"), RunPlan("03", "T1w")],
                  voxel_size=3)
    mriqc = tmp_path / "mriqc"
    ok = mriqc / "sub-01" / "anat" / "sub-01_T1w.json"
    ok.parent.mkdir(parents=True)
    shutil.copy(NEW_JSON, ok)
    corrupt = mriqc / "sub-03" / "anat" / "sub-03_T1w.json"
    corrupt.parent.mkdir(parents=True)
    corrupt.write_text('{"cjv": ')
    out = tmp_path / "out"
    code = main([str(bids), str(out), "participant", "--mriqc-dir", str(mriqc),
                 "-w", str(tmp_path / "work"), "--no-reports"])
    printed = capsys.readouterr().out
    assert code == 0

    def metrics(sub):
        doc = json.loads((out / f"sub-{sub}" / "anat" / f"sub-{sub}_T1w.json").read_text())
        return doc["metrics"]

    first = metrics("01")
    assert first["mriqc_cjv"] == pytest.approx(0.456) and "mriqc_snrd_total" in first
    assert "snr1" in first  # mmrqa's own metrics stay
    assert not any(k.startswith("mriqc_") for k in metrics("02"))
    assert not any(k.startswith("mriqc_") for k in metrics("03"))
    assert "sub-02_T1w: MRIQC did not process this run" in printed
    assert "sub-03_T1w: MRIQC output unusable" in printed and "not valid JSON" in printed


def test_participant_with_missing_mriqc_dir(tmp_path, capsys):
    bids = tmp_path / "bids"
    bids.mkdir()
    (bids / "dataset_description.json").write_text('{"Name": "x", "BIDSVersion": "1.9.0"}')
    code = main([str(bids), str(tmp_path / "out"), "participant",
                 "--mriqc-dir", str(tmp_path / "nope")])
    assert code == 2
    assert "--mriqc-dir is not a directory" in capsys.readouterr().err
