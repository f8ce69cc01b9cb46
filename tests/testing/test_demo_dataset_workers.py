"""The demo dataset made in two processes is byte-identical to the one made in one."""
from __future__ import annotations

import hashlib
import multiprocessing as mp

import pytest

from mmrqa_bids.testing.demo_dataset import RunPlan, build_dataset

PLANS = (RunPlan("01", "T1w"), RunPlan("01", "bold", task="rest"),
         RunPlan("02", "T1w", artifact="motion", severity=0.6),
         RunPlan("02", "T2w", artifact="ghost", severity=0.5),
         RunPlan("03", "bold", task="rest", artifact="motion", severity=0.8),
         RunPlan("03", "T1w", noise=0.05, gain=900.0))


def _digests(root):
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="needs fork")
def test_two_workers_write_the_same_files_as_one(tmp_path):
    one = build_dataset(tmp_path / "one", PLANS, voxel_size=4.0, bold_voxel_size=6.0, seed=3)
    two = build_dataset(tmp_path / "two", PLANS, voxel_size=4.0, bold_voxel_size=6.0, seed=3,
                        workers=2)
    # the same paths, in the order of the plans, and the same bytes in every file
    assert [p.relative_to(tmp_path / "one") for p in one] == \
        [p.relative_to(tmp_path / "two") for p in two]
    assert _digests(tmp_path / "one") == _digests(tmp_path / "two")
    assert len(_digests(tmp_path / "one")) == 2 * len(PLANS) + 2  # images, sidecars, 2 tables
