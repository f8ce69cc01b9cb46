"""Simulated cohort pools: stable plans, subject variation, cohort draws."""
from __future__ import annotations

import numpy as np
import pytest

from mmrqa_bids.cohorts import simulate as S


def test_a_larger_pool_keeps_every_run_of_a_smaller_one():
    small = S.plan_pool("tpm-T1w", n_clean=4, per_artifact_severity=1)
    large = S.plan_pool("tpm-T1w", n_clean=8, per_artifact_severity=2)
    assert {r.key() for r in small} <= {r.key() for r in large}
    assert len(small) == 4 + 21 and len({r.seed for r in large}) == len(large)


def test_unknown_source_is_a_clear_error():
    with pytest.raises(S.CohortSimulationError, match="unknown cohort source 'nope'"):
        S.source_by_name("nope")


def test_every_family_has_real_heads_as_acquired():
    for family in ("anat", "bold"):
        kinds = {s.kind for s in S.SOURCES if s.family == family}
        assert kinds == {"real", "rendered"}


def _pool():
    return ([{"severity": "none", "label": "Good"}] * 10
            + [{"severity": "severe", "label": "Bad"}] * 5)


@pytest.mark.parametrize("size, prevalence, n_bad", [(20, 0.2, 4), (8, 0.05, 1), (12, 0.0, 0)])
def test_draw_cohort_prevalence(size, prevalence, n_bad):
    pool = _pool()
    idx = S.draw_cohort(pool, size, prevalence, np.random.default_rng(0))
    assert len(idx) == size
    assert sum(pool[i]["severity"] != "none" for i in idx) == n_bad


def test_draw_cohort_without_replacement_while_the_pool_allows():
    idx = S.draw_cohort(_pool(), 10, 0.3, np.random.default_rng(1))
    assert len(set(idx)) == 10


def test_draw_cohort_errors():
    with pytest.raises(S.CohortSimulationError, match="at least 2 runs"):
        S.draw_cohort(_pool(), 1, 0.2, np.random.default_rng(0))
    with pytest.raises(S.CohortSimulationError, match="prevalence"):
        S.draw_cohort(_pool(), 10, 1.0, np.random.default_rng(0))


def test_subjects_of_a_real_source_differ_but_stay_that_head():
    pytest.importorskip("dipy")
    src = S.source_by_name("b0-bold-real")
    a, vox = S.subject_clean(src, np.random.default_rng(1))
    b, _ = S.subject_clean(src, np.random.default_rng(2))
    real, zooms = S.real_volume("b0")
    assert vox == zooms and a.shape == b.shape == real.shape
    assert not np.allclose(a, b)
    # Another subject of the same head: strongly correlated with the real volume.
    r = real / np.percentile(real[real > 0.05 * real.max()], 99.5)
    assert np.corrcoef(a.ravel(), r.ravel())[0, 1] > 0.8


def test_a_cached_record_of_another_metrics_code_is_measured_again(tmp_path, monkeypatch):
    """The pool cache reuses a record only when the current metrics code measured it; any
    other is measured again and overwritten (a pool never mixes metric versions)."""
    import json

    import mmrqa_bids.metrics as metrics_pkg

    run = S.plan_pool("tpm-T1w", n_clean=1, per_artifact_severity=0)[0]
    calls = []

    class Measured:
        metrics = {"efc": 0.5, "cjv": float("nan")}

    def fake_measure(data, suffix, vox):
        calls.append(suffix)
        return Measured()

    def fake_simulate(r, cache_dir=None):
        sim = type("Sim", (), {"data": np.zeros((4, 4, 4)), "degradation": 0.0,
                               "label": "Good"})
        return sim(), (3.0, 3.0, 3.0)

    monkeypatch.setattr(metrics_pkg, "measure", fake_measure)
    monkeypatch.setattr(S, "simulate_run", fake_simulate)
    path = tmp_path / "cohort-pools" / S.pool_cache_key() / f"{run.key()}.json"
    path.parent.mkdir(parents=True)
    stale = {"source": run.source, "replicate": 0, "artifact": "none", "severity": "none",
             "metrics": {"efc": 9.0}, "degradation": 0.0, "label": "Good",
             "metrics_code": "another-code"}
    path.write_text(json.dumps(stale))
    rec = S.measure_run(run, tmp_path, metrics_code="current-code")
    assert calls == ["T1w"] and rec["metrics"]["efc"] == 0.5
    assert rec["metrics_code"] == "current-code"
    stored = json.loads(path.read_text())
    assert stored["metrics_code"] == "current-code" and stored["metrics"]["cjv"] is None
    # measured by the current code: read back, not measured again
    again = S.measure_run(run, tmp_path, metrics_code="current-code")
    assert calls == ["T1w"] and again["metrics"]["efc"] == 0.5
    assert np.isnan(again["metrics"]["cjv"])
    # the default code is the current metrics package's
    rec = S.measure_pool([run], tmp_path, verbose=False)[0]
    assert len(calls) == 2 and rec["metrics_code"] != "current-code"


def test_native_t1w_sources_are_found_but_stay_out_of_the_cohort_sources():
    from mmrqa_bids.cohorts.simulate import NATIVE_T1W_SOURCES, SOURCES, source_by_name

    for src in NATIVE_T1W_SOURCES:
        assert source_by_name(src.name) is src
        assert src.kind == "real" and src.family == "anat" and src.voxel_size == 0.0
        assert src not in SOURCES  # the cohort model's training and benchmarks never read them
    assert {s.anatomy for s in NATIVE_T1W_SOURCES} == {"robex", "mni"}
