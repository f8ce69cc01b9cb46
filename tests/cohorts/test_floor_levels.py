"""The floor-level option of the cohort simulation: one noise-floor level per pool, each
subject's floor within a factor ~1.5 of it, each cohort drawn from one level; off, every key,
record and draw is that of before the option."""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import numpy as np
import pytest

from mmrqa_bids.cohorts import simulate as S
from mmrqa_bids.cohorts import train as T


def test_key_of_a_run_without_a_level_is_unchanged():
    run = S.plan_pool("tpm-T1w")[0]
    assert run.floor_level is None
    # the key as it was computed before the option existed (five fields)
    old = {k: v for k, v in asdict(run).items() if k != "floor_level"}
    assert run.key() == hashlib.sha256(json.dumps(old, sort_keys=True).encode()
                                       ).hexdigest()[:20]
    # pinned: a cached record of the shipped pool is found under this name
    assert run.key() == "8e6c691a3cdb055a7831"
    assert run.seed == 4178809134


def test_runs_with_a_level_have_keys_and_subjects_of_their_own():
    off = S.plan_pool("robex-T1w-real")
    lo = S.plan_pool("robex-T1w-real", floor_level=0.004)
    hi = S.plan_pool("robex-T1w-real", floor_level=0.011)
    assert len(off) == len(lo) == len(hi) == 53
    assert all(r.floor_level == 0.004 for r in lo)
    keys = [{r.key() for r in p} for p in (off, lo, hi)]
    assert all(len(k) == 53 for k in keys)
    assert not (keys[0] & keys[1]) and not (keys[0] & keys[2]) and not (keys[1] & keys[2])
    assert not ({r.seed for r in lo} & {r.seed for r in hi})
    # a larger pool at a level keeps the runs of a smaller one
    small = S.plan_pool("tpm-T1w", n_clean=4, floor_level=0.01)
    large = S.plan_pool("tpm-T1w", n_clean=8, per_artifact_severity=2, floor_level=0.01)
    assert {r.key() for r in small} <= {r.key() for r in large}
    with pytest.raises(S.CohortSimulationError, match="floor level must be > 0"):
        S.plan_pool("tpm-T1w", floor_level=0.0)


def test_pool_names():
    assert S.pool_name("tpm-T1w") == "tpm-T1w"
    assert S.pool_name("tpm-T1w", 0.01) == "tpm-T1w@floor0.01"


@pytest.mark.parametrize("source", ["robex-T1w-real", "tpm-T1w"])
def test_subject_floors_stay_within_the_factor_of_their_level(source):
    kind = S.source_by_name(source).kind
    for level in S.FLOOR_LEVELS[kind]:
        runs = S.plan_pool(source, floor_level=level)
        floors = np.array([S.subject_floor(r, np.random.default_rng(r.seed)) for r in runs])
        assert np.all(floors >= level / S.FLOOR_SPREAD - 1e-12)
        assert np.all(floors <= level * S.FLOOR_SPREAD + 1e-12)
        assert floors.max() / floors.min() <= S.FLOOR_SPREAD ** 2 + 1e-9
        assert floors.max() / floors.min() > 1.2  # the factor is used, not a constant
    assert S.FLOOR_SPREAD ** 2 == pytest.approx(1.49, abs=0.01)


def test_without_a_level_the_floor_is_drawn_as_before():
    real = S.plan_pool("robex-T1w-real")[0]
    rendered = S.plan_pool("tpm-T1w")[0]
    rng, ref = np.random.default_rng(5), np.random.default_rng(5)
    assert S.subject_floor(real, rng) == float(ref.uniform(*S.REAL_NOISE))
    rng2 = np.random.default_rng(5)
    assert S.subject_floor(rendered, rng2) is None
    # a rendered head draws nothing: the artifacts module draws its floor (BASE_NOISE)
    assert rng2.random() == np.random.default_rng(5).random()


def test_a_simulated_run_at_a_level_carries_its_floor():
    run = S.plan_pool("tpm-T1w", n_clean=1, per_artifact_severity=0, floor_level=0.01)[0]
    sim, _ = S.simulate_run(run)
    sigma = sim.params["noise_sigma"]
    assert 0.01 / S.FLOOR_SPREAD <= sigma <= 0.01 * S.FLOOR_SPREAD
    assert sigma == pytest.approx(S.subject_floor(run, _rng_after_subject(run)))


def _rng_after_subject(run):
    """The run's rng as simulate_run leaves it after the subject is drawn."""
    rng = np.random.default_rng(run.seed)
    S.subject_clean(S.source_by_name(run.source), rng)
    return rng


def _fake_measuring(monkeypatch, calls):
    import mmrqa_bids.metrics as metrics_pkg

    class Measured:
        metrics = {"efc": 0.5}

    def fake_measure(data, suffix, vox):
        calls.append(suffix)
        return Measured()

    def fake_simulate(r, cache_dir=None):
        sim = type("Sim", (), {"data": np.zeros((4, 4, 4)), "degradation": 0.0,
                               "label": "Good", "params": {"noise_sigma": 0.0123}})
        return sim(), (3.0, 3.0, 3.0)

    monkeypatch.setattr(metrics_pkg, "measure", fake_measure)
    monkeypatch.setattr(S, "simulate_run", fake_simulate)


