"""Measuring the metric classifier's examples: the metrics code hash and the metrics cache
(mmrqa_bids/train/metric_model/measuring.py)."""
from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torchio")

from mmrqa_bids.train.metric_model import measuring  # noqa: E402
from mmrqa_bids.train.metric_model.recipe import DEFAULT_RECIPE, plan_examples  # noqa: E402


def test_metrics_code_hash_ignores_documentation_but_not_code(tmp_path, monkeypatch):
    import shutil
    from pathlib import Path

    import mmrqa_bids.metrics as metrics_pkg

    src = Path(metrics_pkg.__file__).parent
    copy_dir = tmp_path / "metrics"
    shutil.copytree(src, copy_dir, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setattr(metrics_pkg, "__file__", str(copy_dir / "__init__.py"))
    base = measuring.metrics_code_hash()
    masks = copy_dir / "masks.py"
    text = masks.read_text()
    masks.write_text(text.replace('"""Head', '"""Edited. Head', 1) + "\n# a comment\n")
    assert measuring.metrics_code_hash() == base
    masks.write_text(text + "\nEXTRA = 1\n")
    assert measuring.metrics_code_hash() != base


def test_measure_example_caches_an_undefined_metric_as_null_and_reads_it_back_as_nan(
        tmp_path, monkeypatch):
    """Strict JSON has no NaN: a metric undefined on an example (NaN or inf) is cached as
    null, and the fresh record and the cached one agree (NaN, the trees' missing value)."""
    import json
    from types import SimpleNamespace

    import mmrqa_bids.metrics as metrics_pkg

    sim = SimpleNamespace(data=np.zeros((4, 4, 4)), degradation=0.1, label="Medium")
    monkeypatch.setattr(measuring, "simulate_example", lambda ex, cache_dir=None: sim)
    monkeypatch.setattr(metrics_pkg, "measure", lambda *a, **k: SimpleNamespace(
        metrics={"snr_total": 3.0, "fwhm_avg": np.nan, "qi_1": np.inf}))
    ex = plan_examples(DEFAULT_RECIPE, "anat")[0]
    fresh = measuring.measure_example(ex, tmp_path)
    stored = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert stored["metrics"] == {"snr_total": 3.0, "fwhm_avg": None, "qi_1": None}
    cached = measuring.measure_example(ex, tmp_path)
    for record in (fresh, cached):
        assert record["metrics"]["snr_total"] == 3.0 and record["label"] == "Medium"
        assert np.isnan(record["metrics"]["fwhm_avg"]) and np.isnan(record["metrics"]["qi_1"])
