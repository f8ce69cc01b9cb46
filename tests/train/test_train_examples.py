"""Training examples: which runs are used, simulated copies (labels from severity, training
participants only), metrics and mosaics computed like the participant level, cached."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmrqa_bids.bids import RunSpec
from mmrqa_bids.ratings import read_ratings
from mmrqa_bids.train.examples import plan_examples, realise

pytest.importorskip("torchio")


@pytest.fixture(scope="module")
def runs_and_ratings(rated_bids):
    root, tsv = rated_bids
    runs = [RunSpec(path=p, suffix="T1w", datatype="anat",
                    entities={"subject": p.name.split("_")[0][4:]})
            for p in sorted(root.glob("sub-*/anat/*.nii.gz"))]
    return runs, read_ratings(tsv)


def test_plan_uses_rated_runs_and_simulates_only_training_good_runs(runs_and_ratings):
    from mmrqa_bids.artifacts import ARTIFACTS, SEVERITY_TO_LABEL
    runs, ratings = runs_and_ratings
    specs = plan_examples(runs, ratings[:-1], held_out={"01"}, simulate=3, seed=0)  # 05 unrated
    expert = [s for s in specs if s.origin == "expert"]
    assert [s.participant for s in expert] == ["01", "02", "03", "04"]
    assert {s.participant: s.split for s in expert}["01"] == "test"
    assert {s.participant: s.artifact for s in expert}["04"] == "ghosting"
    simulated = [s for s in specs if s.origin == "simulated"]
    # Good runs in training: none here (01 is held out, 05 unrated) -> no copies.
    assert simulated == []
    specs = plan_examples(runs, ratings, held_out={"01"}, simulate=3, seed=0)
    simulated = [s for s in specs if s.origin == "simulated"]
    assert [s.example_id for s in simulated] == [f"sub-05_T1w_sim-0{k}" for k in (1, 2, 3)]
    for s in simulated:
        assert s.split == "train" and s.artifact in ARTIFACTS
        assert s.label == SEVERITY_TO_LABEL[s.severity] and s.sim_seed is not None
    assert specs == plan_examples(runs, ratings, held_out={"01"}, simulate=3, seed=0)
    assert specs != plan_examples(runs, ratings, held_out={"01"}, simulate=3, seed=1)


def test_realise_measures_degrades_and_caches(runs_and_ratings, tmp_path):
    from dataclasses import replace
    runs, ratings = runs_and_ratings
    specs = plan_examples(runs, ratings, held_out=set(), simulate=1, seed=0)
    clean = next(s for s in specs if s.example_id == "sub-01_T1w")
    copy = replace(next(s for s in specs if s.example_id == "sub-01_T1w_sim-01"),
                   artifact="noise", severity="severe")
    a = realise(clean, tmp_path / "img", tmp_path / "cache")
    b = realise(copy, tmp_path / "img", tmp_path / "cache")
    assert Path(a["mosaic"]).read_bytes().startswith(b"\x89PNG")
    assert Path(b["mosaic"]).name == "sub-01_T1w_sim-01.png"
    assert b["metrics"]["snr1"] < 0.7 * a["metrics"]["snr1"]  # severe noise
    cached = list((tmp_path / "cache").glob("sub-01_T1w.*.json"))
    assert len(cached) == 1 and json.loads(cached[0].read_text()) == a
    assert realise(clean, tmp_path / "img", tmp_path / "cache") == a
