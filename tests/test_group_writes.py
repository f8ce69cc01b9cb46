"""The group level's concurrent rewrite of run JSONs: same bytes as one at a time, errors raised."""
from __future__ import annotations

import json

import pytest

from mmrqa_bids.group import write_json_files
from mmrqa_bids.io import atomic_write_json


def _items(root, n=40):
    return [(root / f"sub-{i:02d}" / "anat" / f"sub-{i:02d}_T1w.json",
             {"bids_meta": {"bids_name": f"sub-{i:02d}_T1w"}, "metrics": {"snr": i + 0.5}})
            for i in range(n)]


@pytest.mark.parametrize("threads", [1, 8])
def test_writes_equal_one_at_a_time(tmp_path, threads):
    write_json_files(_items(tmp_path / "pool"), threads=threads)
    for path, content in _items(tmp_path / "one"):
        atomic_write_json(path, content)
    for (pool, _), (one, content) in zip(_items(tmp_path / "pool"), _items(tmp_path / "one")):
        assert pool.read_bytes() == one.read_bytes()
        assert json.loads(pool.read_text()) == content
    # no temporary file is left beside the outputs
    assert not [p for p in (tmp_path / "pool").rglob("*") if p.name.endswith(".tmp")]


def test_an_unwritable_document_raises_and_the_others_are_written(tmp_path):
    items = _items(tmp_path)
    bad_path = items[5][0]
    items[5] = (bad_path, {"metrics": {"snr": float("nan")}})  # strict JSON refuses NaN
    with pytest.raises(ValueError):
        write_json_files(items, threads=8)
    assert not bad_path.exists()
    assert all(p.exists() for i, (p, _) in enumerate(items) if i != 5)
