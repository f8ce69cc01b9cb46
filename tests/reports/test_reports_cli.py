"""The real command line: participant then group; the group level puts the dataset
percentiles into the individual reports."""
from __future__ import annotations

import re

import pytest

from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset
from mmrqa_bids.testing.cli import run_cli

PLANS = (RunPlan("01", "T1w"), RunPlan("02", "T1w"),
         RunPlan("03", "T1w", artifact="ghost", severity=0.6))


@pytest.mark.slow
def test_participant_then_group_reports(tmp_path):
    bids, out = tmp_path / "bids", tmp_path / "out"
    build_dataset(bids, PLANS, voxel_size=3.0, seed=2)
    # per-subject selection, as an array job: no join step, the report waits for the group level
    done = run_cli(bids, out, "participant", "-w", tmp_path / "work",
                   "--participant-label", "01", "02", "03")
    assert done.returncode == 0, done.stdout + done.stderr
    report = out / "sub-03_T1w.html"
    html = report.read_text()
    assert html.count("data:image/png;base64,") == 4 and "Run the group level" in html
    done = run_cli(bids, out, "group")
    assert done.returncode == 0, done.stdout + done.stderr
    html = report.read_text()
    assert "among the 3 T1w run(s)" in html and "percentile in dataset" in html
    assert html.count("data:image/png;base64,") == 4  # the images survive the injection
    assert len(re.findall(r'<td class="pctcell">', html)) >= 5
    group = (out / "group_T1w.html").read_text()
    assert all(f'data-run="sub-0{i}_T1w"' in group for i in (1, 2, 3))