def test_records_name_their_level_only_when_one_is_set(tmp_path, monkeypatch):
    calls: list = []
    _fake_measuring(monkeypatch, calls)
    off = S.plan_pool("tpm-T1w", n_clean=1, per_artifact_severity=0)[0]
    on = S.plan_pool("tpm-T1w", n_clean=1, per_artifact_severity=0, floor_level=0.01)[0]
    rec_off = S.measure_run(off, tmp_path, metrics_code="c")
    rec_on = S.measure_run(on, tmp_path, metrics_code="c")
    assert set(rec_off) == {"source", "replicate", "artifact", "severity", "metrics",
                            "degradation", "label", "metrics_code"}
    assert rec_on["floor_level"] == 0.01 and rec_on["noise_sigma"] == 0.0123
    folder = tmp_path / "cohort-pools" / S.pool_cache_key()
    assert {p.name for p in folder.iterdir()} == {f"{off.key()}.json", f"{on.key()}.json"}


def test_plan_cohorts_goes_round_the_levels_with_the_same_draws():
    levels = {"tpm-T1w": (0.007, 0.010, 0.014), "robex-T1w-real": (0.004, 0.011)}
    off = T.plan_cohorts(list(levels), 7, seed=3)
    on = T.plan_cohorts(list(levels), 7, seed=3, floor_levels=levels)
    assert [(d.source, d.size, d.prevalence, d.seed) for d in off] == \
        [(d.source, d.size, d.prevalence, d.seed) for d in on]
    assert all(d.floor_level is None and d.pool == d.source for d in off)
    tpm = [d.floor_level for d in on if d.source == "tpm-T1w"]
    assert tpm == [0.007, 0.010, 0.014, 0.007, 0.010, 0.014, 0.007]
    assert {d.pool for d in on if d.source == "robex-T1w-real"} == \
        {"robex-T1w-real@floor0.004", "robex-T1w-real@floor0.011"}
    grid = T.plan_cohorts(["tpm-T1w"], 1, seed=3, sizes=(8, 16), prevalences=(0.1,),
                          floor_levels=levels)
    assert [d.floor_level for d in grid] == [0.007, 0.010]
    with pytest.raises(ValueError, match="no floor level"):
        T.plan_cohorts(["tpm-T1w"], 2, floor_levels={"tpm-T1w": ()})


def _pool(level: float, n_clean: int = 12, n_bad: int = 6) -> list[dict]:
    """A fake pool whose every run carries its level in a metric."""
    recs = []
    for i in range(n_clean + n_bad):
        sev = "none" if i < n_clean else "severe"
        recs.append({"source": "tpm-T1w", "severity": sev, "artifact": "none" if sev == "none"
                     else "blur", "label": "Good" if sev == "none" else "Bad",
                     "metrics": {"cjv": level, "efc": 1.0 + 0.01 * i}})
    return recs


def test_every_cohort_is_drawn_from_one_level():
    levels = {"tpm-T1w": (0.007, 0.010, 0.014)}
    pools = {S.pool_name("tpm-T1w", v): _pool(v) for v in levels["tpm-T1w"]}
    draws = T.plan_cohorts(["tpm-T1w"], 9, seed=1, floor_levels=levels)
    seen = []
    for draw in draws:
        rng = np.random.default_rng(draw.seed)
        members = S.draw_cohort(pools[draw.pool], draw.size, draw.prevalence, rng)
        values = {pools[draw.pool][i]["metrics"]["cjv"] for i in members}
        assert values == {draw.floor_level}
        seen.append(draw.floor_level)
    assert set(seen) == set(levels["tpm-T1w"])
    # the table reads each cohort from its level's pool: cjv never departs within a cohort
    table = T.cohort_table(pools, draws, ("cjv", "efc"))
    assert np.allclose(table["z"][:, 0], 0.0)
    assert set(table["source"].tolist()) == {"tpm-T1w"}  # source names, for held-out folds


def test_load_and_read_pools_by_level(tmp_path, monkeypatch):
    calls: list = []
    _fake_measuring(monkeypatch, calls)
    levels = {"tpm-T1w": (0.007, 0.014)}
    pools = T.load_pools(["tpm-T1w"], tmp_path, verbose=False, floor_levels=levels)
    assert list(pools) == ["tpm-T1w@floor0.007", "tpm-T1w@floor0.014"]
    assert [r["floor_level"] for r in pools["tpm-T1w@floor0.014"]] == [0.014] * 53
    folder = tmp_path / "cohort-pools" / S.pool_cache_key()
    read = T.read_pools(["tpm-T1w"], folder, floor_levels=levels)
    assert list(read) == list(pools) and len(read["tpm-T1w@floor0.007"]) == 53
    # off: the source's own pool, which this folder does not hold
    with pytest.raises(FileNotFoundError):
        T.read_pools(["tpm-T1w"], folder)
    assert T.declared_floor_levels(["tpm-T1w", "robex-T1w-real"]) == {
        "tpm-T1w": S.FLOOR_LEVELS["rendered"], "robex-T1w-real": S.FLOOR_LEVELS["real"]}
