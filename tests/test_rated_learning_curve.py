"""benchmarks/rated_learning_curve.py ranks rate next once per study and takes prefixes: the
runs ``choose`` rates for k are the first k of those it rates for any larger k (greedy
batches of 20, each ranked by the model recalibrated on the full batches before it)."""
from __future__ import annotations

import gzip
import json

import numpy as np


def test_rate_next_for_k_is_the_prefix_of_its_ranking_for_a_larger_k(load_benchmark):
    from mmrqa_bids.resources import data_dir

    bench = load_benchmark("rated_learning_curve")
    doc = json.loads(gzip.decompress((data_dir() / "cohort_anat.json.gz").read_bytes()))
    rng = np.random.default_rng(7)
    n, m = 48, len(doc["features"])
    z = rng.standard_normal((n, m)) * np.where(np.arange(n) % 4 == 0, 3.0, 1.0)[:, None]
    rel = np.clip(0.05 * z, -1, 1)
    labels = np.array(["Good", "Medium", "Bad"])[np.minimum(np.abs(z).mean(1).astype(int), 2)]
    full = bench.choose("rate next", 45, doc, z, rel, labels, None)
    assert len(full) == len(set(full)) == 45
    for k in (5, 20, 21, 40):
        assert bench.choose("rate next", k, doc, z, rel, labels, None) == full[:k]
