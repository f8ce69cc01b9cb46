"""Nipype's plugins change where and when nodes run, never what they compute; and a work
directory reused with --resume does not recompute finished runs."""
from __future__ import annotations

import json

import pytest
from nipype.utils.filemanip import loadpkl

from scaleout_common import assert_same_derivatives, make_dataset, run_cli

pytestmark = pytest.mark.slow


def _node_results(work, node: str) -> dict[str, float]:
    """result pickle path -> the node's recorded start time, for every run's ``node``."""
    out = {}
    for path in sorted(work.glob(f"mmrqa_participant_wf/run_wf/*/{node}/result_{node}.pklz")):
        out[str(path)] = loadpkl(path).runtime.startTime
    return out


def test_multiproc_matches_linear(tmp_path):
    bids = make_dataset(tmp_path / "bids")
    run_cli(bids, tmp_path / "linear", "participant", "--plugin", "Linear",
            "-w", tmp_path / "work_linear")
    multi = run_cli(bids, tmp_path / "multi", "participant", "--nprocs", "2",
                    "-w", tmp_path / "work_multi")
    assert "3 run(s) processed, 0 failed" in multi.stdout
    settings = next((tmp_path / "multi" / "logs").glob("settings_participant_*.toml")).read_text()
    assert 'plugin = "MultiProc"' in settings
    assert_same_derivatives(tmp_path / "linear", tmp_path / "multi")


def test_resume_reuses_finished_runs(tmp_path):
    bids = make_dataset(tmp_path / "bids")
    work, out = tmp_path / "work", tmp_path / "out"
    run_cli(bids, out, "participant", "-w", work)
    first = _node_results(work, "measure")
    assert len(first) == 3
    # An interrupted dataset: one run's derivatives are lost, its cached nodes too.
    lost = sorted(first)[0]
    (work / lost).unlink()
    run_cli(bids, out, "participant", "-w", work, "--resume")
    second = _node_results(work, "measure")
    assert second.keys() == first.keys()
    rerun = {p for p in first if first[p] != second[p]}
    assert rerun == {lost}, "only the run whose cache was lost is recomputed"
    # Without --resume the work directory starts over.
    run_cli(bids, out, "participant", "-w", work)
    third = _node_results(work, "measure")
    assert all(third[p] != second[p] for p in second)
    assert all(json.loads(p.read_text())["grade"]["label"]
               for p in out.glob("sub-*/anat/*.json"))
