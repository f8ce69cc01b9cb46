"""Fixtures of the train-level tests: the offline tiny LLaVA-OneVision and a small rated BIDS
dataset (3 mm voxels) whose runs differ in quality."""
from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    pytest.importorskip("torch")
    from mmrqa_bids.testing.tiny_llava import build_tiny_llava

    return build_tiny_llava(tmp_path_factory.mktemp("tiny_base") / "model")


#: (subject, demo-dataset keyword arguments, rating, artifact)
RATED_RUNS = (
    ("01", {}, "Good", None),
    ("02", {"artifact": "motion", "severity": 1.0, "noise": 0.03}, "Bad", "motion"),
    ("03", {"noise": 0.06}, "Medium", "noise"),
    ("04", {"artifact": "ghost", "severity": 0.8}, "Bad", "ghosting"),
    ("05", {}, "Good", None),
)


@pytest.fixture(scope="session")
def rated_bids(tmp_path_factory) -> tuple[Path, Path]:
    """(BIDS root, ratings TSV): five T1w runs, one per participant, rated by hand."""
    from mmrqa_bids.ratings import ratings_tsv
    from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

    root = tmp_path_factory.mktemp("rated") / "bids"
    build_dataset(root, [RunPlan(sub, "T1w", **kw) for sub, kw, _, _ in RATED_RUNS],
                  voxel_size=3.0)
    tsv = root.parent / "ratings.tsv"
    tsv.write_text(ratings_tsv({"participant_id": f"sub-{sub}", "suffix": "T1w", "rating": rating,
                                "artifact": artifact} for sub, _, rating, artifact in RATED_RUNS))
    return root, tsv
